"""Outbound side of the ``Kad`` service: drives the sans-IO ``Lookup`` over the network and
builds the DHT operations on it (find_peer, get/put value, provide, find providers)
(https://github.com/libp2p/specs/blob/master/kad-dht/README.md#peer-routing).

The driver starts the requests the lookup asks for (each in its own task, each timed out by
the client), feeds answers and failures back, and sleeps until an answer arrives or the
lookup's next deadline; the lookup, not the driver, decides when it is done, so a peer that
never answers costs at most one request timeout and never stalls a lookup past its deadline.
"""

from __future__ import annotations

import contextvars
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import anyio
import attrs

from p2pstack.errors import NETWORK_ERRORS
from p2pstack.multiaddrs import split_peer_id
from p2pstack.peerstore import ADDR_TTL_RECENT
from p2pstack.sync import Signal
from protocols.kad._client import BeforeRequest, send_request
from protocols.kad._keyspace import key_of
from protocols.kad._lookup import Lookup, LookupConfig, LookupResult
from protocols.kad._types import KadMessage, KadPeer, KadTimeout, MessageType, NotFound, Record

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.host import Host
    from p2pstack.identity import PeerId
    from protocols.kad._config import KadConfig
    from protocols.kad._events import Counters

__all__ = [
    "DhtPeerRouting",
    "OnAnswer",
    "QueryDriver",
    "dialable_addrs",
    "in_lookup",
    "put_message",
    "with_dialable_addrs",
]

_log = logging.getLogger(__name__)

#: Called with (peer, its answer, the lookup) for each answer; may ``lookup.stop()``.
OnAnswer = Callable[["PeerId", KadMessage, Lookup], None]

#: Set while a task works for a lookup: the host's peer-routing hook must not start another
#: lookup from inside one (a dial of a peer without addresses would recurse).
in_lookup: contextvars.ContextVar[bool] = contextvars.ContextVar("kad_in_lookup", default=False)

_REQUEST_ERRORS: tuple[type[BaseException], ...] = (*NETWORK_ERRORS, TimeoutError)


def dialable_addrs(peer: KadPeer) -> tuple[Multiaddr, ...]:
    """``peer``'s addresses as the peerstore keeps them: a trailing ``/p2p/<its id>`` removed
    (py-libp2p sends addresses with it), addresses that name another peer dropped."""
    out: list[Multiaddr] = []
    for addr in peer.addrs:
        try:
            transport, named = split_peer_id(addr)
        except ValueError:
            continue
        if transport is not None and named in (None, peer.peer_id) and transport not in out:
            out.append(transport)
    return tuple(out)


def with_dialable_addrs(peer: KadPeer) -> KadPeer:
    """``peer`` with :func:`dialable_addrs` (what the service hands out)."""
    addrs = dialable_addrs(peer)
    return peer if addrs == peer.addrs else attrs.evolve(peer, addrs=addrs)


class _Run:
    """One lookup being driven: the core, its request, and the driver's wake-up."""

    def __init__(self, lookup: Lookup, message: KadMessage, on_answer: OnAnswer | None) -> None:
        self.lookup = lookup
        self.message = message
        self.on_answer = on_answer
        self.wake = Signal()
        self.in_flight = 0
        self.scopes: dict[PeerId, anyio.CancelScope] = {}  # requests running, by peer


