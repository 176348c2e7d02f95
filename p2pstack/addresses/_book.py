"""The observed-address book: identify's ``observedAddr`` reports counted per local socket and
per distinct observer, with expiry and bounds (sans-IO: time is passed in)."""

from __future__ import annotations

from typing import Literal, TypeVar

import attrs
from multiaddr import Multiaddr

from p2pstack.addresses._ip import transport_key

__all__ = ["AddressConfig", "ObservedAddr", "ObservedAddrBook"]

K = TypeVar("K")
V = TypeVar("V")


@attrs.frozen(kw_only=True)
class AddressConfig:
    """Settings of the observed-address book (``HostConfig.addresses``)."""

    #: Distinct observers needed before an observed address is confirmed (go-libp2p: 4).
    confirmations: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    #: How observers are told apart: by IP group (the default, like go) or by peer ID (for
    #: tests and private networks, where every peer may share an IP).
    distinct_by: Literal["ip", "peer"] = "ip"
    #: Seconds an observation counts after it was last reported.
    ttl: float = attrs.field(default=30 * 60.0, validator=attrs.validators.gt(0))
    #: Most local addresses (sockets) tracked; the least recently observed go first.
    max_local: int = attrs.field(default=32, validator=attrs.validators.ge(1))
    #: Most observed addresses tracked per local address.
    max_observed: int = attrs.field(default=16, validator=attrs.validators.ge(1))
    #: Most observers remembered per observed address (at least ``confirmations`` are kept).
    max_observers: int = attrs.field(default=16, validator=attrs.validators.ge(1))


@attrs.frozen(kw_only=True)
class ObservedAddr:
    """One observed address and its standing.

    Attributes:
        addr: how peers see us (without ``/p2p``).
        local: the transport key (``transport_key``) of our side of those connections.
        observers: distinct observers that reported it and have not expired.
        confirmed: ``observers`` reached ``AddressConfig.confirmations``.
    """

    addr: Multiaddr
    local: tuple[str, ...]
    observers: int
    confirmed: bool


class ObservedAddrBook:
    """Observations of our addresses, counted per local socket (sans-IO: time is passed in).

    Args:
        config: thresholds and bounds.
    """

    def __init__(self, config: AddressConfig | None = None) -> None:
        self.config = config or AddressConfig()
        # local transport key -> observed text -> (address, observer -> last seen)
        self._book: dict[tuple[str, ...], dict[str, tuple[Multiaddr, dict[str, float]]]] = {}

    def record(self, local: Multiaddr, observed: Multiaddr, observer: str, now: float) -> bool:
        """Count ``observer``'s report that our ``local`` socket is seen as ``observed``.

        Returns:
            Whether the report was kept (dropped: not IP/TCP-or-UDP addresses, or the two
            addresses are of different IP families).
        """
        key = transport_key(local)
        seen = transport_key(observed)
        if key is None or seen is None or key[:2] != seen[:2]:
            return False
        observed = _strip_p2p(observed)
        cfg = self.config
        entries = self._book.pop(key, {})
        self._book[key] = entries  # most recently observed last
        addr, observers = entries.pop(str(observed), (observed, {}))
        entries[str(observed)] = (addr, observers)
        observers.pop(observer, None)
        observers[observer] = now
        _trim(observers, max(cfg.max_observers, cfg.confirmations))
        _trim(entries, cfg.max_observed)
        _trim(self._book, cfg.max_local)
        return True

    def expire(self, now: float) -> None:
        """Forget observations last reported more than ``ttl`` seconds before ``now``."""
        horizon = now - self.config.ttl
        for key in list(self._book):
            entries = self._book[key]
            for text in list(entries):
                observers = entries[text][1]
                for observer in [o for o, seen in observers.items() if seen < horizon]:
                    del observers[observer]
                if not observers:
                    del entries[text]
            if not entries:
                del self._book[key]

    def entries(self, now: float) -> list[ObservedAddr]:
        """Every live observation, most observed first."""
        self.expire(now)
        need = self.config.confirmations
        found = [
            ObservedAddr(addr=addr, local=key, observers=len(obs), confirmed=len(obs) >= need)
            for key, entries in self._book.items()
            for addr, obs in entries.values()
        ]
        return sorted(found, key=lambda e: -e.observers)

    def confirmed(self, now: float) -> list[ObservedAddr]:
        """The confirmed observations."""
        return [e for e in self.entries(now) if e.confirmed]


def _strip_p2p(addr: Multiaddr) -> Multiaddr:
    text = str(addr)
    return Multiaddr(text.split("/p2p/", maxsplit=1)[0]) if "/p2p/" in text else addr


def _trim(table: dict[K, V], n: int) -> None:
    # Dicts keep insertion order and every update re-inserts its key: the oldest come first.
    while len(table) > n:
        del table[next(iter(table))]
