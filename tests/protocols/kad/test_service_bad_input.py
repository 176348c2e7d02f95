"""Bad input against the Kad service: each is refused with a reset stream and counted, and
never stalls a lookup past its deadline."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.builder import open_host
from p2pstack.errors import StreamReset
from p2pstack.host import Host, Stream
from p2pstack.identity import PeerId
from p2pstack.varint import encode_uvarint
from protocols.identify import Identify
from protocols.kad import (
    PROTOCOL_ID,
    KadConfig,
    KadMessage,
    KadPeer,
    KadPeerAdded,
    MessageType,
    NotFound,
    Record,
)
from protocols.kad._cid import cid_to_key
from protocols.kad._client import read_message
from protocols.kad._query import dialable_addrs
from protocols.kad._wire import KadMessageDecoder, frame
from tests.protocols.kad._network import (
    TEST_CONFIG,
    connect_until_in_table,
    kad,
    open_kad_host,
)
from transports.memory import MemoryNetwork, MemoryTransport
from transports.plaintext import Plaintext
from transports.yamux import Yamux

KEY = cid_to_key("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")


@asynccontextmanager
async def server_and_raw_client(
    config: KadConfig = TEST_CONFIG,
) -> AsyncIterator[tuple[Host, Host]]:
    """A DHT server, and a host without the DHT service that speaks raw bytes to it."""
    net = MemoryNetwork()
    async with (
        open_kad_host(net, config) as server,
        open_host(
            transports=[MemoryTransport(net)],
            security=[Plaintext()],
            muxers=[Yamux()],
            services=[Identify()],
            listen=["/memory/0"],
        ) as client,
    ):
        await client.connect(server.addrs[0])
        yield server, client


async def send_and_expect_reset(client: Host, server: Host, data: bytes) -> None:
    stream = await client.new_stream(server.peer_id, [PROTOCOL_ID])
    await stream.send(data)
    with pytest.raises(StreamReset):
        while True:
            await stream.receive()


def ask(message: KadMessage) -> bytes:
    return frame(message)


@pytest.mark.anyio
async def test_oversized_message_resets_the_stream_and_is_counted() -> None:
    async with server_and_raw_client() as (server, client):
        with anyio.fail_after(10):
            await send_and_expect_reset(client, server, encode_uvarint(1 << 20) + b"x" * 100)
        assert kad(server).statistics().inbound_bad == 1


@pytest.mark.anyio
async def test_garbage_protobuf_resets_the_stream_and_is_counted() -> None:
    async with server_and_raw_client() as (server, client):
        with anyio.fail_after(10):
            await send_and_expect_reset(client, server, b"\x05\xff\xff\xff\xff\xff")
        assert kad(server).statistics().inbound_bad == 1


@pytest.mark.anyio
async def test_record_failing_validation_is_refused_and_not_stored() -> None:
    async with server_and_raw_client() as (server, client):
        with anyio.fail_after(10):
            for key in (b"/pk/not-a-peer-id", b"/unknown/x"):
                put = KadMessage(
                    type=MessageType.PUT_VALUE, key=key, record=Record(key=key, value=b"v")
                )
                await send_and_expect_reset(client, server, ask(put))
        assert kad(server).statistics().inbound_bad == 2
        assert len(kad(server).records) == 0


@pytest.mark.anyio
async def test_provider_record_for_someone_else_is_refused() -> None:
    other = PeerId.from_string("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA")
    someone = KadPeer(other, (Multiaddr("/ip4/10.0.0.1/tcp/4001"),))
    async with server_and_raw_client() as (server, client):
        add = KadMessage(type=MessageType.ADD_PROVIDER, key=KEY, provider_peers=(someone,))
        with anyio.fail_after(10):
            await send_and_expect_reset(client, server, ask(add))
        assert kad(server).statistics().inbound_bad == 1
        assert kad(server).providers.get(KEY, anyio.current_time()) == []


@pytest.mark.anyio
async def test_several_requests_on_one_stream_are_answered_in_order() -> None:
    async with server_and_raw_client() as (server, client):
        requests = [
            KadMessage(type=MessageType.FIND_NODE, key=b"a"),
            KadMessage(type=MessageType.GET_VALUE, key=b"/test/b"),
            KadMessage(type=MessageType.GET_PROVIDERS, key=KEY),
        ]
        with anyio.fail_after(10):
            stream = await client.new_stream(server.peer_id, [PROTOCOL_ID])
            await stream.send(b"".join(ask(m) for m in requests))
            decoder, pending = KadMessageDecoder(), deque[KadMessage]()
            answers = [await read_message(stream, decoder, pending) for _ in requests]
            await stream.aclose()
        assert [(a.type, a.key) for a in answers] == [(m.type, m.key) for m in requests]
        assert kad(server).statistics().inbound_requests == 3


@pytest.mark.anyio
async def test_idle_stream_is_reset_after_the_idle_timeout() -> None:
    config = KadConfig(passthrough_namespaces=("test",), idle_timeout=0.2)
    async with server_and_raw_client(config) as (server, client):
        with anyio.fail_after(10):
            stream = await client.new_stream(server.peer_id, [PROTOCOL_ID])
            with pytest.raises(StreamReset):
                await stream.receive()
        assert kad(server).statistics().inbound_timeouts == 1


@pytest.mark.anyio
async def test_a_flood_of_streams_from_one_peer_is_bounded() -> None:
    config = KadConfig(passthrough_namespaces=("test",), max_inbound_per_peer=3)
    async with server_and_raw_client(config) as (server, client):
        streams: list[Stream] = []
        with anyio.fail_after(10):
            for _ in range(3):
                streams.append(await client.new_stream(server.peer_id, [PROTOCOL_ID]))
                await streams[-1].send(ask(KadMessage(type=MessageType.FIND_NODE, key=b"x")))
                await streams[-1].receive()  # answered: the server holds the stream now
            for _ in range(5):
                with pytest.raises(StreamReset):  # during negotiation or at the first read
                    extra = await client.new_stream(server.peer_id, [PROTOCOL_ID])
                    await extra.receive()
            stats = kad(server).statistics()
            assert stats.inbound_rejected == 5 and stats.inbound_streams == 3
            # The held streams still work.
            await streams[0].send(ask(KadMessage(type=MessageType.FIND_NODE, key=b"y")))
            assert await streams[0].receive()


def answer_once_then_hang() -> Callable[[Stream], Awaitable[None]]:
    """A DHT handler that answers its first request (the lookup check that admits it to a
    routing table) and then never answers again."""
    answered = [False]

    async def handle(stream: Stream) -> None:
        request = await read_message(stream, KadMessageDecoder(), deque())
        if not answered[0]:
            answered[0] = True
            await stream.send(frame(KadMessage(type=request.type, key=request.key)))
            return
        await anyio.sleep_forever()

    return handle


@pytest.mark.anyio
async def test_a_peer_that_never_answers_costs_one_request_timeout() -> None:
    config = KadConfig(passthrough_namespaces=("test",), request_timeout=0.3, query_timeout=5.0)
    net = MemoryNetwork()
    async with (
        open_kad_host(net, config) as a,
        open_kad_host(net, config) as good,
        open_host(
            transports=[MemoryTransport(net)],
            security=[Plaintext()],
            muxers=[Yamux()],
            services=[Identify()],
            listen=["/memory/0"],
        ) as silent,
    ):
        silent.set_stream_handler(PROTOCOL_ID, answer_once_then_hang())
        with anyio.fail_after(10):
            await connect_until_in_table(a, good)
            with a.events.subscribe(KadPeerAdded) as added:
                await a.connect(silent.addrs[0])
                async for event in added:  # identify lists the kad protocol
                    if event.peer_id == silent.peer_id:
                        break
            await kad(a).bootstrap()  # asks both; the silent one times out and is dropped
            assert silent.peer_id not in kad(a).routing_table
            started = anyio.current_time()
            await kad(good).put_value(b"/test/k", b"v")
            assert await kad(a).get_value(b"/test/k", quorum=5) == b"v"
            with pytest.raises(NotFound):
                await kad(a).get_value(b"/test/missing")
            assert anyio.current_time() - started < 3.0
        assert kad(a).statistics().outbound_timeouts >= 1


@pytest.mark.anyio
async def test_a_lookup_among_silent_peers_ends_at_its_deadline() -> None:
    config = KadConfig(passthrough_namespaces=("test",), request_timeout=5.0, query_timeout=0.5)
    net = MemoryNetwork()
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(open_kad_host(net, config))
        silent_hosts = [
            await stack.enter_async_context(
                open_host(
                    transports=[MemoryTransport(net)],
                    security=[Plaintext()],
                    muxers=[Yamux()],
                    services=[Identify()],
                    listen=["/memory/0"],
                )
            )
            for _ in range(3)
        ]
        with anyio.fail_after(10):
            for silent in silent_hosts:
                silent.set_stream_handler(PROTOCOL_ID, answer_once_then_hang())
                with a.events.subscribe(KadPeerAdded) as added:
                    await a.connect(silent.addrs[0])
                    await added.receive()  # it answered the lookup check
            started = anyio.current_time()
            result = await kad(a).get_closest_peers(b"anything")
            elapsed = anyio.current_time() - started
        assert result.timed_out and result.closest == []
        assert 0.5 <= elapsed < 2.0
        assert kad(a).statistics().lookups_timed_out == 1


def test_addresses_from_answers_are_made_dialable() -> None:
    me = PeerId.from_string("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA")
    other = "12D3KooWEzL7GR1M9ELSN78z1SDYigXD5cEZfvA2mPZbc2WuvSYd"
    peer = KadPeer(
        me,
        (
            Multiaddr(f"/ip4/10.0.0.1/tcp/4001/p2p/{me}"),  # py-libp2p's form
            Multiaddr("/ip4/10.0.0.1/tcp/4001"),  # the same, once
            Multiaddr(f"/ip4/10.0.0.2/tcp/4001/p2p/{other}"),  # someone else's: dropped
            Multiaddr(f"/p2p/{me}"),  # nothing to dial: dropped
        ),
    )
    assert dialable_addrs(peer) == (Multiaddr("/ip4/10.0.0.1/tcp/4001"),)


@pytest.mark.anyio
async def test_a_thousand_pipelined_requests_on_one_stream_are_answered_in_order() -> None:
    async with server_and_raw_client() as (server, client):
        pings = [KadMessage(type=MessageType.PING, key=b"%d" % i) for i in range(1000)]
        with anyio.fail_after(20):
            stream = await client.new_stream(server.peer_id, [PROTOCOL_ID])
            await stream.send(b"".join(ask(m) for m in pings))  # ~8 KB, one write
            decoder, pending = KadMessageDecoder(), deque[KadMessage]()
            answers = [await read_message(stream, decoder, pending) for _ in pings]
            await stream.aclose()
        assert [a.key for a in answers] == [m.key for m in pings]
        assert kad(server).statistics().inbound_requests == 1000
