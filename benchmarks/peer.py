"""A p2pstack benchmark peer speaking the same command line and JSON-lines contract as the
interop peers (tests/interop/README.md), with /perf/1.0.0
(https://github.com/libp2p/specs/blob/master/perf/perf.md) and the echo protocol, plus the
benchmark actions ``dials:N``, ``rate:N`` and ``conns:N:S``.

Run as ``python -m benchmarks.peer --listen /ip4/127.0.0.1/tcp/0`` or with ``--dial ADDR
--actions LIST``. Listen mode reads stdin: a line ``stats`` prints the host's statistics; EOF
(or SIGTERM) stops it. ``conns:N:S`` opens N new connections with S echo streams each, proves
every stream with a one-byte echo, prints ``holding``, waits for one stdin line, then closes
every stream and connection and prints ``conns`` with the error count.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import resource
import signal
import struct
import sys
import time
from collections.abc import Sequence

import anyio
import attrs

from p2pstack.connection import Connection, Stream
from p2pstack.host import Host, HostConfig
from p2pstack.resources import NullResourceManager
from p2pstack.roots.defaults import open_default_host
from protocols.identify import Identify
from protocols.perf import Perf
from protocols.ping import Ping

ECHO = "/p2pstack/echo/1.0.0"
PERF = "/perf/1.0.0"
BLOCK = 256 * 1024  # bytes per send for perf and echo payloads
ARITY = {"ping": 1, "perf": 2, "streams": 2, "dials": 1, "rate": 1, "conns": 2}
DIAL_CONCURRENCY = 64  # conns: dials in flight at once (below the remote's pending-upgrade cap)


def emit(event: str, **fields: object) -> None:
    """Print one JSON event line, flushed at once."""
    print(json.dumps({"event": event, **fields}), flush=True)


def raise_nofile() -> None:
    """Raise the soft open-file limit to the hard one: 1,000 connections need > 1,024 fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve_echo(stream: Stream) -> None:
    """Copy every byte back until the client half-closes (each wait bounded by 120 s)."""
    while True:
        try:
            with anyio.fail_after(120):
                data = await stream.receive(BLOCK)
        except anyio.EndOfStream:
            break
        await stream.send(data)
    await stream.send_eof()


async def drain_stdin(host: Host) -> None:
    """Answer ``stats`` lines with the host's statistics; return at EOF."""
    stdin = anyio.wrap_file(sys.stdin)
    async for line in stdin:
        if line.strip() == "stats":
            st = host.statistics()
            emit("stats", connections=st.connections, streams=st.streams)
    # EOF: the caller stops the host.


async def perf_once(conn: Connection, up: int, down: int, timeout: float) -> None:
    """One perf exchange; upload ends at the first byte back, as the peers measure it."""
    block = bytes(BLOCK)
    cpu0 = time.process_time()
    cpu1: float | None = None
    with anyio.fail_after(timeout):
        start = time.perf_counter()
        stream = await conn.new_stream([PERF])
        await stream.send(struct.pack(">Q", down))
        full, rest = divmod(up, BLOCK)
        for _ in range(full):
            await stream.send(block)
        if rest:
            await stream.send(block[:rest])
        await stream.send_eof()
        received = 0
        first: float | None = None
        while True:
            try:
                received += len(await stream.receive(BLOCK))
            except anyio.EndOfStream:
                break
            if first is None:
                first, cpu1 = time.perf_counter(), time.process_time()
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
        upload_seconds=up_s,
        download_seconds=down_s,
        upload_mbps=up / 1e6 / up_s if up_s > 0 else None,
        download_mbps=down / 1e6 / down_s if down_s > 0 else None,
        upload_cpu_s=cpu1 - cpu0,
        download_cpu_s=time.process_time() - cpu1,
    )