class QueryDriver:
    """Runs lookups and single requests for the service.

    Args:
        host: our host.
        config: the service's settings.
        counters: where to count requests and lookups.
        seeds: the routing table's closest peers to a keyspace point, as ``KadPeer``.
        on_server: called with each peer that answered a DHT request (it is a server).
        on_failure: called with each peer whose request failed or timed out (like go, the
            service drops it from the routing table; it comes back when it talks again).
        on_done: called with the target point of each finished lookup (bucket refresh).
        clock: the current time (the anyio clock).
    """

    def __init__(
        self,
        *,
        host: Host,
        config: KadConfig,
        counters: Counters,
        seeds: Callable[[bytes], list[KadPeer]],
        on_server: Callable[[PeerId], None],
        on_failure: Callable[[PeerId], None],
        on_done: Callable[[bytes], None],
        clock: Callable[[], float],
        before_request: BeforeRequest | None = None,
    ) -> None:
        self._host = host
        self._before_request = before_request
        self._config = config
        self._counters = counters
        self._seeds = seeds
        self._on_server = on_server
        self._on_failure = on_failure
        self._on_done = on_done
        self._clock = clock
        self.lookup_config = LookupConfig(
            k=config.k,
            alpha=config.alpha,
            request_timeout=config.request_timeout,
            query_timeout=config.query_timeout,
        )

    async def request(self, peer: PeerId, message: KadMessage) -> KadMessage | None:
        """Send one request (counted, timed out).

        Raises:
            KadTimeout: no answer in time.
            KadProtocolError: a bad answer.
            P2PError: dialing or negotiating failed.
        """
        self._counters.outbound_requests += 1
        token = in_lookup.set(True)
        try:
            answer = await send_request(
                self._host,
                peer,
                message,
                protocol_id=self._config.protocol_id,
                timeout=self._config.request_timeout,
                max_size=self._config.max_message_size,
                before=self._before_request,
            )
        except KadTimeout:
            self._counters.outbound_timeouts += 1
            self._on_failure(peer)
            raise
        except NETWORK_ERRORS:
            self._counters.outbound_failures += 1
            self._on_failure(peer)
            raise
        finally:
            in_lookup.reset(token)
        self._on_server(peer)
        return answer

    def learn(self, peers: Iterable[KadPeer]) -> None:
        """Put the addresses of peers named in an answer into the peerstore (to dial them)."""
        store = self._host.peerstore
        for peer in peers:
            addrs = dialable_addrs(peer)
            if addrs and peer.peer_id != self._host.peer_id:
                store.add_addrs(peer.peer_id, addrs, ADDR_TTL_RECENT)

    async def lookup(
        self,
        key: bytes,
        message: KadMessage,
        *,
        on_answer: OnAnswer | None = None,
        extra_seeds: Sequence[KadPeer] = (),
    ) -> LookupResult:
        """Run one iterative lookup for ``key`` (a record key, provider key or peer ID bytes).

        Args:
            key: the key; the lookup target is its SHA-256 point.
            message: the request sent to each peer (FIND_NODE, GET_VALUE, GET_PROVIDERS).
            on_answer: called with each answer (after its closer peers were fed in).
            extra_seeds: peers to ask besides the routing table's (bootstrap peers).

        Returns:
            The lookup's result (closest answered peers, hops, counts).

        Raises:
            NotFound: there is no peer to ask (empty routing table, no seed).
        """
        target = key_of(key)
        seeds = {p.peer_id: p for p in [*extra_seeds, *self._seeds(target)]}
        seeds.pop(self._host.peer_id, None)
        if not seeds:
            raise NotFound("no DHT peer to ask: the routing table is empty (bootstrap first)")
        self.learn(seeds.values())
        lookup = Lookup(
            target,
            list(seeds.values()),
            local=self._host.peer_id,
            config=self.lookup_config,
            now=self._clock(),
        )
        try:
            await self._drive(lookup, message, on_answer)
        finally:
            self._counters.lookups += 1
            if lookup.timed_out:
                self._counters.lookups_timed_out += 1
        self._on_done(target)
        return lookup.result()

    async def _drive(self, lookup: Lookup, message: KadMessage, on_answer: OnAnswer | None) -> None:
        run = _Run(lookup, message, on_answer)
        async with anyio.create_task_group() as tg:
            while not lookup.done:
                for peer in lookup.next_requests(self._clock()):
                    run.in_flight += 1
                    tg.start_soon(self._ask, run, peer)
                self._reap(run)
                if lookup.done:
                    break
                deadline = lookup.next_deadline()
                if deadline is None and run.in_flight == 0:
                    break  # nothing pending and nothing to wait for: the core is stuck
                with anyio.CancelScope(deadline=math.inf if deadline is None else deadline):
                    await run.wake.wait()
                now = self._clock()
                if deadline is not None and now >= deadline and not lookup.done:
                    lookup.handle_timer(now)
                self._reap(run)
            # Requests still in flight are cancelled one by one in the order they were sent:
            # a task group's own cancel reaches its tasks in set (memory) order, which would
            # make the simulator's runs differ from one another.
            for scope in list(run.scopes.values()):
                scope.cancel()
            tg.cancel_scope.cancel()

    def _reap(self, run: _Run) -> None:
        # Requests the core gave up on (its request timeout) are failures: stop their tasks.
        # (Requests still in flight when the lookup ends are cancelled, not failed.)
        waiting = set(run.lookup.in_flight)
        for peer in [p for p in run.scopes if p not in waiting]:
            run.scopes.pop(peer).cancel()
            self._counters.outbound_timeouts += 1
            self._on_failure(peer)

    async def _ask(self, run: _Run, peer: KadPeer) -> None:
        try:
            with anyio.CancelScope() as scope:
                run.scopes[peer.peer_id] = scope
                await self._ask_once(run, peer)
        finally:
            if run.scopes.get(peer.peer_id) is scope:
                del run.scopes[peer.peer_id]
            run.in_flight -= 1
            run.wake.set()

    async def _ask_once(self, run: _Run, peer: KadPeer) -> None:
        lookup, on_answer = run.lookup, run.on_answer
        try:
            answer = await self.request(peer.peer_id, run.message)
        except _REQUEST_ERRORS as exc:
            _log.debug("DHT request to %s failed: %r", peer.peer_id, exc)
            if not lookup.done:
                lookup.on_failure(peer.peer_id, self._clock())
        else:
            closer = () if answer is None else answer.closer_peers
            self.learn(closer)
            if not lookup.done:
                lookup.on_response(peer.peer_id, closer, self._clock())
                if answer is not None and on_answer is not None:
                    on_answer(peer.peer_id, answer, lookup)

    async def store_at(self, peers: Sequence[PeerId], message: KadMessage) -> int:
        """Send a PUT_VALUE or ADD_PROVIDER to each of ``peers`` (``max_concurrent_writes`` at
        a time).

        Returns:
            How many accepted it (a PUT_VALUE counts when the echo carries our value).
        """
        limiter = anyio.CapacityLimiter(self._config.max_concurrent_writes)
        stored = [0]

        async def one(peer: PeerId) -> None:
            async with limiter:
                try:
                    answer = await self.request(peer, message)
                except _REQUEST_ERRORS as exc:
                    _log.debug("DHT %s to %s failed: %r", message.type.name, peer, exc)
                    return
            if message.type is MessageType.PUT_VALUE:
                if answer is None or answer.record is None or message.record is None:
                    return
                if answer.record.value != message.record.value:
                    return
            stored[0] += 1

        async with anyio.create_task_group() as tg:
            for peer in peers:
                tg.start_soon(one, peer)
        return stored[0]


def put_message(key: bytes, value: bytes) -> KadMessage:
    """The PUT_VALUE request for ``key`` = ``value`` (the receiver sets ``timeReceived``)."""
    return KadMessage(type=MessageType.PUT_VALUE, key=key, record=Record(key=key, value=value))


class DhtPeerRouting:
    """The host dialer's peer-routing hook (``host.dialer.peer_routing``): finds addresses of
    peers the peerstore knows nothing about with a DHT lookup.

    Args:
        find_peer: the service's ``find_peer``.
    """

    def __init__(self, find_peer: Callable[[PeerId], Awaitable[KadPeer]]) -> None:
        self._find_peer = find_peer

    async def find_peer(self, peer: PeerId) -> Sequence[Multiaddr]:
        """Addresses of ``peer``; empty if the DHT does not know them.

        Raises:
            P2PError: the lookup failed for another reason than finding nothing.
        """
        if in_lookup.get():
            return []  # a lookup's own dial: do not start a lookup inside it
        try:
            return (await self._find_peer(peer)).addrs
        except NotFound:
            return []
