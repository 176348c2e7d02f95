"""Helpers for host tests: hosts over the in-memory transport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import anyio

from p2pstack.builder import open_host
from p2pstack.host import Host, HostConfig, Stream
from p2pstack.interfaces import Muxer, SecurityChannel, Service
from transports.memory import MemoryTransport
from transports.mplex import Mplex
from transports.noise import Noise
from transports.plaintext import Plaintext
from transports.yamux import Yamux

ECHO = "/test/echo/1.0.0"


def stack(
    security: str = "noise", muxer: str = "yamux"
) -> tuple[list[SecurityChannel], list[Muxer]]:
    sec: SecurityChannel = Noise() if security == "noise" else Plaintext()
    mux: Muxer = Yamux() if muxer == "yamux" else Mplex()
    return [sec], [mux]


async def echo_handler(stream: Stream) -> None:
    while True:
        try:
            data = await stream.receive()
        except anyio.EndOfStream:
            return
        await stream.send(data)


@asynccontextmanager
async def memory_hosts(
    count: int,
    *,
    security: str = "noise",
    muxer: str = "yamux",
    services: Sequence[Sequence[Service]] | None = None,
    config: HostConfig | None = None,
) -> AsyncIterator[list[Host]]:
    """``count`` hosts listening on fresh memory addresses, each serving ECHO."""
    async with AsyncExitStack() as stack_:
        hosts = []
        for i in range(count):
            sec, mux = stack(security, muxer)
            host = await stack_.enter_async_context(
                open_host(
                    transports=[MemoryTransport()],
                    security=sec,
                    muxers=mux,
                    services=services[i] if services else (),
                    listen=["/memory/0"],
                    config=config,
                )
            )
            host.set_stream_handler(ECHO, echo_handler)
            hosts.append(host)
        yield hosts


async def echo_once(stream: Stream, payload: bytes) -> bytes:
    """Send ``payload``, half-close, and read everything back."""
    async with anyio.create_task_group() as tg:

        async def writer() -> None:
            for i in range(0, len(payload), 65536):
                await stream.send(payload[i : i + 65536])
            await stream.send_eof()

        tg.start_soon(writer)
        received = bytearray()
        while True:
            try:
                received += await stream.receive()
            except anyio.EndOfStream:
                break
    return bytes(received)