async def echo_once(conn: Connection, data: bytes, block: int) -> bool:
    """Upload ``data`` on a new echo stream while reading it back; compare sha256."""
    stream = await conn.new_stream([ECHO])
    digest = hashlib.sha256()
    got = 0

    async def reader() -> None:
        nonlocal got
        while True:
            try:
                chunk = await stream.receive(block)
            except anyio.EndOfStream:
                return
            digest.update(chunk)
            got += len(chunk)

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        view = memoryview(data)
        for off in range(0, len(data), block):
            await stream.send(bytes(view[off : off + block]))
        await stream.send_eof()
    return got == len(data) and digest.digest() == hashlib.sha256(data).digest()


async def streams(conn: Connection, count: int, size: int, timeout: float) -> None:
    """``count`` concurrent echo streams of ``size`` random bytes each, all verified."""
    data = os.urandom(size)
    results: list[bool] = []

    async def one() -> None:
        results.append(await echo_once(conn, data, 64 * 1024))

    start = time.perf_counter()
    with anyio.fail_after(timeout):
        async with anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(one)
    ok = all(results) and len(results) == count
    emit("streams", count=count, bytes=size, ok=ok, seconds=time.perf_counter() - start)
    if not ok:
        raise RuntimeError("echo streams came back different")


async def fresh_dial(host: Host, target: str, ping: bool, timeout: float) -> float:
    """Close the current connections, dial anew (TCP + Noise + muxer), optionally ping once;
    returns seconds from dial start to the end of the ping (or the upgrade)."""
    with anyio.fail_after(timeout):
        for conn in host.connections():
            await conn.aclose()
        start = time.perf_counter()
        conn = await host.connect(target)
        if ping:
            await host.service(Ping).ping(conn.remote_peer, timeout=timeout)
        return time.perf_counter() - start


async def hold_conns(host: Host, target: str, count: int, per_conn: int, timeout: float) -> None:
    """Open ``count`` new connections (no reuse: dialed without /p2p), ``per_conn`` echo
    streams on each, hold them until a stdin line, then close everything."""
    transport_addr = target.split("/p2p/", maxsplit=1)[0]
    conns: list[Connection] = []
    held: list[Stream] = []
    errors = 0
    limit = anyio.Semaphore(DIAL_CONCURRENCY)

    async def open_one() -> None:
        nonlocal errors
        async with limit:
            try:
                conn = await host.connect(transport_addr)
                conns.append(conn)
                for _ in range(per_conn):
                    stream = await conn.new_stream([ECHO])
                    await stream.send(b"x")
                    if await stream.receive(1) != b"x":
                        raise RuntimeError("echo: wrong byte back")
                    held.append(stream)
            except Exception:  # counted and reported: the run shows how many failed
                errors += 1

    start = time.perf_counter()
    with anyio.fail_after(timeout):
        async with anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(open_one)
    open_s = time.perf_counter() - start
    emit("holding", connections=len(conns), streams=len(held), errors=errors, seconds=open_s)
    await anyio.to_thread.run_sync(sys.stdin.readline)
    alive = sum(not c.is_closed for c in conns)
    start = time.perf_counter()
    with anyio.fail_after(timeout):
        for stream in held:
            try:
                await stream.aclose()
            except Exception:  # counted: a clean close raises nothing
                errors += 1
        for conn in conns:
            await conn.aclose()
    emit(
        "conns",
        connections=len(conns),
        streams=len(held),
        alive_before_close=alive,
        errors=errors,
        close_seconds=time.perf_counter() - start,
    )


