"""``python -m benchmarks pubsub [--quick]``: gossipsub of p2pstack against js-libp2p
(@libp2p/gossipsub 17.1.1) and py-libp2p 0.8.1 (GossipSub), each against itself, side by side
in one run; every node its own OS process on 127.0.0.1 (TCP + Noise + yamux), the
implementations interleaved (rep 1 of each, then rep 2, ...).

1. Messages per second from one publisher to one subscriber, 1 KiB and 64 KiB messages: the
   publisher sends N messages with at most ``--window`` of them unacknowledged (the subscriber
   publishes the count it has received on a second topic every window / 4 messages), since
   pubsub has no flow control of its own and every implementation drops what overflows its
   per-peer queue (py-libp2p's holds 32 RPCs). Rate = messages received / (last arrival - first
   send); also the CPU time of publisher and subscriber per message, which the machine's other
   load distorts less than the rate.
2. End-to-end latency over a 3-hop line (A - B - C - D, each node meshed with its neighbours):
   A publishes 1 KiB messages every ``--interval`` ms; p50 / p99 of D's arrival time minus the
   send time carried in the message (both CLOCK_MONOTONIC on this machine).

The peers' contract is in benchmarks/pubsub_peer.py. Raw samples go to
benchmarks/results/pubsub-<time>.json, the report to benchmarks/results/pubsub.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.kad_procs import REPO
from benchmarks.pubsub_runs import line_run, pair_run

KINDS = ["p2pstack", "js", "py"]
SLOW = {"py": 10}  # message counts divided by this for py-libp2p (it runs at tens of msgs/s)
SIZES = [1024, 65536]
RESULTS = REPO / "benchmarks" / "results"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks pubsub", description=__doc__)
    p.add_argument("--quick", action="store_true", help="1 rep, few messages: a smoke test")
    p.add_argument("--kinds", default=",".join(KINDS), help="implementations to run")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--small", type=int, default=3000, help="1 KiB messages per run")
    p.add_argument("--large", type=int, default=300, help="64 KiB messages per run")
    p.add_argument("--window", type=int, default=32, help="most unacknowledged messages")
    p.add_argument("--latency-messages", type=int, default=100)
    p.add_argument("--interval", type=float, default=100.0, help="ms between latency messages")
    p.add_argument("--out", default=str(RESULTS), help="directory for the report and raw data")
    a = p.parse_args(argv)
    if a.quick:
        a.reps, a.small, a.large, a.latency_messages, a.interval = 1, 200, 30, 20, 50.0
    a.kinds = [k for k in a.kinds.split(",") if k]
    return a


def median(xs: Sequence[float | None]) -> float | None:
    ok = [x for x in xs if x is not None]
    return statistics.median(ok) if ok else None


def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def one_rep(args: argparse.Namespace, samples: dict[str, list[dict[str, Any]]], log: Any) -> None:
    """One throughput pair and one latency line of every implementation."""
    for kind in args.kinds:
        div = SLOW.get(kind, 1)
        small, large = (
            (args.small, args.large) if div == 1 else (args.small // div, args.large // div)
        )
        sizes = [(1024, max(1, small), args.window), (65536, max(1, large), args.window)]
        try:
            for size, run in pair_run(kind, sizes, log).items():
                samples.setdefault(f"{kind}|{size}", []).append(run)
        except (RuntimeError, TimeoutError) as exc:  # reported, the run goes on
            samples.setdefault(f"{kind}|errors", []).append({"error": str(exc)[:300]})
        try:
            lat = line_run(
                kind, count=args.latency_messages, size=1024, interval_ms=args.interval, log=log
            )
            samples.setdefault(f"{kind}|line", []).append(lat)
        except (RuntimeError, TimeoutError) as exc:
            samples.setdefault(f"{kind}|errors", []).append({"error": str(exc)[:300]})
        print(f"  {kind}: done", flush=True)


def _col(samples: dict[str, list[dict[str, Any]]], key: str, field: str) -> float | None:
    return median([r.get(field) for r in samples.get(key, [])])


def table(samples: dict[str, list[dict[str, Any]]], kinds: Sequence[str]) -> list[str]:
    lines = [
        "| implementation (against itself) | size | msgs/s | MB/s | received / sent "
        "| publisher CPU µs/msg | subscriber CPU µs/msg |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in kinds:
        for size in SIZES:
            runs = samples.get(f"{kind}|{size}", [])
            rate = _col(samples, f"{kind}|{size}", "per_second")
            got = f"{sum(r['received'] for r in runs)} / {sum(r['count'] for r in runs)}"
            cells = [
                f"{size // 1024} KiB",
                fmt(rate, 0),
                fmt(None if rate is None else rate * size / 1e6),
                got,
                fmt(_col(samples, f"{kind}|{size}", "pub_cpu_us"), 0),
                fmt(_col(samples, f"{kind}|{size}", "sub_cpu_us"), 0),
            ]
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return lines


def latency_table(samples: dict[str, list[dict[str, Any]]], kinds: Sequence[str]) -> list[str]:
    lines = [
        "| implementation | p50 ms | p99 ms | mean ms | received / sent |",
        "|---|---|---|---|---|",
    ]
    for kind in kinds:
        runs = samples.get(f"{kind}|line", [])
        got = f"{sum(r['received'] for r in runs)} / {sum(r['count'] for r in runs)}"
        cells = [fmt(_col(samples, f"{kind}|line", f)) for f in ("p50_ms", "p99_ms", "mean_ms")]
        lines.append(f"| {kind} | " + " | ".join([*cells, got]) + " |")
    return lines


def targets(samples: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The issue's goals (>= 3x py, >= 1x js messages/s) as ratios of medians from this run,
    and the same ratios of CPU per message (theirs over ours: publisher + subscriber)."""
    out = ["| comparison | ratio | goal | met |", "|---|---|---|---|"]
    for size in SIZES:

        def rate(kind: str, size: int = size) -> float | None:
            return _col(samples, f"{kind}|{size}", "per_second")

        def cpu(kind: str, size: int = size) -> float | None:
            pub = _col(samples, f"{kind}|{size}", "pub_cpu_us")
            sub = _col(samples, f"{kind}|{size}", "sub_cpu_us")
            return None if pub is None or sub is None else pub + sub

        for other, need in (("py", 3.0), ("js", 1.0)):
            rows = [
                (f"{size // 1024} KiB msgs/s vs {other}", rate("p2pstack"), rate(other), need),
                (
                    f"{size // 1024} KiB CPU/msg, {other} over p2pstack",
                    cpu(other),
                    cpu("p2pstack"),
                    None,
                ),
            ]
            for label, a, b, goal in rows:
                r = a / b if a is not None and b else None
                met = "-" if goal is None or r is None else "yes" if r >= goal else "NO"
                g = "-" if goal is None else f">= {goal:g}x"
                out.append(f"| {label} | {fmt(r, 2)}{'x' if r is not None else ''} | {g} | {met} |")
    return out


