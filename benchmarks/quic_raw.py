"""The QUIC library's own ceiling: a bare aioquic 1.7 client/server pair (``aioquic.asyncio``,
the library's glue, which is fine for a harness measuring the library itself) moving one stream
on loopback, with the benchmark peers' command line and JSON-lines contract (benchmarks/
quic.py): ``--listen /ip4/127.0.0.1/udp/0/quic-v1`` or ``--dial ADDR --actions LIST``.

Actions: ``perf:UP:DOWN`` is a /perf/1.0.0-shaped exchange on one stream (8-byte big-endian
size wanted back, UP bytes, FIN; the server reads to FIN and answers DOWN bytes and FIN;
upload ends at the first byte back, as the perf peers measure it); ``dials:N`` is N x (new
connection + a 32-byte echo on a new stream), the floor of a QUIC dial + first ping. No libp2p
identity or certificate check: TLS 1.3 with an ECDSA P-256 certificate made at start, ALPN
``libp2p``, no client certificate. ``--datagram`` is aioquic's ``max_datagram_size`` (the
QUIC packet size, UDP payload; default 1200); ``--window`` the flow-control limits.

Run: ``python -m benchmarks.quic_raw --listen /ip4/127.0.0.1/udp/0/quic-v1 --datagram 1452``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import socket
import ssl
import struct
import sys
import time
from collections.abc import Sequence

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve
from aioquic.quic.configuration import QuicConfiguration
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BLOCK = 256 * 1024  # bytes per write and per read
ALPN = ["libp2p"]


def emit(event: str, **fields: object) -> None:
    """Print one JSON event line, flushed at once."""
    print(json.dumps({"event": event, **fields}), flush=True)


def configuration(args: argparse.Namespace, *, is_client: bool) -> QuicConfiguration:
    """aioquic settings of either side: datagram size, windows, a throw-away certificate."""
    config = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=ALPN,
        max_datagram_size=args.datagram,
        max_data=args.window,
        max_stream_data=args.window,
        idle_timeout=30.0,
    )
    if is_client:
        config.verify_mode = ssl.CERT_NONE
        return config
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    now = datetime.datetime.now(datetime.UTC)
    config.certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    config.private_key = key
    return config


def set_buffers(transport: asyncio.BaseTransport | None, size: int) -> None:
    """SO_RCVBUF and SO_SNDBUF of a datagram transport's socket (0: leave the OS default; the
    kernel caps the value at net.core.rmem_max / wmem_max)."""
    if transport is None or not size:
        return
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


async def read_all(reader: asyncio.StreamReader) -> tuple[bytes, int]:
    """The first 8 bytes and the count of every byte after them, up to the FIN."""
    head = await reader.readexactly(8)
    count = 0
    while chunk := await reader.read(BLOCK):
        count += len(chunk)
    return head, count


def write_zeros(writer: asyncio.StreamWriter, count: int) -> None:
    """Queue ``count`` zero bytes (aioquic's writer buffers them all: no backpressure)."""
    block = bytes(BLOCK)
    full, rest = divmod(count, BLOCK)
    for _ in range(full):
        writer.write(block)
    writer.write(block[:rest])


def on_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Server side of one stream: perf (a size header, bytes to FIN, the size back) or echo."""

    async def serve_one() -> None:
        head, _ = await read_all(reader)
        (wanted,) = struct.unpack(">Q", head)
        write_zeros(writer, wanted)
        writer.write_eof()

    task = asyncio.get_running_loop().create_task(serve_one())
    TASKS.add(task)
    task.add_done_callback(TASKS.discard)


TASKS: set[asyncio.Task[None]] = set()  # strong references to the per-stream server tasks


async def perf_once(proto: QuicConnectionProtocol, up: int, down: int) -> None:
    """One perf exchange on a new stream; emits a ``perf`` event."""
    cpu0, start = time.process_time(), time.perf_counter()
    cpu1: float | None = None
    reader, writer = await proto.create_stream()
    writer.write(struct.pack(">Q", down))
    write_zeros(writer, up)
    writer.write_eof()
    received = 0
    first: float | None = None
    while chunk := await reader.read(BLOCK):
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


async def one_dial(args: argparse.Namespace, host: str, port: int) -> float:
    """Seconds for a new connection plus a 32-byte round trip on a new stream."""
    start = time.perf_counter()
    async with connect(host, port, configuration=configuration(args, is_client=True)) as proto:
        reader, writer = await proto.create_stream()
        writer.write(struct.pack(">Q", 32) + bytes(32))
        writer.write_eof()
        if len(await reader.read(64)) == 0:
            raise RuntimeError("echo: nothing back")
        elapsed = time.perf_counter() - start
        proto.close()
    return elapsed


async def dial(args: argparse.Namespace) -> None:
    """Run the dialer's actions against ``args.dial``."""
    parts = args.dial.split("/")
    host, port = parts[2], int(parts[4])
    async with connect(host, port, configuration=configuration(args, is_client=True)) as proto:
        set_buffers(proto._transport, args.sockbuf)
        emit("connected", datagram=args.datagram)
        for item in filter(None, args.actions.split(",")):
            name, *nums = item.split(":")
            if name == "perf":
                await asyncio.wait_for(perf_once(proto, int(nums[0]), int(nums[1])), args.timeout)
            elif name == "dials":
                ms = [await one_dial(args, host, port) * 1000 for _ in range(int(nums[0]))]
                emit("dials", count=len(ms), ms=ms)
            else:
                raise SystemExit(f"bad action {item}")
        proto.close()
    emit("done")


async def listen(args: argparse.Namespace) -> None:
    """Serve until stdin reaches EOF."""
    host = args.listen.split("/")[2]
    server = await serve(
        host, 0, configuration=configuration(args, is_client=False), stream_handler=on_stream
    )
    transport = server._transport  # aioquic's serve() does not return the bound port otherwise
    assert transport is not None
    set_buffers(transport, args.sockbuf)
    port = transport.get_extra_info("sockname")[1]
    emit("listening", addrs=[f"/ip4/{host}/udp/{port}/quic-v1"], datagram=args.datagram)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    server.close()


def cli(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run the listener or the dialer."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--listen")
    p.add_argument("--dial")
    p.add_argument("--actions", default="")
    p.add_argument("--datagram", type=int, default=1200, help="max_datagram_size (bytes)")
    p.add_argument("--window", type=int, default=16 << 20, help="max_data = max_stream_data")
    p.add_argument("--sockbuf", type=int, default=0, help="SO_RCVBUF/SO_SNDBUF (0: OS default)")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--muxer", action="append", help="ignored (QUIC has its own streams)")
    args = p.parse_args(argv)
    try:
        asyncio.run(dial(args) if args.dial else listen(args))
    except Exception as exc:
        emit("error", message=repr(exc))
        raise


if __name__ == "__main__":
    cli()
