"""``python -m benchmarks kad [--quick]``: the Kademlia DHT (``/ipfs/kad/1.0.0``) of p2pstack
against js-libp2p (@libp2p/kad-dht 16.4.5) and py-libp2p 0.8.1 (KadDHT), side by side in one
run, every node its own OS process on 127.0.0.1 (TCP + Noise + yamux).

1. FIND_NODE requests served per second by one DHT server under C concurrent clients (each
   client its own node and connection, one request per new stream, back to back), the server's
   routing table first filled with real DHT peers: each server loaded by clients of its own
   implementation, and every server loaded by the same (p2pstack) clients. Also the server's and
   the load generator's CPU time per request inside the measured window, which the machine's
   other load does not distort as much as the rate.
2. put + get latency on an N-node network of each implementation (nodes bootstrapped from the
   first, then two rounds of self lookups): a fresh key put from one random node, read from
   another; p50/p99 as seen by the harness through the peers' stdin/stdout.

Raw samples go to benchmarks/results/kad-<time>.json, the report to benchmarks/results/kad.md.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.kad_procs import REPO
from benchmarks.kad_runs import PAIRS, latency, median, percentile, throughput

KINDS = ["p2pstack", "js", "py"]
RESULTS = REPO / "benchmarks" / "results"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks kad", description=__doc__)
    p.add_argument("--quick", action="store_true", help="1 rep of 3 s, 20 ops: a smoke test")
    p.add_argument("--kinds", default=",".join(KINDS), help="implementations to run")
    p.add_argument("--reps", type=int, default=3, help="throughput rounds (pairs interleaved)")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--warmup", type=float, default=2.0, help="seconds before each window")
    p.add_argument("--seconds", type=float, default=10.0, help="measured window")
    p.add_argument("--fillers", type=int, default=30, help="peers in the server's table")
    p.add_argument("--nodes", type=int, default=20, help="nodes per latency network")
    p.add_argument("--ops", type=int, default=50, help="put + get pairs per network")
    p.add_argument("--budget", type=float, default=240.0, help="most seconds of ops per network")
    p.add_argument("--skip", choices=["throughput", "latency"], help="leave one part out")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    if a.quick:
        a.reps, a.warmup, a.seconds, a.ops, a.budget = 1, 1.0, 3.0, 20, 90.0
    a.kinds = [k for k in a.kinds.split(",") if k]
    return a


def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _ok(samples: list[dict[str, Any]], key: str) -> list[float]:
    return [s[key] for s in samples if s.get(key) is not None]


def throughput_table(samples: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = [
        "| server <- load generator | req/s | p50 ms | p99 ms | closer peers per answer "
        "| server CPU ms/req | client CPU ms/req | errors / failed runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for server, loader in PAIRS:
        runs = samples.get(f"{server}<-{loader}")
        if not runs:
            continue
        ok = [r for r in runs if "error" not in r]
        per_req = [(r["server_cpu"], r["cpu_seconds"], r["requests"]) for r in ok if r["requests"]]
        cells = [
            fmt(median(_ok(ok, "per_second")), 0),
            fmt(median(_ok(ok, "p50_ms"))),
            fmt(median(_ok(ok, "p99_ms"))),
            fmt(median(_ok(ok, "closer_mean"))),
            fmt(median([s / n * 1000 for s, _, n in per_req]), 2),
            fmt(median([c / n * 1000 for _, c, n in per_req]), 2),
            f"{sum(r.get('errors', 0) for r in ok)} / {len(runs) - len(ok)}",
        ]
        lines.append(f"| {server} <- {loader} | " + " | ".join(cells) + " |")
    return lines


def targets(samples: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The issue's goals as ratios of medians from this run."""

    def rate(name: str) -> float | None:
        return median(_ok(samples.get(name, []), "per_second"))

    def cpu(name: str) -> float | None:
        ok = [r for r in samples.get(name, []) if r.get("requests")]
        return median([r["server_cpu"] / r["requests"] for r in ok])

    ours, ours_cpu = rate("p2pstack<-p2pstack"), cpu("p2pstack<-p2pstack")
    rows = [
        ("req/s vs py-libp2p, each against itself", ours, rate("py<-py"), 3.0),
        ("req/s vs js-libp2p, each against itself", ours, rate("js<-js"), 1.0),
        ("req/s vs py-libp2p, same p2pstack clients", ours, rate("py<-p2pstack"), None),
        ("req/s vs js-libp2p, same p2pstack clients", ours, rate("js<-p2pstack"), None),
        # CPU per request: the other server's over ours (how many times less CPU we spend).
        (
            "server CPU/request, py over p2pstack (same clients)",
            cpu("py<-p2pstack"),
            ours_cpu,
            None,
        ),
        (
            "server CPU/request, js over p2pstack (same clients)",
            cpu("js<-p2pstack"),
            ours_cpu,
            None,
        ),
    ]
    out = ["| comparison | ratio | goal | met |", "|---|---|---|---|"]
    for label, a, b, need in rows:
        r = a / b if a is not None and b else None
        goal = "-" if need is None else f">= {need:g}x"
        met = "-" if need is None or r is None else "yes" if r >= need else "NO"
        out.append(f"| {label} | {fmt(r, 2)}{'x' if r is not None else ''} | {goal} | {met} |")
    return out


