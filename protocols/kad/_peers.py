"""Who is in the ``Kad`` service's routing table: servers learned from identify (the kad
protocol in ``PeerProtocolsChanged``), from peers that answer our requests and from servers
that open DHT streams to us; liveness checks of full buckets over ``/ipfs/ping/1.0.0``; and the
``KadPeerAdded`` / ``KadPeerRemoved`` events."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import anyio

from p2pstack.peerstore import ADDR_TTL_RECENT
from protocols.kad._events import KadPeerAdded, KadPeerRemoved
from protocols.kad._ping import is_alive
from protocols.kad._query import dialable_addrs
from protocols.kad._table import AddResult
from protocols.kad._types import ConnectionType, KadPeer

if TYPE_CHECKING:
    from p2pstack.events import PeerProtocolsChanged
    from p2pstack.host import Host
    from p2pstack.identity import PeerId
    from protocols.kad._config import KadConfig
    from protocols.kad._events import Counters
    from protocols.kad._table import RoutingTable

__all__ = ["PeerKeeper"]


class PeerKeeper:
    """Keeps the routing table in step with the network (see the module docstring).

    Args:
        host: our host.
        table: the routing table.
        config: the service's settings.
        counters: where liveness checks are counted.
        poke: called after the table changed (its timers may have moved).
        check_peer: sends one request to a peer identify says serves the DHT; the peer enters
            the table only if it answers (go's "lookup check"; it also makes peers that add
            only those who open DHT streams to them, such as py-libp2p, add us).
        random_bytes: source of the liveness pings' payloads.
    """

    def __init__(
        self,
        *,
        host: Host,
        table: RoutingTable,
        config: KadConfig,
        counters: Counters,
        poke: Callable[[], None],
        check_peer: Callable[[PeerId], Coroutine[Any, Any, None]],
        random_bytes: Callable[[int], bytes],
    ) -> None:
        self._host = host
        self._table = table
        self._config = config
        self._counters = counters
        self._poke = poke
        self._check_peer = check_peer
        self._random_bytes = random_bytes

    def peer_info(self, peer: PeerId) -> KadPeer:
        """How DHT messages describe ``peer``: its known addresses and our link to it."""
        host = self._host
        if peer == host.peer_id:
            return KadPeer(peer, tuple(host.listen_addrs), ConnectionType.CONNECTED)
        connected = bool(host.connections(peer))
        return KadPeer(
            peer,
            tuple(host.peerstore.addrs(peer)),
            ConnectionType.CONNECTED if connected else ConnectionType.NOT_CONNECTED,
        )

    def seeds(self, point: bytes) -> list[KadPeer]:
        """The table's ``k`` peers closest to ``point``, with their addresses."""
        return [self.peer_info(p) for p in self._table.closest(point, self._config.k)]

    def provider_seen(self, provider: KadPeer) -> None:
        """An ADD_PROVIDER was accepted: keep the provider's addresses to hand them out."""
        addrs = dialable_addrs(provider)
        self._host.peerstore.add_addrs(provider.peer_id, addrs, ADDR_TTL_RECENT)

    def inbound_stream(self, peer: PeerId) -> None:
        """``peer`` opened a DHT stream to us: a server only if it says so (identify); a client
        queries too and must not enter the table."""
        if self._host.peerstore.supports(peer, self._config.protocol_id):
            self.add_server(peer)

    def protocols_changed(self, event: PeerProtocolsChanged) -> None:
        """Identify told us a peer's protocols: check new DHT servers (they enter the table
        once they answer), drop peers that stopped serving it."""
        if self._config.protocol_id in event.added:
            if event.peer_id not in self._table:
                self._host.start_soon(self._check_peer, event.peer_id, name="kad lookup check")
        elif self._config.protocol_id in event.removed:
            self.remove(event.peer_id)

    def add_server(self, peer: PeerId) -> None:
        """Add (or refresh) a peer known to serve the DHT."""
        host, table = self._host, self._table
        if peer == host.peer_id:
            return
        known = peer in table
        result = table.add(peer, anyio.current_time())
        if result is AddResult.ADDED or (not known and peer in table):
            host.events.emit(KadPeerAdded(peer))
        elif result is AddResult.PENDING:
            self.start_checks()
        self._poke()

    def remove(self, peer: PeerId) -> None:
        """Drop ``peer`` from the table (if there); a replacement waiting on its bucket's
        liveness check takes its place."""
        if peer not in self._table:
            return
        before = set(self._table.peers())
        self._table.remove(peer)
        self._publish_changes(before)

    def _publish_changes(self, before: set[PeerId]) -> None:
        after = set(self._table.peers())
        for gone in before - after:
            self._host.events.emit(KadPeerRemoved(gone))
        for added in after - before:
            self._host.events.emit(KadPeerAdded(added))

    def start_checks(self) -> None:
        """Ping the least-recently-seen peers the table wants checked (one task each)."""
        for peer in self._table.checks_due():
            self._host.start_soon(self._check, peer, name="kad liveness check")

    async def _check(self, peer: PeerId) -> None:
        self._counters.liveness_checks += 1
        alive = await is_alive(
            self._host,
            peer,
            timeout=self._config.liveness_timeout,
            random_bytes=self._random_bytes,
        )
        if not alive:
            self._counters.liveness_failures += 1
        before = set(self._table.peers())
        self._table.on_check(peer, alive, anyio.current_time())
        self._publish_changes(before)
        self.start_checks()
        self._poke()
