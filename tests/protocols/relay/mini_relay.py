"""A small relay (hop) for the client tests: RESERVE and CONNECT with a fixed TTL and limit,
streams spliced without enforcing the limit, and a refusal on demand. The project's relay is
``RelayService`` (with the client end to end in test_end_to_end.py); this one keeps the client
tests independent of it."""

from __future__ import annotations

import time

import anyio
from multiaddr import Multiaddr

from p2pstack.connection import Stream
from p2pstack.errors import NETWORK_ERRORS
from p2pstack.host import Host
from p2pstack.identity import PeerId
from protocols.relay import (
    HOP_PROTOCOL_ID,
    STOP_PROTOCOL_ID,
    HopMessage,
    HopType,
    Limit,
    Peer,
    Reservation,
    Status,
    StopMessage,
    StopType,
    read_hop,
    read_stop,
    write_hop,
    write_stop,
)

LIMIT = Limit(duration=120, data=1 << 17)


class MiniRelay:
    def __init__(self, *, ttl: float = 3600.0, refuse: bool = False) -> None:
        self.ttl = ttl
        self.refuse = refuse
        self.reserved: set[PeerId] = set()
        self.reserve_count = 0
        self.host: Host | None = None

    async def start(self, host: Host) -> None:
        self.host = host
        host.set_stream_handler(HOP_PROTOCOL_ID, self._hop)

    async def stop(self) -> None:
        pass

    async def _hop(self, stream: Stream) -> None:
        with anyio.fail_after(10):
            msg = await read_hop(stream)
        if msg.type is HopType.RESERVE:
            await self._reserve(stream)
        elif msg.type is HopType.CONNECT and msg.peer is not None:
            await self._connect(stream, msg.peer.id)

    async def _reserve(self, stream: Stream) -> None:
        assert self.host is not None
        if self.refuse:
            await _status(stream, Status.RESERVATION_REFUSED)
            return
        self.reserved.add(stream.remote_peer)
        self.reserve_count += 1
        addrs = [Multiaddr(str(a)) for a in self.host.listen_addrs]
        reservation = Reservation(expire=int(time.time() + self.ttl), addrs=addrs)
        answer = HopMessage(
            type=HopType.STATUS, status=Status.OK, reservation=reservation, limit=LIMIT
        )
        await write_hop(stream, answer)

    async def _connect(self, stream: Stream, target: PeerId) -> None:
        assert self.host is not None
        if target not in self.reserved:
            await _status(stream, Status.NO_RESERVATION)
            return
        stop = await self.host.new_stream(target, STOP_PROTOCOL_ID)
        request = StopMessage(type=StopType.CONNECT, peer=Peer(id=stream.remote_peer), limit=LIMIT)
        await write_stop(stop, request)
        with anyio.fail_after(10):
            answer = await read_stop(stop)
        if answer.status is not Status.OK:
            await _status(stream, Status.CONNECTION_FAILED)
            return
        await write_hop(stream, HopMessage(type=HopType.STATUS, status=Status.OK, limit=LIMIT))
        async with anyio.create_task_group() as tg:
            tg.start_soon(_pipe, stream, stop)
            tg.start_soon(_pipe, stop, stream)


async def stop_connect(host: Host, target: PeerId, source: PeerId) -> int:
    """Open a stop stream to ``target`` as a relay would, and return its answer's status."""
    stop = await host.new_stream(target, STOP_PROTOCOL_ID)
    await write_stop(stop, StopMessage(type=StopType.CONNECT, peer=Peer(id=source)))
    answer = await read_stop(stop)
    await stop.aclose()
    assert answer.status is not None  # read_stop: a STATUS carries one
    return int(answer.status)


async def _status(stream: Stream, status: Status) -> None:
    await write_hop(stream, HopMessage(type=HopType.STATUS, status=status))


async def _pipe(src: Stream, dst: Stream) -> None:
    try:
        while True:
            await dst.send(await src.receive())
    except anyio.EndOfStream:
        await dst.send_eof()
    except NETWORK_ERRORS:
        await dst.reset()
        await src.reset()


async def _serve() -> None:
    """Run a relay on 127.0.0.1, print ``{"addr": ...}``, serve until stdin closes."""
    import json
    import sys

    from p2pstack.builder import open_host
    from transports.noise import Noise
    from transports.tcp import TcpTransport
    from transports.yamux import Yamux

    async with open_host(
        transports=[TcpTransport()],
        security=[Noise()],
        muxers=[Yamux()],
        services=[MiniRelay()],
        listen=["/ip4/127.0.0.1/tcp/0"],
    ) as host:
        print(json.dumps({"addr": str(host.addrs[0])}), flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)


if __name__ == "__main__":
    anyio.run(_serve)