def report(args: argparse.Namespace, samples: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The report's lines: settings, the two tables and the targets."""
    div = SLOW["py"]
    return [
        f"gossipsub, one publisher -> one subscriber: {args.reps} rep(s), {args.small} x 1 KiB "
        f"and {args.large} x 64 KiB messages per run (py-libp2p: / {div}), at most "
        f"{args.window} unacknowledged; medians; MB = 10^6 bytes",
        "",
        *table(samples, args.kinds),
        "",
        *targets(samples),
        "",
        f"latency over 3 hops (A - B - C - D): {args.latency_messages} x 1 KiB messages, one "
        f"every {args.interval:g} ms, per rep; medians over reps",
        "",
        *latency_table(samples, args.kinds),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the pubsub benchmarks and print the report (see the module docstring)."""
    args = parse_args(argv)
    start = time.monotonic()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    load0 = os.getloadavg()
    samples: dict[str, list[dict[str, Any]]] = {}
    with open(os.path.join(out, f"pubsub-{stamp}.log"), "w") as log:
        for rep in range(1, args.reps + 1):
            print(f"rep {rep}/{args.reps}", flush=True)
            one_rep(args, samples, log)
    load1 = os.getloadavg()
    lines = report(args, samples)
    for key, runs in samples.items():
        if key.endswith("|errors"):
            lines += ["", f"{key.split('|')[0]} errors: " + "; ".join(r["error"] for r in runs)]
    lines += [
        "",
        f"load average (1 min) at start {load0[0]:.1f}, at end {load1[0]:.1f}; "
        f"{os.cpu_count()} CPUs; wall time {time.monotonic() - start:.0f} s",
    ]
    print("\n".join(lines), flush=True)
    raw = {"args": vars(args), "samples": samples, "report": lines}
    path = os.path.join(out, f"pubsub-{stamp}.json")
    with open(path, "w") as f:
        json.dump(raw, f, indent=1)
    with open(os.path.join(out, "pubsub.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"raw samples: {path}")


if __name__ == "__main__":
    main()
