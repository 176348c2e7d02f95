"""Where the CPU time of a one-stream QUIC transfer goes: runs a listener and a dialer of one
kind (p2pstack's transports/quic through benchmarks/peer.py, or the bare aioquic pair of
benchmarks/quic_raw.py) each under cProfile, moves ``--size`` bytes each way over /perf/1.0.0,
and sums each side's own time (cProfile "tottime") into buckets: aioquic's C crypto (AEAD and
header protection), its C buffer, packet building, the rest of its connection logic (frames,
ACKs, recovery, streams), the socket syscalls, our driver (transports/quic), the host and
protocols, and the event loop. Timed by each process's CPU clock, so waiting in epoll and the
machine's other load do not count; process start (imports) and the handshake are included.
cProfile adds its own cost per Python call, so the shares, not the absolute seconds, are what
to read.

Not part of the test suite::

    python -m benchmarks.quic_profile --kind p2pstack --size 32MiB
    python -m benchmarks.quic_profile --kind aioquic-1452 --top 25
    python -m benchmarks.quic_profile --kind p2pstack --dials 100
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import runpy
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from benchmarks.kad_procs import REPO, Lines, _env
from benchmarks.quic_runs import command

MiB = 1 << 20
#: (bucket, test on "file:function") in order: the first that matches takes the time.
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("aioquic C crypto (AEAD, header protection)", ("_crypto",)),
    ("aioquic C buffer (varints, bytes)", ("_buffer",)),
    ("socket syscalls (sendto, recvfrom)", ("'sendto'", "'recvfrom'", "'recv_into'")),
    ("aioquic packet building", ("aioquic/quic/packet_builder.py",)),
    ("aioquic TLS handshake", ("aioquic/tls.py", "cryptography")),
    ("aioquic connection (frames, ACKs, recovery, streams)", ("aioquic/",)),
    ("our QUIC driver (transports/quic)", ("transports/quic/",)),
    ("host, perf, streams (p2pstack, protocols)", ("p2pstack/", "protocols/", "benchmarks/")),
    ("event loop (asyncio, anyio, selectors)", ("asyncio/", "anyio/", "selector", "epoll")),
]


def bucket_of(where: str) -> str:
    """The bucket of a profile entry named ``file:line(function)``."""
    for name, needles in BUCKETS:
        if any(n in where for n in needles):
            return name
    return "other (interpreter, builtins)"


def run_profiled(out: str, module: str, args: list[str]) -> None:
    """Run ``module`` as ``__main__`` with ``args`` under cProfile timed by the process's CPU
    clock (the default wall clock would count the time the loop sleeps in epoll and the time
    other processes hold the cores), then write the profile to ``out``."""
    profiler = cProfile.Profile(time.process_time)
    sys.argv = [module, *args]
    profiler.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profiler.disable()
        profiler.dump_stats(out)


def run_pair(kind: str, actions: str, workdir: str) -> tuple[str, str]:
    """Run a profiled listener and dialer of ``kind``; returns their profile paths."""
    argv, addr = command(kind)
    module = argv.index("-m")
    here = "benchmarks.quic_profile"

    def profiled(out: str) -> list[str]:
        return [argv[0], "-m", here, "--run", out, argv[module + 1], *argv[module + 2 :]]

    lpath, dpath = os.path.join(workdir, "listener.prof"), os.path.join(workdir, "dialer.prof")
    listener = subprocess.Popen(
        [*profiled(lpath), "--listen", addr],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        env=_env(),
    )
    try:
        ev = Lines(listener, f"{kind} listener").event(90)
        subprocess.run(
            [*profiled(dpath), "--dial", ev["addrs"][0], "--actions", actions],
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=REPO,
            env=_env(),
            timeout=900,
        )
    finally:
        assert listener.stdin is not None
        listener.stdin.close()
        listener.wait(60)
    return lpath, dpath


def summarise(path: str, label: str, top: int) -> list[str]:
    """Buckets (seconds and share of the total own time) and the ``top`` functions."""
    stats = pstats.Stats(path)
    rows = stats.stats  # type: ignore[attr-defined]  # {(file, line, fn): (cc, nc, tt, ct, callers)}
    sums: dict[str, float] = {}
    funcs: list[tuple[float, str]] = []
    for (file, line, fn), (_, ncalls, tottime, _, _) in rows.items():
        where = f"{file}:{line}({fn})"
        sums[bucket_of(where)] = sums.get(bucket_of(where), 0.0) + tottime
        funcs.append((tottime, f"{where.replace(str(REPO) + '/', '')} x{ncalls}"))
    total = sum(sums.values()) or 1.0
    out = [f"### {label}: {total:.2f} s own time under cProfile", "", "| bucket | s | share |"]
    out.append("|---|---|---|")
    for name, secs in sorted(sums.items(), key=lambda kv: -kv[1]):
        out.append(f"| {name} | {secs:.2f} | {100 * secs / total:.1f}% |")
    out += ["", f"top {top} functions by own time:", ""]
    for secs, where in sorted(funcs, reverse=True)[:top]:
        short = where.split("site-packages/")[-1]
        out.append(f"- {secs:.2f} s ({100 * secs / total:.1f}%) {short}")
    return [*out, ""]


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.quic_profile", description=__doc__)
    p.add_argument("--kind", default="p2pstack", help="p2pstack or aioquic-SIZE")
    p.add_argument("--size", default="32MiB", help="bytes each way (KiB/MiB suffixes)")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--dials", type=int, default=0, help="profile N dials + pings, not perf")
    p.add_argument("--run", nargs=argparse.REMAINDER, help="internal: OUT MODULE ARGS...")
    a = p.parse_args(argv)
    if a.run:
        run_profiled(a.run[0], a.run[1], a.run[2:])
        return
    size = int(a.size.removesuffix("MiB")) * MiB if a.size.endswith("MiB") else int(a.size)
    with tempfile.TemporaryDirectory() as workdir:
        actions = f"dials:{a.dials}" if a.dials else f"perf:{size}:{size}"
        lpath, dpath = run_pair(a.kind, actions, workdir)
        what = f"{a.dials} dials + first ping" if a.dials else f"{size / MiB:g} MiB each way"
        lines = [f"## {a.kind}: {what}", ""]
        lines += summarise(dpath, "dialer (sends, then receives)", a.top)
        lines += summarise(lpath, "listener (receives, then sends)", a.top)
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
