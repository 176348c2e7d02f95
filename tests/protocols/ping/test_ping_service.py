"""Ping between two hosts over the memory transport (plaintext, yamux)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
import pytest

from p2pstack.builder import open_host
from p2pstack.errors import ProtocolNotSupported, RemoteProtocolError
from p2pstack.host import Host, Stream
from p2pstack.interfaces import SecurityChannel, Service
from protocols.ping import PAYLOAD_SIZE, PROTOCOL_ID, Ping
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
