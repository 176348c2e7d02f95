"""Auto-relay: a node that is not reachable directly keeps a few relay reservations and
advertises their circuit addresses (go-libp2p's autorelay, js-libp2p's relay discovery).

Candidates, in order: the configured relays, connected peers whose identify lists the hop
protocol, then a discovery source (a DHT, a rendezvous point) given as a callable. It runs
when configured to (``force``) or while the node is private. Reachability comes from the host
(``host.addresses.reachability`` and its ``ReachabilityChanged`` events, which AutoNAT feeds),
or from the outside (``set_reachability``, or an async iterable of ``"private"``/``"public"``).
The circuit addresses of the reservations it holds are advertised through
``host.addresses.set_external("relay", ...)``, so identify and the peer record carry them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable, Sequence
from typing import TYPE_CHECKING, Literal

import anyio
import attrs
from multiaddr import Multiaddr

from p2pstack.errors import NETWORK_ERRORS
from p2pstack.events import ReachabilityChanged, Unsubscribe
from p2pstack.identity import PeerId
from p2pstack.multiaddrs import parse_multiaddr, split_peer_id
from protocols.relay._addrs import circuit_addr
from protocols.relay._reserve import ReservationLost, ReservationMade, ReservationRefreshed
from protocols.relay._wire import HOP_PROTOCOL_ID

if TYPE_CHECKING:
    from p2pstack.host import Host
    from protocols.relay._transport import CircuitRelayTransport

__all__ = ["AutoRelay", "AutoRelayConfig", "RelayCandidates"]

log = logging.getLogger("protocols.relay")

Reachability = Literal["unknown", "public", "private"]
#: Finds relay candidates: called with the host when more are needed; returns peers or their
#: addresses (``.../p2p/<relay>``). May block on the network; auto-relay bounds its time.
#: A composition root supplies it (p2pstack.roots.relay_discovery: from the Kademlia DHT).
RelayCandidates = Callable[["Host"], "AsyncIterable[PeerId | Multiaddr]"]


@attrs.frozen(kw_only=True)
class AutoRelayConfig:
    """Auto-relay settings (seconds, counts).

    Attributes:
        reservations: reservations to keep (js keeps 1; go 2).
        force: keep them whatever the reachability (else only while private).
        relays: relay addresses to try first (``.../p2p/<relay>``).
        check_interval: seconds between checks of the reservations.
        attempt_timeout: the most one reservation attempt may take.
        failure_backoff: a relay that failed is not tried again for this long.
        max_candidates: candidates taken from the discovery source per check.
        discovery_interval: the discovery source is asked at most once in this many seconds
            (a DHT lookup each time); an ask that yielded nothing does not count.
    """

    reservations: int = 2
    force: bool = False
    relays: Sequence[Multiaddr | str] = ()
    check_interval: float = 10.0
    attempt_timeout: float = 30.0
    failure_backoff: float = 60.0
    max_candidates: int = 16
    discovery_interval: float = 30.0


class AutoRelay:
    """Keeps ``config.reservations`` relay reservations through ``transport``.

    Args:
        transport: the host's circuit transport.
        config: the settings.
        candidates: the discovery source of relays (optional), called with the host.
        reachability: reachability updates (optional; see also ``set_reachability``);
            without them auto-relay follows the host's ``ReachabilityChanged`` events.
    """

    #: The ``host.addresses.set_external`` source name of the advertised circuit addresses.
    EXTERNAL_SOURCE = "relay"

    def __init__(
        self,
        transport: CircuitRelayTransport,
        config: AutoRelayConfig | None = None,
        *,
        candidates: RelayCandidates | None = None,
        reachability: AsyncIterable[Reachability] | None = None,
    ) -> None:
        self.config = config or AutoRelayConfig()
        if self.config.reservations < 0:
            raise ValueError("reservations cannot be negative")
        self._transport = transport
        self._candidates = candidates
        self._updates = reachability
        self.reachability: Reachability = "unknown"
        self._relays = [split_peer_id(parse_multiaddr(a)) for a in self.config.relays]
        self._host: Host | None = None
        self._mine: set[PeerId] = set()  # relays whose listeners we opened
        self._failed: dict[PeerId, float] = {}
        self._asked_at: float | None = None  # when the discovery source last yielded peers
        self._wake = anyio.Event()
        self._handles: list[Unsubscribe] = []

    @property
    def candidates(self) -> RelayCandidates | None:
        """The discovery source of relays (``None``: configured relays and connected peers)."""
        return self._candidates

    @property
    def relays(self) -> list[PeerId]:
        """The relays we hold a reservation with now."""
        listeners = self._transport.listeners
        return [r for r in self._mine if r in listeners and listeners[r].reservation is not None]

    def set_reachability(self, reachability: Reachability) -> None:
        """Tell auto-relay whether the node is reachable directly (an AutoNAT result)."""
        self.reachability = reachability
        self._wake.set()

    async def start(self, host: Host) -> None:
        """Start keeping reservations in a host task."""
        self._host = host
        host.start_soon(self._run, name="auto-relay")
        if self._updates is not None:
            host.start_soon(self._follow, self._updates, name="auto-relay reachability")
        else:
            self._handles.append(host.events.on(ReachabilityChanged, self._on_reachability))
            if host.addresses.reachability != "unknown":
                self.set_reachability(host.addresses.reachability)
        for kind in (ReservationMade, ReservationRefreshed, ReservationLost):
            self._handles.append(host.events.on(kind, self._on_reservation))

    async def stop(self) -> None:
        """Stop following events; the transport's listeners close with the host."""
        for handle in self._handles:
            handle.close()
        self._handles.clear()

    def _on_reachability(self, event: ReachabilityChanged) -> None:
        self.set_reachability(event.reachability)

    def _on_reservation(self, _event: object) -> None:
        self._publish()

    def _publish(self) -> None:
        """Advertise the circuit addresses of the reservations we hold (none: withdrawn)."""
        if self._host is None:
            return
        listeners = self._transport.listeners
        addrs = [a for r in self.relays for a in listeners[r].multiaddrs]
        self._host.addresses.set_external(self.EXTERNAL_SOURCE, addrs)

    async def _follow(self, updates: AsyncIterable[Reachability]) -> None:
        async for state in updates:
            self.set_reachability(state)

    @property
    def active(self) -> bool:
        return self.config.force or self.reachability == "private"

    async def _run(self) -> None:
        while True:
            self._wake = anyio.Event()
            if self.active:
                await self.check()
            else:
                await self._release()
            with anyio.move_on_after(self.config.check_interval):
                await self._wake.wait()

    async def _release(self) -> None:
        """Close the reservations we opened (the node became public)."""
        listeners = self._transport.listeners
        for relay in list(self._mine):
            self._mine.discard(relay)
            if relay in listeners:
                await listeners[relay].aclose()
        self._publish()

    async def check(self) -> None:
        """Drop reservations that are lost, then fill up to ``config.reservations``."""
        host = self._require_host()
        listeners = self._transport.listeners
        for relay in list(self._mine):
            listener = listeners.get(relay)
            if listener is None or listener.reservation is None:
                self._mine.discard(relay)
                self._failed[relay] = anyio.current_time()
                if listener is not None:
                    await listener.aclose()  # the host drops its addresses
        if len(self.relays) >= self.config.reservations:
            return
        for relay, addr in await self._candidate_relays(host):
            if len(self._mine) >= self.config.reservations:
                return
            await self._try(host, relay, addr)

    async def _try(self, host: Host, relay: PeerId, addr: Multiaddr | None) -> None:
        try:
            with anyio.fail_after(self.config.attempt_timeout):
                await host.listen([circuit_addr(addr, relay)])
        except NETWORK_ERRORS as exc:  # TimeoutError is an OSError
            log.info("auto-relay: no reservation at %s: %s", relay, exc)
            self._failed[relay] = anyio.current_time()
            return
        self._mine.add(relay)
        self._publish()

    async def _candidate_relays(self, host: Host) -> list[tuple[PeerId, Multiaddr | None]]:
        now = anyio.current_time()
        seen: set[PeerId] = {host.peer_id, *self._transport.listeners}
        found: list[tuple[PeerId, Multiaddr | None]] = []

        def add(relay: PeerId | None, addr: Multiaddr | None) -> None:
            failed = self._failed.get(relay) if relay is not None else None
            if relay is None or relay in seen:
                return
            if failed is None or now - failed > self.config.failure_backoff:
                seen.add(relay)
                found.append((relay, addr))

        for addr, relay in self._relays:
            add(relay, addr)
        for conn in host.connections():
            peer = conn.remote_peer
            if not conn.limited and host.peerstore.supports(peer, HOP_PROTOCOL_ID):
                add(peer, None)
        asked = self._asked_at
        if self._candidates is None or (
            asked is not None and now - asked < self.config.discovery_interval
        ):
            return found
        before = len(found)
        with anyio.move_on_after(self.config.attempt_timeout):
            try:
                async for item in self._candidates(host):
                    self._asked_at = now
                    add(*((item, None) if isinstance(item, PeerId) else _split(item)))
                    if len(found) - before >= self.config.max_candidates:
                        break
            except NETWORK_ERRORS as exc:  # the source failed: keep what it gave
                log.info("auto-relay: relay discovery failed: %s", exc)
        return found

    def _require_host(self) -> Host:
        if self._host is None:
            raise RuntimeError("AutoRelay is used before the host started it")
        return self._host


def _split(addr: Multiaddr) -> tuple[PeerId | None, Multiaddr | None]:
    try:
        transport_addr, relay = split_peer_id(addr)
    except ValueError:
        return None, None
    return relay, transport_addr