def latency_table(nets: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| network | nodes | table size (mean) | put p50 ms | put p99 ms | get p50 ms "
        "| get p99 ms | gets right | stored at (median) | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, r in nets.items():
        if "error" in r:
            lines.append(f"| {kind} | - | - | - | - | - | - | - | - | {r['error']} |")
            continue
        sizes = r["table_sizes"]
        cells = [
            str(len(sizes)),
            fmt(sum(sizes) / len(sizes)),
            fmt(median(r["put_ms"])),
            fmt(percentile(r["put_ms"], 0.99)),
            fmt(median(r["get_ms"])),
            fmt(percentile(r["get_ms"], 0.99)),
            f"{r['gets_ok']}/{len(r['get_ms'])}"
            + (" (time budget hit)" if r.get("budget_hit") else ""),
            fmt(median([x for x in r["stored_at"] if x is not None]), 0),
            str(len(r["errors"])),
        ]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
        if r.get("get_q1_ms"):
            q1 = r["get_q1_ms"]
            cells[2:6] = ["", "", fmt(median(q1)), fmt(percentile(q1, 0.99))]
            cells[6:8] = [f"{r['gets_q1_ok']}/{len(q1)}", ""]
            lines.append(f"| {kind}, get with quorum 1 | " + " | ".join(cells) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """Run the DHT benchmarks and print the report (see the module docstring)."""
    args = parse_args(argv)
    start = time.monotonic()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    raw: dict[str, Any] = {"args": vars(args)}
    samples: dict[str, list[dict[str, Any]]] = {}
    nets: dict[str, dict[str, Any]] = {}
    with (RESULTS / f"kad-{stamp}.log").open("w") as log:
        if args.skip != "throughput":
            print(f"FIND_NODE throughput, {args.clients} clients", flush=True)
            samples, tables = throughput(
                args.kinds,
                reps=args.reps,
                clients=args.clients,
                warmup=args.warmup,
                seconds=args.seconds,
                fillers=args.fillers,
                log=log,
            )
            raw["throughput"], raw["server_tables"] = samples, tables
        if args.skip != "latency":
            for kind in args.kinds:
                print(f"put + get on {args.nodes} {kind} nodes", flush=True)
                try:
                    nets[kind] = latency(
                        kind,
                        nodes=args.nodes,
                        ops=args.ops,
                        budget=args.budget,
                        seed=args.seed,
                        log=log,
                    )
                except (RuntimeError, TimeoutError) as exc:  # reported, the run goes on
                    nets[kind] = {"error": str(exc)[:300]}
            raw["latency"] = nets
    lines = []
    if samples:
        lines += [
            f"FIND_NODE served per second: {args.clients} clients, {args.warmup:g} s warm-up + "
            f"{args.seconds:g} s measured, {args.reps} rep(s), medians; server tables: "
            + ", ".join(f"{k} {v} peers" for k, v in raw["server_tables"].items()),
            "",
            *throughput_table(samples),
            "",
            *targets(samples),
            "",
        ]
    if nets:
        lines += [
            f"put + get latency: up to {args.ops} pairs per network (at most {args.budget:g} s)",
            "",
            *latency_table(nets),
            "",
        ]
    lines.append(f"wall time {time.monotonic() - start:.0f} s")
    print("\n".join(lines), flush=True)
    raw["report"] = lines
    out = RESULTS / f"kad-{stamp}.json"
    out.write_text(json.dumps(raw, indent=1))
    (RESULTS / "kad.md").write_text("\n".join(lines) + "\n")
    print(f"raw samples: {out}")


if __name__ == "__main__":
    main()
