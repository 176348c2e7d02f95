"""py-libp2p 0.8.1 QUIC benchmark peer (its ``QUICTransport`` on aioquic, trio) with
/perf/1.0.0 (https://github.com/libp2p/specs/blob/master/perf/perf.md) and ping, speaking the
benchmark peers' contract (benchmarks/quic.py): ``--listen MA`` prints ``listening`` and serves
until stdin ends; ``--dial MA --actions perf:UP:DOWN,dials:N`` prints one event per action and
``done``. Perf events carry this process's CPU time of each phase (``time.process_time``).

Runs in the py-libp2p venv: ``.interop/py-venv/bin/python benchmarks/quic_py.py --listen
/ip4/127.0.0.1/udp/0/quic-v1``.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import time
import traceback
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.io.utils import read_exactly
from libp2p.network.stream.exceptions import StreamEOF, StreamReset
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.transport.quic.config import QUICTransportConfig

PERF = TProtocol("/perf/1.0.0")
PING = TProtocol("/ipfs/ping/1.0.0")
BLOCK = 64 * 1024  # bytes per write and read


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def read_chunk(stream: Any) -> bytes | None:
    """One read; None at the end of the stream.

    py-libp2p 0.8.1's QUIC stream raises StreamReset (from QUICStreamClosedError), not
    StreamEOF, when the remote's FIN arrives after our own close_write: taken as the end here;
    the callers' byte counts catch a real reset.
    """
    try:
        data = await stream.read()  # all that is buffered: its buffer drops data past 2 MiB
    except (StreamEOF, StreamReset):
        return None
    return data or None


async def write_zeros(stream: Any, count: int) -> None:
    block = bytes(BLOCK)
    while count > 0:
        n = min(BLOCK, count)
        await stream.write(block[:n])
        count -= n


async def serve_perf(stream: Any) -> None:
    """Read the size header and everything up to the FIN, answer that many zeros, close."""
    head = b""
    while (chunk := await read_chunk(stream)) is not None:
        if len(head) < 8:
            head += chunk[: 8 - len(head)]
    await write_zeros(stream, struct.unpack(">Q", head)[0])
    await stream.close_write()


async def perf(host: Any, peer: Any, up: int, down: int) -> None:
    cpu0, start = time.process_time(), time.perf_counter()
    first: float | None = None
    cpu1: float | None = None
    received = 0
    stream = await host.new_stream(peer, [PERF])
    await stream.write(struct.pack(">Q", down))
    await write_zeros(stream, up)
    await stream.close_write()
    while (chunk := await read_chunk(stream)) is not None:
        if first is None:
            first, cpu1 = time.perf_counter(), time.process_time()
        received += len(chunk)
    end = time.perf_counter()
    if received != down:
        raise RuntimeError(f"perf: asked for {down} bytes, got {received}")
    first = first or end
    cpu1 = cpu1 or time.process_time()
    up_s, down_s = first - start, end - first
    emit(
        "perf",
        upload_bytes=up,
        download_bytes=down,
        seconds=end - start,
        upload_mbps=up / 1e6 / up_s if up_s > 0 else None,
        download_mbps=down / 1e6 / down_s if down_s > 0 else None,
        upload_cpu_s=cpu1 - cpu0,
        download_cpu_s=time.process_time() - cpu1,
    )


async def dials(host: Any, info: Any, count: int) -> None:
    """``count`` x (drop the connection, dial anew, one 32-byte ping): ms to the pong."""
    ms = []
    for _ in range(count):
        await host.disconnect(info.peer_id)
        start = time.perf_counter()
        await host.connect(info)
        stream = await host.new_stream(info.peer_id, [PING])
        payload = os.urandom(32)
        await stream.write(payload)
        if await read_exactly(stream, 32) != payload:
            raise RuntimeError("ping: wrong payload back")
        ms.append((time.perf_counter() - start) * 1000)
        await stream.close()
    emit("dials", count=count, ms=ms)


async def main(args: argparse.Namespace) -> None:
    listen = [multiaddr.Multiaddr(args.listen)] if args.listen else []
    quic_addr = listen or [multiaddr.Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1")]
    # Defaults (1,200-byte datagrams, 1 MiB stream window) except: one connection per peer (no
    # fixed 250 ms wait per dial), a read timeout (30 s by default) longer than the upload of a
    # big perf run on a loaded machine, during which the client's read waits, and:
    config = QUICTransportConfig(max_connections_per_peer=1)
    config.STREAM_READ_TIMEOUT = 300.0
    # Its streams silently drop what arrives while 2 MiB wait unread (aioquic grants flow
    # control credit whether or not the application reads), and a perf run then never ends:
    # a reader that falls behind on a loaded machine must not lose data here.
    config.MAX_STREAM_RECEIVE_BUFFER = 256 * 1024 * 1024
    host = new_host(
        key_pair=create_new_key_pair(),
        enable_quic=True,
        listen_addrs=quic_addr,
        connection_config=config,
        quic_transport_opt=config,
    )
    host.set_stream_handler(PERF, serve_perf)
    async with host.run(listen_addrs=listen):
        if args.listen:
            emit("listening", peer_id=str(host.get_id()), addrs=[str(a) for a in host.get_addrs()])
            stdin = trio.lowlevel.FdStream(os.dup(0))
            while await stdin.receive_some(4096):
                pass
            return
        info = info_from_p2p_addr(multiaddr.Multiaddr(args.dial))
        with trio.fail_after(args.timeout):
            await host.connect(info)
            emit("connected", peer_id=str(info.peer_id))
            for item in filter(None, args.actions.split(",")):
                name, *nums = item.split(":")
                if name == "perf":
                    await perf(host, info.peer_id, int(nums[0]), int(nums[1]))
                elif name == "dials":
                    await dials(host, info, int(nums[0]))
                else:
                    raise SystemExit(f"bad action {item}")
        emit("done")


def cli() -> int:
    p = argparse.ArgumentParser(description="py-libp2p QUIC benchmark peer")
    p.add_argument("--listen")
    p.add_argument("--dial")
    p.add_argument("--actions", default="")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--muxer", action="append", help="ignored (QUIC has its own streams)")
    args = p.parse_args()
    try:
        trio.run(main, args)
    except BaseException as exc:  # every failure is one error event and exit 1
        traceback.print_exc()
        emit("error", message=repr(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
