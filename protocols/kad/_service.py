"""The ``Kad`` host service: a thin driver around the DHT's sans-IO cores (routing table,
request handler, lookup) that does the I/O, the timers and the bookkeeping
(https://github.com/libp2p/specs/blob/master/kad-dht/README.md).

Defaults, and where they differ from go/js, are listed in the ``protocols.kad`` docstring.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING

import anyio
from multiaddr import Multiaddr

from p2pstack.errors import NETWORK_ERRORS, LocalProtocolError
from p2pstack.events import LocalAddrsChanged, PeerFailed, PeerProtocolsChanged, Unsubscribe
from p2pstack.multiaddrs import parse_multiaddr
from p2pstack.peerstore import ADDR_TTL_RECENT
from p2pstack.sansio import TimerDriver
from protocols.kad import _ops
from protocols.kad._client import BeforeRequest
from protocols.kad._config import KadConfig, has_public_addr, open_stores
from protocols.kad._events import Counters, KadModeChanged, KadStatistics, snapshot
from protocols.kad._handler import RequestHandler
from protocols.kad._maintenance import Maintenance, remember
from protocols.kad._peers import PeerKeeper
from protocols.kad._query import DhtPeerRouting, QueryDriver, with_dialable_addrs
from protocols.kad._server import InboundServer
from protocols.kad._store import ProviderStore, RecordStore
from protocols.kad._table import RoutingTable
from protocols.kad._types import KadError, KadMessage, KadPeer, MessageType, Record
from protocols.kad._validation import Validators
from protocols.kad._walk import RandomWalk

if TYPE_CHECKING:
    from p2pstack.host import Host
    from p2pstack.identity import PeerId
    from protocols.kad._lookup import LookupResult

__all__ = ["Kad"]

_log = logging.getLogger(__name__)

#: A routing table smaller than this rejoins through ``config.bootstrap`` every refresh interval.
_LOW_TABLE = 10

_ATTEMPT_ERRORS: tuple[type[BaseException], ...] = (*NETWORK_ERRORS, TimeoutError)


class Kad:
    """The Kademlia DHT service (``services=[..., Kad(KadConfig(...))]``, then
    ``host.service(Kad)``).

    It publishes ``KadPeerAdded`` / ``KadPeerRemoved`` (and ``KadModeChanged``) on
    ``host.events``, counts everything in ``statistics()``, and, if the host's dialer has no
    peer routing yet, becomes it: dialing a peer with no known address then asks the DHT.

    Args:
        config: settings (``KadConfig()`` if ``None``).
        validators: record validators by namespace (``/pk`` and ``/ipns`` plus
            ``config.passthrough_namespaces`` if ``None``).
        records: the record store (``config.storage`` or in memory if ``None``).
        providers: the provider store (``config.storage`` or in memory if ``None``).
        rng: randomness for the routing table's refresh keys.
        random_bytes: source of the payloads of the liveness pings (``os.urandom`` if
            ``None``; a simulation passes a seeded one, as it does to ``Ping``).
        before_request: awaited with the peer once it is connected, before each request to
            it (within ``config.request_timeout``). The default stacks pass
            ``Identify.identified_by``: a request on a connection just opened then waits
            (up to a second) until the peer has identified us, because py-libp2p adds a
            querying peer to its routing table only if identify already gave it the peer's
            addresses.
    """

    def __init__(
        self,
        config: KadConfig | None = None,
        *,
        validators: Validators | None = None,
        records: RecordStore | None = None,
        providers: ProviderStore | None = None,
        rng: random.Random | None = None,
        random_bytes: Callable[[int], bytes] | None = None,
        before_request: BeforeRequest | None = None,
    ) -> None:
        self.config = config or KadConfig()
        self._before_request = before_request
        cfg = self.config
        if validators is None:
            validators = Validators(passthrough=cfg.passthrough_namespaces)
        self.validators = validators
        self.records, self.providers, self._sqlite = open_stores(cfg, records, providers)
        self._rng = rng or random.Random()
        self._random_bytes = random_bytes or os.urandom
        self._counters = Counters()
        self._server_mode = False
        self._published: dict[bytes, bytes] = {}  # records we put: republished
        self._provided: dict[bytes, None] = {}  # keys we provide: republished
        self._handles: list[Unsubscribe] = []
        self._host: Host | None = None
        self._table: RoutingTable | None = None
        self._inbound: InboundServer | None = None
        self._queries: QueryDriver | None = None
        self._timers: TimerDriver | None = None
        self._maintenance: Maintenance | None = None
        self._peers: PeerKeeper | None = None
        #: The random walk's discoveries (source ``"dht"``), for a discovery service.
        self.discovery = RandomWalk()

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, host: Host) -> None:
        """Build the cores, follow peers' protocols, start the timers, serve if in server mode
        and bootstrap through ``config.bootstrap`` (in a task)."""
        cfg = self.config
        self._host = host
        now = anyio.current_time()
        table = self._table = RoutingTable(
            host.peer_id, k=cfg.k, refresh_interval=cfg.refresh_interval, now=now, rng=self._rng
        )
        self._maintenance = Maintenance(table, cfg, now)
        self._timers = TimerDriver(self._maintenance, on_fire=self._on_timer)
        peers = self._peers = PeerKeeper(
            host=host,
            table=table,
            config=cfg,
            counters=self._counters,
            poke=self._poke,
            check_peer=self._lookup_check,
            random_bytes=self._random_bytes,
        )
        handler = RequestHandler(
            local=host.peer_id,
            table=table,
            records=self.records,
            providers=self.providers,
            validators=self.validators,
            peer_info=peers.peer_info,
            k=cfg.k,
            on_provider=peers.provider_seen,
        )
        self._inbound = InboundServer(
            handler=handler,
            config=cfg,
            counters=self._counters,
            peer_info=peers.peer_info,
            on_stream=peers.inbound_stream,
            clock=anyio.current_time,
        )
        self._queries = QueryDriver(
            host=host,
            config=cfg,
            counters=self._counters,
            seeds=peers.seeds,
            on_server=peers.add_server,
            on_failure=peers.remove,
            on_done=lambda point: table.mark_refreshed(point, anyio.current_time()),
            clock=anyio.current_time,
            before_request=self._before_request,
        )
        host.start_soon(self._timers.run, name="kad timers")
        self._handles.append(host.events.on(PeerProtocolsChanged, peers.protocols_changed))
        # A failure detector (membership) declared the peer gone: it leaves the table now.
        self._handles.append(host.events.on(PeerFailed, lambda e: peers.remove(e.peer_id)))
        if cfg.mode == "auto":
            self._handles.append(host.events.on(LocalAddrsChanged, lambda _e: self._apply_mode()))
        self._apply_mode()
        if host.dialer.peer_routing is None:
            host.dialer.peer_routing = DhtPeerRouting(self.find_peer)
        if cfg.bootstrap:
            host.start_soon(self._quietly, [self.bootstrap], name="kad bootstrap")

    async def stop(self) -> None:
        """Stop serving and reacting to events; close a store this service opened."""
        for handle in self._handles:
            handle.close()
        self._handles.clear()
        host = self._host
        if host is not None:
            if self._server_mode:
                host.remove_stream_handler(self.config.protocol_id)
                self._server_mode = False
            if isinstance(host.dialer.peer_routing, DhtPeerRouting):
                host.dialer.peer_routing = None
        if self._sqlite is not None:
            self._sqlite.close()
        self.discovery.close()

    def _require(self) -> tuple[Host, RoutingTable, QueryDriver]:
        if self._host is None or self._table is None or self._queries is None:
            raise LocalProtocolError("the Kad service has not been started")
        return self._host, self._table, self._queries

    # -- mode and peers -------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """``server`` or ``client``: what the configured mode resolves to now."""
        return "server" if self._server_mode else "client"

    @property
    def routing_table(self) -> RoutingTable:
        """The routing table (inspect it; let the service change it)."""
        return self._require()[1]

    def _apply_mode(self) -> None:
        host, _, _ = self._require()
        cfg = self.config
        want = cfg.mode == "server" or (cfg.mode == "auto" and has_public_addr(host.listen_addrs))
        if want == self._server_mode:
            return
        self._server_mode = want
        if want:
            assert self._inbound is not None
            host.set_stream_handler(cfg.protocol_id, self._inbound.handle_stream, replace=True)
        else:
            host.remove_stream_handler(cfg.protocol_id)
        host.events.emit(KadModeChanged(mode=self.mode))

    def peer_info(self, peer: PeerId) -> KadPeer:
        """How DHT messages describe ``peer``: its known addresses and our link to it."""
        return self._require_peers().peer_info(peer)

    def _require_peers(self) -> PeerKeeper:
        if self._peers is None:
            raise LocalProtocolError("the Kad service has not been started")
        return self._peers

    def _poke(self) -> None:
        if self._timers is not None:
            self._timers.poke()

    # -- timers: liveness checks, refresh, republish, expiry ------------------------------------

    async def _on_timer(self) -> None:
        host, table, _ = self._require()
        work = self._maintenance
        assert work is not None
        # A refresh lookup that completes restarts its bucket's period (QueryDriver's on_done);
        # one that fails waits a full period (the table restarted it when it queued the key).
        refresh = [partial(self.get_closest_peers, key) for key in work.take_refresh()]
        if refresh:
            host.start_soon(self._quietly, refresh, name="kad refresh")
        self._require_peers().start_checks()
        due = work.take_due()
        if "expire" in due:
            self.providers.expire(anyio.current_time())
            self.records.expire(anyio.current_time())
        jobs: list[Callable[[], Awaitable[object]]] = []
        if "providers" in due:
            jobs += [partial(self.provide, key) for key in self._provided]
        if "records" in due:
            jobs += [partial(self.put_value, k, v) for k, v in self._published.items()]
        if "rejoin" in due and self.config.bootstrap and len(table) < _LOW_TABLE:
            jobs.append(self.bootstrap)  # (go's "fix low peers")
        if jobs:
            host.start_soon(self._quietly, jobs, name="kad republish")
        if "walk" in due:
            host.start_soon(self._quietly, [self.random_walk], name="kad random walk")

    async def _lookup_check(self, peer: PeerId) -> None:
        host, _, queries = self._require()
        await _ops.lookup_check(queries, host.peer_id, peer)

    async def _quietly(self, jobs: Sequence[Callable[[], Awaitable[object]]]) -> None:
        # Background work (bootstrap, refresh, republish): one job at a time so as not to flood
        # the network; a failure is logged and the next job runs.
        for job in jobs:
            try:
                await job()
            except _ATTEMPT_ERRORS as exc:
                _log.info("DHT background %s failed: %r", getattr(job, "__name__", job), exc)

    # -- public API -----------------------------------------------------------------------------

    def statistics(self) -> KadStatistics:
        """A snapshot of the service's counters and sizes."""
        return snapshot(
            self._counters,
            mode=self.mode,
            routing_table_size=0 if self._table is None else len(self._table),
            records=len(self.records),
            provider_keys=len(self.providers),
            inbound_streams=0 if self._inbound is None else self._inbound.active,
        )

    async def bootstrap(self, peers: Iterable[Multiaddr | str] = ()) -> int:
        """Connect to ``config.bootstrap`` and ``peers``, then look up our own ID through them
        (which fills our table and puts us in theirs).

        Args:
            peers: more bootstrap addresses (with ``/p2p/<id>``).

        Returns:
            The number of peers in the routing table afterwards.

        Raises:
            KadError: bootstrap addresses were given, none could be reached, and the table is
                empty.
            NotFound: no address given and the routing table is empty.
            ValueError: an address is not a valid multiaddr.
        """
        host, table, queries = self._require()
        addrs = [*self.config.bootstrap, *(parse_multiaddr(p) for p in peers)]
        reached = await _ops.connect_all(host, addrs, self.config.request_timeout)
        if addrs and not reached and len(table) == 0:
            raise KadError(f"none of the {len(addrs)} DHT bootstrap peers could be reached")
        local = host.peer_id.to_bytes()
        message = KadMessage(type=MessageType.FIND_NODE, key=local)
        await queries.lookup(local, message, extra_seeds=[self.peer_info(p) for p in reached])
        return len(table)

    async def random_walk(self) -> int:
        """Look up a random key and offer the peers met on ``discovery`` (what the timer does
        every ``config.random_walk_interval``).

        Returns:
            The number of peers offered.

        Raises:
            NotFound: there is no peer to ask.
        """
        host, _, _ = self._require()
        result = await self.get_closest_peers(self._rng.randbytes(32))
        return self.discovery.offer(host.peer_id, result.closest)

    async def find_peer(self, peer: PeerId) -> KadPeer:
        """The addresses of ``peer``: from our connection to it, else from a lookup.

        Raises:
            NotFound: no DHT peer knew its addresses (or there is no peer to ask).
        """
        host, _, queries = self._require()
        if host.connections(peer):
            return self.peer_info(peer)
        found = await _ops.find_peer(queries, peer)
        host.peerstore.add_addrs(peer, found.addrs, ADDR_TTL_RECENT)
        return found

    async def get_closest_peers(self, key: bytes) -> LookupResult:
        """Run a FIND_NODE lookup for ``key`` (its SHA-256 point is the target).

        Returns:
            The lookup result (``closest``: the answering peers nearest to the key).

        Raises:
            NotFound: there is no peer to ask.
        """
        _, _, queries = self._require()
        return await queries.lookup(key, KadMessage(type=MessageType.FIND_NODE, key=key))

    async def put_value(self, key: bytes, value: bytes) -> int:
        """Validate and store ``key`` = ``value`` here and at the k closest peers; it is
        republished every ``config.record_republish`` seconds while the host runs.

        Returns:
            The number of remote peers that stored it.

        Raises:
            RecordValidationError: the record fails its namespace's validator.
            NotFound: there is no peer to ask.
        """
        _, _, queries = self._require()
        self.validators.validate(key, value)
        _ops.store_locally(self.records, Record(key, value), anyio.current_time())
        remember(self._published, key, value)
        return await _ops.put_value(queries, key, value)

    async def get_value(self, key: bytes, *, quorum: int | None = None) -> bytes:
        """The best valid value of ``key`` among the local store and up to ``quorum`` peers;
        peers that hold an outdated value (or none, among the closest) are sent the best one.

        Args:
            key: the record key (its namespace must have a validator).
            quorum: values to collect before stopping (``config.quorum`` if ``None``).

        Returns:
            The value.

        Raises:
            NotFound: no valid value was found.
            RecordValidationError: the key has no known namespace.
        """
        _, _, queries = self._require()
        quorum = quorum or self.config.quorum
        args = (queries, self.validators, self._counters, self.records)
        return await _ops.get_value(*args, key, quorum=quorum, now=anyio.current_time())

    async def provide(self, key: bytes) -> int:
        """Announce this host as a provider of ``key`` (a CID's multihash bytes) to the k
        closest peers; republished every ``config.provider_republish`` seconds.

        Returns:
            The number of peers the announcement was delivered to.

        Raises:
            KadError: the host listens on no address (a provider record needs one).
            NotFound: there is no peer to ask.
        """
        host, _, queries = self._require()
        me = self.peer_info(host.peer_id)
        if not me.addrs:  # go, js and our handler drop provider records without addresses
            raise KadError("provide needs a listen address to announce (the host has none)")
        self.providers.add(key, me, anyio.current_time())
        remember(self._provided, key, None)
        return await _ops.provide(queries, key, me)

    async def find_providers(self, key: bytes, *, limit: int = 20) -> AsyncIterator[KadPeer]:
        """Providers of ``key``, as they are found (local ones first), at most ``limit``.

        Yields:
            Each provider once; its addresses are also put into the peerstore.

        Raises:
            ValueError: ``limit`` is less than 1.
            NotFound: there was no peer to ask and no local provider.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        host, _, queries = self._require()
        now = anyio.current_time()
        local = [with_dialable_addrs(p) for p in self.providers.get(key, now)]
        async for provider in _ops.iterate_providers(host, queries, local, key, limit):
            yield provider