async def run_actions(
    host: Host, target: str, actions: list[tuple[str, list[int]]], t: float
) -> None:
    conn = await host.connect(target)
    emit("connected", peer_id=str(conn.remote_peer), muxer=conn.muxer_protocol)
    for name, args in actions:
        if name == "ping":
            rtts = await host.service(Ping).ping(conn.remote_peer, count=args[0], timeout=t)
            for seq, rtt in enumerate(rtts):
                emit("ping", seq=seq, rtt_ms=rtt * 1000)
        elif name == "perf":
            await perf_once(await host.connect(target), args[0], args[1], t)
        elif name == "streams":
            await streams(await host.connect(target), args[0], args[1], t)
        elif name == "dials":
            ms = [await fresh_dial(host, target, True, t) * 1000 for _ in range(args[0])]
            emit("dials", count=args[0], ms=ms)
        elif name == "rate":
            start = time.perf_counter()
            for _ in range(args[0]):
                await fresh_dial(host, target, False, t)
            secs = time.perf_counter() - start
            emit("rate", count=args[0], seconds=secs, per_second=args[0] / secs)
        elif name == "conns":
            await hold_conns(host, target, args[0], args[1], t)
    emit("done")


def parse_actions(text: str) -> list[tuple[str, list[int]]]:
    out = []
    for item in filter(None, text.split(",")):
        name, *rest = item.split(":")
        nums = [int(x) for x in rest]
        if ARITY.get(name) != len(nums):
            raise SystemExit(f"bad action {item}")
        out.append((name, nums))
    return out


async def main(args: argparse.Namespace) -> None:
    config = HostConfig(max_pending_upgrades=1024, max_connections=8192)
    # The benchmark moves 512 MiB per exchange: its perf server runs without the size caps
    # and rate limit that protect a public node.
    perf = Perf(
        serve=True, max_download_bytes=None, max_upload_bytes=None, max_requests_per_minute=None
    )
    # The scale check holds 1,000 connections and 10,000 streams from one peer: far past the
    # per-peer limits that protect a public node, so the benchmark peers count but never refuse.
    async with open_default_host(
        listen=[args.listen] if args.listen else [],
        security=args.security or [],
        muxers=args.muxer or [],
        config=config,
        services=[Identify(), Ping(), perf],
        resource_manager=NullResourceManager(),
    ) as host:
        host.set_stream_handler(ECHO, serve_echo)
        if args.dial:
            await run_actions(host, args.dial, parse_actions(args.actions), args.timeout)
            return
        emit("listening", peer_id=str(host.peer_id), addrs=[str(a) for a in host.addrs])
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with anyio.create_task_group() as tg:

                async def on_signal() -> None:
                    async for _ in signals:
                        tg.cancel_scope.cancel()

                tg.start_soon(on_signal)
                await drain_stdin(host)
                tg.cancel_scope.cancel()


def use_quic_config(datagram: int | None, send_buffer: int | None) -> None:
    """Make the default stack's QUIC transport send ``datagram``-byte datagrams and buffer
    ``send_buffer`` bytes per stream (benchmarks only: the default stack has no setting for
    them, so its QuicTransport factory is replaced)."""
    from p2pstack.roots import defaults
    from transports.quic import QuicConfig, QuicTransport

    config = QuicConfig()
    if datagram:
        config = attrs.evolve(config, max_datagram_size=datagram)
    if send_buffer:
        config = attrs.evolve(config, send_buffer=send_buffer)
    setattr(defaults, "QuicTransport", lambda: QuicTransport(config=config))  # noqa: B010


def cli(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="p2pstack benchmark peer")
    p.add_argument("--listen")
    p.add_argument("--dial")
    p.add_argument("--muxer", action="append", choices=["yamux", "mplex"])
    p.add_argument(
        "--security", action="append", help="noise or tls; repeatable, in preference order"
    )
    p.add_argument("--actions", default="")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--quic-datagram", type=int, help="QUIC max_datagram_size (default 1452)")
    p.add_argument("--quic-send-buffer", type=int, help="QUIC send_buffer per stream (bytes)")
    args = p.parse_args(argv)
    if args.quic_datagram or args.quic_send_buffer:
        use_quic_config(args.quic_datagram, args.quic_send_buffer)
    raise_nofile()
    uv = importlib.util.find_spec("uvloop") is not None
    try:
        anyio.run(main, args, backend_options={"use_uvloop": uv})
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            return
        emit("error", message=repr(exc))
        raise


if __name__ == "__main__":
    cli()
