"""The host's addresses: where it listens, how peers observe it, what it advertises, and whether
it is reachable from the outside (``host.addresses``).

* Listen addresses: the bound ones, ``/ip4/0.0.0.0`` and ``/ip6/::`` expanded to the machine's
  interface addresses (``host.listen_addrs``); an unspecified address is never advertised.
* Observed addresses: identify's ``observedAddr`` (how a peer sees our side of a connection,
  https://github.com/libp2p/specs/blob/master/identify/README.md#observedaddr). One peer may lie,
  so an observed address is *confirmed* only once ``AddressConfig.confirmations`` distinct
  observers reported it (go-libp2p uses 4), counted per local address of the connection;
  observers are told apart by IP (IPv4 address, IPv6 /56) like go does, or by peer ID. Entries
  expire ``ttl`` seconds after their last report; every table is bounded.
* Advertised addresses: the listen addresses, the confirmed observed addresses of connections
  made from a listening port, and addresses other services add (``set_external``, e.g. relayed
  ``/p2p-circuit`` addresses).
* Reachability: ``unknown`` until a service (AutoNAT) decides ``public`` or ``private``; each
  change is published as ``ReachabilityChanged`` on the host's event bus.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

import attrs
from multiaddr import Multiaddr

from p2pstack.events import AddrReachabilityChanged, ObservedAddrsChanged, ReachabilityChanged

if TYPE_CHECKING:
    from p2pstack.events import EventBus
    from p2pstack.identity import PeerId

__all__ = [
    "AddressConfig",
    "AddressManager",
    "ObservedAddr",
    "ObservedAddrBook",
    "ObservingConnection",
    "Reachability",
    "ip_of",
    "is_public_addr",
    "observer_group",
    "transport_key",
]

#: ``unknown`` until decided; ``public``: dialable from the Internet; ``private``: not.
Reachability = Literal["unknown", "public", "private"]

#: Networks js-libp2p and go-libp2p also treat as non-public besides Python's ``is_private``
#: (100.64/10 shared address space, 198.18/15 benchmarking; Python counts neither).
_NOT_PUBLIC = (ipaddress.ip_network("100.64.0.0/10"), ipaddress.ip_network("198.18.0.0/15"))

K = TypeVar("K")
V = TypeVar("V")

_IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def ip_of(addr: Multiaddr) -> _IP | None:
    """The IP address an ``/ip4`` or ``/ip6`` multiaddr starts with, else ``None``."""
    parts = str(addr).split("/")
    if len(parts) < 3 or parts[1] not in ("ip4", "ip6"):
        return None
    try:
        return ipaddress.ip_address(parts[2].split("%")[0])
    except ValueError:
        return None


def is_public_addr(addr: Multiaddr) -> bool:
    """Whether ``addr`` is an IP address routable on the Internet: not private (RFC 1918,
    ULA), loopback, link-local, unspecified, CGNAT (100.64/10), TEST-NET or benchmarking
    (198.18/15). Addresses without an IP (``/dns``, ``/memory``) are not public either."""
    ip = ip_of(addr)
    if ip is None:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in _NOT_PUBLIC if net.version == ip.version):
        return False
    return ip.is_global and not ip.is_multicast


def transport_key(addr: Multiaddr) -> tuple[str, ...] | None:
    """What identifies a listening socket in ``addr`` without its IP: the IP family, the
    transport, the port and the protocols after it (``("ip4", "tcp", "4001")``,
    ``("ip4", "udp", "4001", "quic-v1")``); ``/p2p`` parts are left out. ``None`` for an address
    that does not start with an IP and a TCP or UDP port."""
    parts = [p for p in str(addr).split("/")[1:] if p]
    if len(parts) < 4 or parts[0] not in ("ip4", "ip6") or parts[2] not in ("tcp", "udp"):
        return None
    rest: list[str] = []
    for part in parts[4:]:
        if part == "p2p":
            break
        rest.append(part)
    return (parts[0], parts[2], parts[3], *rest)


def observer_group(addr: Multiaddr) -> str | None:
    """The group an observer's address counts in: its IPv4 address, or its IPv6 /56 (one
    host usually holds a whole /64 or more), like go-libp2p."""
    ip = ip_of(addr)
    if ip is None:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 56), strict=False))
    return str(ip)


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


class ObservingConnection(Protocol):
    """What the address manager needs of a connection an observation came over."""

    @property
    def local_multiaddr(self) -> Multiaddr: ...

    @property
    def remote_multiaddr(self) -> Multiaddr: ...

    @property
    def remote_peer(self) -> PeerId: ...

    @property
    def limited(self) -> bool: ...


class AddressManager:
    """``host.addresses``: observed addresses, advertised addresses and reachability.

    Args:
        listen_addrs: returns the host's expanded listen addresses.
        events: the host's event bus (``ObservedAddrsChanged``, ``ReachabilityChanged``,
            ``AddrReachabilityChanged`` are published on it).
        clock: monotonic seconds.
        config: the observed-address settings.
    """

    #: Most addresses whose individual reachability is remembered.
    MAX_ADDR_REACHABILITY = 64

    def __init__(
        self,
        *,
        listen_addrs: Callable[[], Sequence[Multiaddr]],
        events: EventBus,
        clock: Callable[[], float],
        config: AddressConfig | None = None,
    ) -> None:
        self.book = ObservedAddrBook(config)
        self._listen_addrs = listen_addrs
        self._events = events
        self._clock = clock
        self._reachability: Reachability = "unknown"
        self._by_addr: dict[str, tuple[Multiaddr, Reachability]] = {}
        self._external: dict[str, tuple[Multiaddr, ...]] = {}
        self._last_observed: tuple[Multiaddr, ...] = ()

    # -- observed addresses ----------------------------------------------------------------

    def record_observed(self, conn: ObservingConnection, observed: Multiaddr) -> None:
        """Count a peer's report (identify's ``observedAddr``) of how it sees ``conn``'s local
        side. Reports over limited (relayed) connections say nothing about us and are ignored.
        Publishes ``ObservedAddrsChanged`` when the confirmed set changes."""
        if conn.limited:
            return
        if self.book.config.distinct_by == "peer":
            observer: str | None = str(conn.remote_peer)
        else:
            observer = observer_group(conn.remote_multiaddr)
        if observer is None:
            return
        if self.book.record(conn.local_multiaddr, observed, observer, self._clock()):
            self._publish_observed()

    def observed(self, *, include_unconfirmed: bool = False) -> list[Multiaddr]:
        """Our addresses as peers see them: the confirmed ones (most observed first), or every
        live one with ``include_unconfirmed``. DCUtR sends these to the other peer."""
        now = self._clock()
        entries = self.book.entries(now) if include_unconfirmed else self.book.confirmed(now)
        return list(dict.fromkeys(e.addr for e in entries))

    def _publish_observed(self) -> None:
        confirmed = tuple(self.observed())
        if set(confirmed) != set(self._last_observed):
            self._last_observed = confirmed
            self._events.emit(ObservedAddrsChanged(addrs=confirmed))

    # -- advertised addresses --------------------------------------------------------------

    def set_external(self, source: str, addrs: Iterable[Multiaddr]) -> None:
        """Advertise ``addrs`` on behalf of ``source`` (replacing what it set before; an
        empty list removes them), e.g. the relayed addresses of auto-relay."""
        kept = tuple(dict.fromkeys(addrs))
        if kept:
            self._external[source] = kept
        else:
            self._external.pop(source, None)
        self._events.emit(ObservedAddrsChanged(addrs=tuple(self.observed())))

    def advertised(self) -> list[Multiaddr]:
        """What identify and peer records announce: the listen addresses (never
        ``0.0.0.0``/``::``), the confirmed observed addresses of our listening sockets, then
        the ``set_external`` ones; without ``/p2p`` and without duplicates."""
        listen = list(self._listen_addrs())
        ports = {key for a in listen if (key := transport_key(a)) is not None}
        extra = [e.addr for e in self.book.confirmed(self._clock()) if e.local in ports]
        external = [a for addrs in self._external.values() for a in addrs]
        return list(dict.fromkeys([*listen, *extra, *external]))

    # -- reachability ----------------------------------------------------------------------

    @property
    def reachability(self) -> Reachability:
        """The node's reachability as last decided (``unknown`` at start)."""
        return self._reachability

    def set_reachability(self, reachability: Reachability, *, source: str) -> None:
        """Record a decision (AutoNAT calls this); publishes ``ReachabilityChanged`` if it
        differs from the current state.

        Args:
            reachability: the new state.
            source: who decided (``"autonat"``, ``"autonat-v2"``, ``"config"``).
        """
        previous = self._reachability
        if reachability == previous:
            return
        self._reachability = reachability
        self._events.emit(
            ReachabilityChanged(reachability=reachability, previous=previous, source=source)
        )

    def set_addr_reachability(self, addr: Multiaddr, reachability: Reachability) -> None:
        """Record whether one of our addresses was found dialable (AutoNAT v2); publishes
        ``AddrReachabilityChanged`` when it changes. At most ``MAX_ADDR_REACHABILITY`` are
        kept (the oldest go first)."""
        text = str(addr)
        old = self._by_addr.pop(text, None)
        self._by_addr[text] = (addr, reachability)
        while len(self._by_addr) > self.MAX_ADDR_REACHABILITY:
            del self._by_addr[next(iter(self._by_addr))]
        if old is None or old[1] != reachability:
            self._events.emit(AddrReachabilityChanged(addr=addr, reachability=reachability))

    def addr_reachability(self) -> dict[Multiaddr, Reachability]:
        """What is known of each tested address."""
        return {addr: r for addr, r in self._by_addr.values()}
