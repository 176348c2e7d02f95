"""``host.addresses``: observed addresses, advertised addresses and reachability, publishing
their changes on the host's event bus."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from multiaddr import Multiaddr

from p2pstack.addresses._book import AddressConfig, ObservedAddrBook
from p2pstack.addresses._ip import Reachability, observer_group, transport_key
from p2pstack.events import AddrReachabilityChanged, ObservedAddrsChanged, ReachabilityChanged

if TYPE_CHECKING:
    from p2pstack.events import EventBus
    from p2pstack.identity import PeerId

__all__ = ["AddressManager", "ObservingConnection"]


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

    def expire(self) -> None:
        """Forget expired observations now, publishing ``ObservedAddrsChanged`` if confirmed
        ones went (AutoNAT's client calls this each round; otherwise expiry is noticed at the
        next report)."""
        self.book.expire(self._clock())
        self._publish_observed()

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
