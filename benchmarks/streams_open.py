"""Stream-open cost: one-request/one-response exchanges, each on a new stream, between two
processes over TCP + Noise + yamux on 127.0.0.1 (the shape of a kad FIND_NODE or an identify
push: open, negotiate with multistream-select, write a request, read the answer, close).

Not part of the test suite. The server is a child process; the client runs here with
``--clients`` concurrent tasks, each opening a new stream per request (and, for comparison,
``--pipelined``: all requests on one stream per client). Prints requests/s and milliseconds per
exchange; ``--profile`` writes a cProfile of the client side. Examples::

    python benchmarks/streams_open.py --seconds 5
    python benchmarks/streams_open.py --clients 1 --seconds 3 --profile /tmp/client.prof

Seen on the shared 2-core machine (load 3-10, so rates vary by 2x between runs; the CPU times
vary less), 8 clients, medians of 3 runs of 3 s: optimistic negotiation 814 requests/s, server
0.43 ms and client 0.53 ms CPU per request; ``--eager`` 468 requests/s, 0.57 and 0.62 ms.
``--pipelined`` (one stream per client): ~1,500 requests/s, 0.14 ms client CPU per request.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anyio

from p2pstack.connection import Stream
from p2pstack.events import PeerProtocolsChanged
from p2pstack.host import Host
from p2pstack.roots.defaults import open_default_host

PROTOCOL = "/p2pstack/bench/echo/1.0.0"
#: A FIND_NODE-sized request; the answer is as long.
REQUEST = bytes(40)
_ROOT = str(Path(__file__).resolve().parent.parent)


async def _echo(stream: Stream) -> None:
    """Answer each whole request with as many bytes; the client closes when done."""
    try:
        while True:
            need = len(REQUEST)
            while need:
                need -= len(await stream.receive(need))
            await stream.send(REQUEST)
    except anyio.EndOfStream:
        return


async def _serve(profile: str | None) -> None:
    prof = cProfile.Profile() if profile else None
    async with open_default_host(listen=["/ip4/127.0.0.1/tcp/0"], muxers=["yamux"]) as host:
        host.set_stream_handler(PROTOCOL, _echo)
        addr = f"{host.listen_addrs[0]}/p2p/{host.peer_id}"
        print(json.dumps({"addr": addr}), flush=True)
        if prof:
            prof.enable()
        # Each line from the parent asks for our CPU time; runs until stdin closes.
        while await anyio.to_thread.run_sync(sys.stdin.readline):
            print(json.dumps({"cpu": time.process_time()}), flush=True)
        if prof and profile:
            prof.disable()
            prof.dump_stats(profile)


async def _exchange(stream: Stream) -> None:
    await stream.send(REQUEST)
    need = len(REQUEST)
    while need:
        need -= len(await stream.receive(need))


async def _client(
    host: Host, peer: str, deadline: float, counts: list[int], *, pipelined: bool, eager: bool
) -> None:
    if pipelined:
        async with await host.new_stream(peer, PROTOCOL) as stream:
            while time.perf_counter() < deadline:
                await _exchange(stream)
                counts[0] += 1
        return
    while time.perf_counter() < deadline:
        if eager:  # negotiate before writing, as for a protocol the peer did not announce
            conn = await host.dial_peer(peer)
            stream = await conn.new_stream([PROTOCOL])
        else:
            stream = await host.new_stream(peer, PROTOCOL)
        async with stream:
            await _exchange(stream)
        counts[0] += 1


def _server_cpu(proc: subprocess.Popen[str]) -> float:
    """The server's CPU seconds so far (it answers a line on stdin with one on stdout)."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    return float(json.loads(proc.stdout.readline())["cpu"])


async def _run(args: argparse.Namespace) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=_ROOT)
    cmd = [sys.executable, __file__, "--serve"]
    if args.server_profile:
        cmd += ["--server-profile", args.server_profile]
    proc = subprocess.Popen(  # noqa: ASYNC220 (started once, before anything is measured)
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert proc.stdout is not None
        addr = json.loads(proc.stdout.readline())["addr"]
        peer = addr.rsplit("/", 1)[1]
        async with open_default_host(muxers=["yamux"]) as host:
            with host.subscribe() as events, anyio.fail_after(10):
                await host.connect(addr)
                async for event in events:  # identify tells which protocols the server serves
                    if isinstance(event, PeerProtocolsChanged) and PROTOCOL in event.protocols:
                        break
            mode = {"pipelined": args.pipelined, "eager": args.eager}
            # Warm up: the first exchanges pay for imports and caches.
            await _client(host, peer, time.perf_counter() + 0.3, [0], **mode)
            prof = cProfile.Profile() if args.profile else None
            counts = [0]
            server0 = _server_cpu(proc)
            cpu0 = time.process_time()
            start = time.perf_counter()
            if prof:
                prof.enable()
            async with anyio.create_task_group() as tg:
                for _ in range(args.clients):
                    client = functools.partial(_client, **mode)
                    tg.start_soon(client, host, peer, start + args.seconds, counts)
            if prof:
                prof.disable()
                prof.dump_stats(args.profile)
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu0
            server = _server_cpu(proc) - server0
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=30)
    n = counts[0]
    return {
        "requests": n,
        "requests_per_s": n / elapsed,
        "ms_per_request": 1000 * elapsed * args.clients / max(n, 1),
        "client_cpu_ms_per_request": 1000 * cpu / max(n, 1),
        "server_cpu_ms_per_request": 1000 * server / max(n, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--pipelined", action="store_true", help="one stream per client")
    p.add_argument("--eager", action="store_true", help="no optimistic negotiation")
    p.add_argument("--profile", help="write a cProfile of the client here")
    p.add_argument("--server-profile", help="write a cProfile of the server here")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    uv = importlib.util.find_spec("uvloop") is not None
    if args.serve:
        anyio.run(_serve, args.server_profile, backend_options={"use_uvloop": uv})
        return
    result = anyio.run(_run, args, backend_options={"use_uvloop": uv})
    print(json.dumps({k: round(v, 3) for k, v in result.items()}))


if __name__ == "__main__":
    main()
