"""Processes of the daemon benchmark (benchmarks/daemon.py), one JSON line per event:

- ``remote``: a p2pstack node on 127.0.0.1 serving the sink protocol, printing ``listening``;
- ``direct ADDR``: a p2pstack library host uploads to the remote (two processes in all);
- ``via CONTROL ADDR``: a client of a p2pd daemon makes the daemon connect to the remote and
  uploads through the stream the daemon relays (three processes).

The sink protocol needs no half-close (js-libp2p's daemon ends a relayed stream when its client
half-closes, so /perf/1.0.0's "upload, then close" cannot be used through it): the uploader
sends an 8-byte big-endian length and that many bytes; the sink reads them all and answers one
byte. The upload is timed from the first byte sent to that answer; connecting and opening the
stream are not counted. Both paths use TCP + Noise + yamux to the remote.
"""

from __future__ import annotations

import argparse
import json
import signal
import struct
import time
from typing import Protocol

import anyio

from p2pstack.connection import Stream
from p2pstack.multiaddrs import parse_multiaddr, split_peer_id
from p2pstack.p2pd import DaemonClient
from p2pstack.resources import NullResourceManager
from p2pstack.roots.defaults import open_default_host

SINK = "/p2pstack/bench-sink/1.0.0"
BLOCK = 256 * 1024  # bytes per send
TIMEOUT = 600.0  # seconds for one upload, on a loaded machine


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


class Sendable(Protocol):
    async def send(self, item: bytes) -> None: ...
    async def receive(self, max_bytes: int = 65536) -> bytes: ...


async def serve_sink(stream: Stream) -> None:
    """Read the length and that many bytes (each wait bounded), answer one byte."""
    with anyio.fail_after(TIMEOUT):
        header = b""
        while len(header) < 8:
            header += await stream.receive(8 - len(header))
        left = struct.unpack(">Q", header)[0]
        while left > 0:
            left -= len(await stream.receive(min(left, BLOCK)))
        await stream.send(b"\x01")
        await stream.send_eof()


async def upload(stream: Sendable, size: int) -> float:
    """Send the sink's header and ``size`` bytes; seconds until its answer."""
    block = bytes(BLOCK)
    with anyio.fail_after(TIMEOUT):
        start = time.perf_counter()
        await stream.send(struct.pack(">Q", size))
        full, rest = divmod(size, BLOCK)
        for _ in range(full):
            await stream.send(block)
        if rest:
            await stream.send(block[:rest])
        if await stream.receive(1) != b"\x01":
            raise RuntimeError("sink answered something else")
        return time.perf_counter() - start


async def remote() -> None:
    async with open_default_host(
        listen=["/ip4/127.0.0.1/tcp/0"], resource_manager=NullResourceManager()
    ) as host:
        host.set_stream_handler(SINK, serve_sink)
        emit("listening", peer_id=str(host.peer_id), addrs=[str(a) for a in host.addrs])
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                return


async def direct(addr: str, size: int) -> None:
    async with open_default_host(resource_manager=NullResourceManager()) as host:
        with anyio.fail_after(60):
            conn = await host.connect(addr)
            stream = await host.new_stream(conn.remote_peer, [SINK])
        seconds = await upload(stream, size)
        await stream.aclose()
    emit("upload", path="direct", bytes=size, seconds=seconds, mbps=size / 1e6 / seconds)


async def via_daemon(control: str, addr: str, size: int) -> None:
    transport, peer = split_peer_id(parse_multiaddr(addr))
    if transport is None or peer is None:
        raise SystemExit(f"need ADDR/p2p/ID, got {addr}")
    client = DaemonClient(control)
    await client.connect(peer, [transport], timeout=60)
    _info, stream = await client.stream_open(peer, [SINK], timeout=60)
    async with stream:
        seconds = await upload(stream, size)
    emit("upload", path="daemon", bytes=size, seconds=seconds, mbps=size / 1e6 / seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("remote")
    d = sub.add_parser("direct")
    d.add_argument("addr")
    v = sub.add_parser("via")
    v.add_argument("control")
    v.add_argument("addr")
    for p in (d, v):
        p.add_argument("--size", type=int, default=256 * 1024 * 1024)
    args = parser.parse_args()
    if args.mode == "remote":
        anyio.run(remote)
    elif args.mode == "direct":
        anyio.run(direct, args.addr, args.size)
    else:
        anyio.run(via_daemon, args.control, args.addr, args.size)


if __name__ == "__main__":
    main()
