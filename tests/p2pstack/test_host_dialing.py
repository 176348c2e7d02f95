from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.builder import open_host
from p2pstack.connmgr import ConnectionManagerConfig, PeersBelowMinimum
from p2pstack.dialer import DialBackoff, PeerRouting
from p2pstack.errors import DialError
from p2pstack.events import ConnectionClosed, PeerDisconnected, PeerFailed
from p2pstack.host import Host, HostConfig
from p2pstack.identity import PeerId
from tests.p2pstack.hosts import ECHO, echo_handler, echo_once, stack
from transports.memory import MemoryTransport

pytestmark = pytest.mark.anyio


class Routing:
    def __init__(self) -> None:
        self.book: dict[PeerId, list[Multiaddr]] = {}
        self.asked: list[PeerId] = []

    async def find_peer(self, peer: PeerId) -> Sequence[Multiaddr]:
        self.asked.append(peer)
        return self.book.get(peer, [])


@asynccontextmanager
async def hosts(
    count: int, *, config: HostConfig | None = None, peer_routing: PeerRouting | None = None
) -> AsyncIterator[list[Host]]:
    async with AsyncExitStack() as stack_:
        made = []
        for _ in range(count):
            sec, mux = stack()
            host = await stack_.enter_async_context(
                open_host(
                    transports=[MemoryTransport()],
                    security=sec,
                    muxers=mux,
                    listen=["/memory/0"],
                    config=config,
                    peer_routing=peer_routing,
                )
            )
            host.set_stream_handler(ECHO, echo_handler)
            made.append(host)
        yield made


async def test_new_stream_uses_peer_routing_when_peerstore_is_empty() -> None:
    routing = Routing()
    async with hosts(2, peer_routing=routing) as (a, b):
        routing.book[b.peer_id] = b.listen_addrs
        with anyio.fail_after(10):
            stream = await a.new_stream(b.peer_id, ECHO)
            assert await echo_once(stream, b"found") == b"found"
        assert routing.asked == [b.peer_id]
        assert a.peerstore.addrs(b.peer_id) == b.listen_addrs


async def test_peer_routing_can_be_set_later_and_finding_nothing_is_a_dial_error() -> None:
    async with hosts(2) as (a, b):
        routing = Routing()
        a.dialer.peer_routing = routing
        with anyio.fail_after(10), pytest.raises(DialError, match="no known addresses"):
            await a.dial_peer(b.peer_id)
        assert routing.asked == [b.peer_id]


async def test_failed_peer_is_backed_off_but_an_explicit_address_is_tried() -> None:
    async with hosts(2) as (a, b):
        a.peerstore.add_addrs(b.peer_id, [Multiaddr("/memory/999999")], 60)
        with anyio.fail_after(10):
            with pytest.raises(DialError) as first:
                await a.dial_peer(b.peer_id)
            assert not isinstance(first.value, DialBackoff)
            with pytest.raises(DialBackoff):
                await a.new_stream(b.peer_id, ECHO)
            conn = await a.connect(b.addrs[0])
            assert conn.remote_peer == b.peer_id
            assert a.dialer.backoff_remaining(b.peer_id) == 0.0


async def test_a_peer_declared_failed_is_not_redialed_until_it_connects_again() -> None:
    async with hosts(2) as (a, b):
        a.peerstore.add_addrs(b.peer_id, b.listen_addrs, 60)
        a.connmgr.tag_peer(b.peer_id, "useful", 5)
        a.events.emit(PeerFailed(peer_id=b.peer_id, source="membership", reason="left"))
        assert a.dialer.backoff_remaining(b.peer_id) == pytest.approx(
            a.dialer.policy.failed_peer_backoff, abs=1.0
        )
        assert a.connmgr.tags(b.peer_id) == {}
        with anyio.fail_after(10):
            with pytest.raises(DialBackoff):
                await a.dial_peer(b.peer_id)
            await b.connect(a.addrs[0])  # it came back: dialing it works again
            assert a.dialer.backoff_remaining(b.peer_id) == 0.0
            await a.disconnect(b.peer_id)
            assert (await a.dial_peer(b.peer_id)).remote_peer == b.peer_id


async def test_connected_and_protected_peers_are_pinned() -> None:
    async with hosts(2) as (a, b):
        gone = anyio.Event()
        a.events.on(PeerDisconnected, lambda _event: gone.set())
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
            assert a.peerstore.is_pinned(b.peer_id)
            a.connmgr.protect(b.peer_id, "test")
            await a.disconnect(b.peer_id)
            await gone.wait()
        assert a.peerstore.is_pinned(b.peer_id)  # still protected
        a.connmgr.unprotect(b.peer_id, "test")
        assert not a.peerstore.is_pinned(b.peer_id)
        assert a.connmgr.connection_count() == 0


async def test_connection_manager_trims_the_least_valuable_peer() -> None:
    watermarks = ConnectionManagerConfig(
        low_water=2, high_water=2, grace_period=0.0, silence_period=0.0
    )
    async with hosts(4, config=HostConfig(connection_manager=watermarks)) as (a, *others):
        closed: list[PeerId] = []
        trimmed = anyio.Event()

        def on_closed(event: ConnectionClosed) -> None:
            closed.append(event.connection.remote_peer)
            trimmed.set()

        a.events.on(ConnectionClosed, on_closed)
        a.connmgr.tag_peer(others[0].peer_id, "useful", 10)
        a.connmgr.tag_peer(others[2].peer_id, "useful", 5)
        with anyio.fail_after(10):
            for other in others:
                await a.connect(other.addrs[0])
            await trimmed.wait()
        assert closed == [others[1].peer_id]
        assert {c.remote_peer for c in a.connections()} == {others[0].peer_id, others[2].peer_id}
        assert a.connmgr.statistics().trimmed_connections == 1


async def test_peers_below_minimum_is_published_on_the_bus() -> None:
    config = HostConfig(connection_manager=ConnectionManagerConfig(min_peers=1))
    async with hosts(2, config=config) as (a, b):
        with a.events.subscribe(PeersBelowMinimum) as below:
            with anyio.fail_after(10):
                await a.connect(b.addrs[0])
                await a.disconnect(b.peer_id)
                event = await below.receive()
        assert (event.peers, event.minimum) == (0, 1)


async def test_connections_dialed_on_purpose_to_one_peer_are_all_kept() -> None:
    # connect() to an address without /p2p/ opens a new connection each time (the benchmark
    # holds 1,000 this way); only an inbound/outbound or direct/relayed mix is resolved.
    async with hosts(2) as (a, b):
        bare = str(b.addrs[0]).split("/p2p/")[0]
        with anyio.fail_after(10):
            first = await a.connect(bare)
            second = await a.connect(bare)
        assert first is not second
        assert set(a.connections(b.peer_id)) == {first, second}
        assert not first.draining and not second.draining


def test_host_config_defaults_keep_behaviour() -> None:
    config = HostConfig()
    assert config.connection_manager is None
    assert config.dial_policy.allow_loopback and config.dial_policy.allow_private
