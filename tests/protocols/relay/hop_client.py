"""A small test-only relay client speaking the hop and stop protocols over raw streams with
``protocols.relay``'s wire module: enough to drive a relay from the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio

from p2pstack.builder import open_host
from p2pstack.host import Host, Stream
from p2pstack.identity import PeerId
from p2pstack.interfaces import Service
from protocols.relay import (
    HOP_PROTOCOL_ID,
    STOP_PROTOCOL_ID,
    HopMessage,
    HopType,
    Peer,
    RelayStatusError,
    Status,
    StopMessage,
    StopType,
    read_hop,
    read_stop,
    write_hop,
    write_stop,
)
from transports.memory import MemoryNetwork, UpgradedMemoryTransport
from transports.noise import Noise
from transports.yamux import Yamux

__all__ = ["accept_stops", "connect", "memory_host", "reserve"]


def memory_host(
    net: MemoryNetwork, services: list[Service] | None = None, *, limited: bool = False
) -> AbstractAsyncContextManager[Host]:
    """A host on the memory network (pre-upgraded connections, ``limited`` if asked)."""
    return open_host(
        transports=[UpgradedMemoryTransport(net, limited=limited)],
        security=[Noise()],
        muxers=[Yamux()],
        services=services or [],
        listen=["/memory/0"],
    )


async def reserve(host: Host, relay: PeerId) -> HopMessage:
    """RESERVE at ``relay``; returns its STATUS answer, whatever the status."""
    with anyio.fail_after(10):
        stream = await host.new_stream(relay, HOP_PROTOCOL_ID, allow_limited=True)
        async with stream:
            await write_hop(stream, HopMessage(type=HopType.RESERVE))
            return await read_hop(stream)


async def connect(host: Host, relay: PeerId, target: PeerId) -> tuple[Stream, HopMessage]:
    """CONNECT to ``target`` through ``relay``.

    Returns:
        The relayed stream (the circuit's bytes follow) and the relay's OK.

    Raises:
        RelayStatusError: the relay answered another status.
    """
    with anyio.fail_after(10):
        stream = await host.new_stream(relay, HOP_PROTOCOL_ID, allow_limited=True)
        await write_hop(stream, HopMessage(type=HopType.CONNECT, peer=Peer(id=target)))
        answer = await read_hop(stream)
    if answer.status is not Status.OK:
        await stream.reset()
        raise RelayStatusError(answer.status or Status.UNEXPECTED_MESSAGE, "relay refused")
    return stream, answer


Circuit = Callable[[Stream, StopMessage], Awaitable[None]]


async def _echo(stream: Stream, _request: StopMessage) -> None:
    while True:
        try:
            data = await stream.receive()
        except anyio.EndOfStream:
            await stream.send_eof()
            return
        await stream.send(data)


def accept_stops(
    host: Host,
    serve: Circuit = _echo,
    status: Status = Status.OK,
    seen: list[StopMessage] | None = None,
) -> None:
    """Answer the relay's stop CONNECTs with ``status``; on OK, ``serve`` the circuit (echo)."""

    async def handle(stream: Stream) -> None:
        request = await read_stop(stream)
        if seen is not None:
            seen.append(request)
        await write_stop(stream, StopMessage(type=StopType.STATUS, status=status))
        if status is Status.OK:
            await serve(stream, request)

    host.set_stream_handler(STOP_PROTOCOL_ID, handle)


@asynccontextmanager
async def trio_of_hosts(
    relay_service: Service,
) -> AsyncIterator[tuple[Host, Host, Host]]:
    """A relay running ``relay_service``, a target and a source, both connected to it."""
    net = MemoryNetwork()
    async with (
        memory_host(net, [relay_service]) as relay,
        memory_host(net) as target,
        memory_host(net) as source,
    ):
        with anyio.fail_after(10):
            await target.connect(relay.addrs[0])
            await source.connect(relay.addrs[0])
        yield relay, target, source
