"""Ping between two hosts over the memory transport (plaintext, yamux)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
import pytest

from p2pstack.builder import open_host
from p2pstack.errors import P2PError, ProtocolNotSupported, RemoteProtocolError
from p2pstack.host import Host, Stream
from p2pstack.identity import PeerId
from p2pstack.interfaces import SecurityChannel, Service
from protocols.ping import PAYLOAD_SIZE, PROTOCOL_ID, Ping, ping_round_trips
from transports.memory import MemoryNetwork, MemoryTransport
from transports.noise import Noise
from transports.plaintext import Plaintext
from transports.yamux import Yamux


@asynccontextmanager
async def host_pair(
    services_a: Sequence[Service],
    services_b: Sequence[Service],
    security: Callable[[], SecurityChannel] = Plaintext,
) -> AsyncIterator[tuple[Host, Host]]:
    net = MemoryNetwork()

    def host(services: Sequence[Service]) -> AbstractAsyncContextManager[Host]:
        return open_host(
            transports=[MemoryTransport(net)],
            security=[security()],
            muxers=[Yamux()],
            services=services,
            listen=["/memory/0"],
        )

    async with host(services_a) as a, host(services_b) as b:
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
        yield a, b


@pytest.mark.anyio
@pytest.mark.parametrize("security", [Plaintext, Noise])
async def test_ping_round_trips(security: Callable[[], SecurityChannel]) -> None:
    async with host_pair([Ping()], [Ping()], security) as (a, b):
        with anyio.fail_after(10):
            rtts = await a.service(Ping).ping(b.peer_id, count=3)
            back = await b.service(Ping).ping(a.peer_id)
    assert len(rtts) == 3
    assert all(0 <= rtt < 10 for rtt in rtts)
    assert len(back) == 1


@pytest.mark.anyio
async def test_ping_unsupported() -> None:
    async with host_pair([Ping()], []) as (a, b):
        with anyio.fail_after(10), pytest.raises(ProtocolNotSupported):
            await a.service(Ping).ping(b.peer_id)


@pytest.mark.anyio
async def test_ping_bad_echo_and_injected_payload() -> None:
    seen: list[bytes] = []

    async def bad_echo(stream: Stream) -> None:
        data = await stream.receive(PAYLOAD_SIZE)
        seen.append(data)
        await stream.send(b"\x00" * PAYLOAD_SIZE)

    ping = Ping(random_bytes=lambda n: b"\x5a" * n)
    async with host_pair([ping], []) as (a, b):
        b.set_stream_handler(PROTOCOL_ID, bad_echo)
        with anyio.fail_after(10), pytest.raises(RemoteProtocolError, match="mismatch"):
            await ping.ping(b.peer_id)
        assert a.connections(b.peer_id)  # a bad echo fails that ping, not the connection
    assert seen == [b"\x5a" * PAYLOAD_SIZE]


async def _held_stream(host: Host, peer: PeerId) -> Stream | None:
    """A ping stream that has echoed once and is then held open, or None if it was refused."""
    try:
        stream = await host.new_stream(peer, [PROTOCOL_ID])
    except P2PError:
        return None
    try:
        await ping_round_trips(stream, [b"\x01" * PAYLOAD_SIZE], timeout=5)
    except P2PError:
        await stream.reset()
        return None
    return stream


@pytest.mark.anyio
async def test_one_peer_holding_streams_does_not_starve_others() -> None:
    net = MemoryNetwork()

    def host(services: Sequence[Service]) -> AbstractAsyncContextManager[Host]:
        return open_host(
            transports=[MemoryTransport(net)],
            security=[Plaintext()],
            muxers=[Yamux()],
            services=services,
            listen=["/memory/0"],
        )

    async with host([Ping()]) as server, host([]) as hog, host([Ping()]) as honest:
        with anyio.fail_after(20):
            await hog.connect(server.addrs[0])
            await honest.connect(server.addrs[0])
            held = [await _held_stream(hog, server.peer_id) for _ in range(64)]
            rtts = await honest.service(Ping).ping(server.peer_id, count=3)
            assert len(rtts) == 3
            accepted = [s for s in held if s is not None]
            assert len(accepted) == 4  # the per-peer default; the other 60 were reset
            for stream in accepted:
                await stream.aclose()
            # Slots come back when the held streams end.
            assert await _held_stream(hog, server.peer_id) is not None


@pytest.mark.anyio
async def test_per_peer_limit_is_configurable() -> None:
    async with host_pair([Ping()], [Ping(max_inbound_per_peer=1)]) as (a, b):
        with anyio.fail_after(10):
            first = await _held_stream(a, b.peer_id)
            assert first is not None
            assert await _held_stream(a, b.peer_id) is None
            await first.aclose()
    with pytest.raises(ValueError, match="at least 1"):
        Ping(max_inbound_per_peer=0)
