"""``python -m benchmarks quic [--quick]``: one-stream QUIC throughput and dial latency, side by
side in one run, every listener and dialer its own OS process on 127.0.0.1, the kinds
interleaved (rep 1 of each, then rep 2, ...).

1. Throughput of one stream, both ways (/perf/1.0.0: upload, then download of ``--size`` bytes):
   p2pstack <-> p2pstack (transports/quic), py-libp2p 0.8.1 <-> itself (aioquic too), js-libp2p
   <-> itself (@chainsafe/libp2p-quic 2.1.1: quinn), and the QUIC library's own ceiling: a bare
   aioquic client/server pair (benchmarks/quic_raw.py) at several datagram sizes. Besides MB/s,
   the CPU milliseconds per MiB of the dialer (sending, then receiving) and of the listener
   (both directions): the machine is shared, and CPU per byte moves less with its load.
2. Dial + upgrade + first ping (p50/p90 of ``--dials`` fresh connections, the first dropped):
   p2pstack QUIC vs p2pstack TCP+Noise+yamux vs js QUIC vs js TCP+Noise+yamux vs py QUIC, and the
   bare aioquic handshake + one round trip.

Raw samples go to benchmarks/results/quic-<time>.json, the report to benchmarks/results/quic.md;
docs/quic-performance.md has a run and how to read it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any, TextIO

from benchmarks.kad_procs import REPO
from benchmarks.quic_core import transfer
from benchmarks.quic_runs import MAX_DATAGRAM, dials_run, load_average, perf_run
from transports.quic import QuicConfig

MiB = 1 << 20
CEILINGS = ["aioquic-1200", "aioquic-1350", "aioquic-1452", "aioquic-9000", "aioquic-max"]
PERF_KINDS = ["p2pstack", "p2pstack-max", "py", "js", *CEILINGS]
DIAL_KINDS = ["p2pstack", "p2pstack-tcp", "js", "js-tcp", "py", "aioquic-1200"]
RESULTS = REPO / "benchmarks" / "results"
LABELS = {
    "p2pstack": "p2pstack QUIC",
    "py": "py-libp2p 0.8.1 QUIC",
    "js": "js-libp2p QUIC (quinn)",
    "p2pstack-tcp": "p2pstack TCP+Noise+yamux",
    "js-tcp": "js-libp2p TCP+Noise+yamux",
    "aioquic-max": f"bare aioquic, {MAX_DATAGRAM} B datagrams",
    "p2pstack-max": f"p2pstack QUIC, {MAX_DATAGRAM} B datagrams",
}


def label(kind: str) -> str:
    """Human name of a kind."""
    if kind in LABELS:
        return LABELS[kind]
    if kind.startswith("p2pstack-"):
        return f"p2pstack QUIC, {kind.removeprefix('p2pstack-')} B datagrams"
    return f"bare aioquic, {kind.removeprefix('aioquic-')} B datagrams"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks quic", description=__doc__)
    p.add_argument("--quick", action="store_true", help="8 MiB, 1 rep, 5 dials: a smoke test")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--size", type=int, default=64 * MiB, help="perf bytes each way")
    p.add_argument("--slow-size", type=int, default=8 * MiB, help="perf bytes for py-libp2p")
    p.add_argument("--dials", type=int, default=30, help="fresh dials per sample")
    p.add_argument("--perf-kinds", default=",".join(PERF_KINDS))
    p.add_argument("--dial-kinds", default=",".join(DIAL_KINDS))
    p.add_argument("--timeout", type=float, default=300.0, help="bound per dialer run (s)")
    p.add_argument("--out", default=str(RESULTS), help="directory for the report and raw data")
    a = p.parse_args(argv)
    if a.quick:
        a.reps, a.size, a.slow_size, a.dials = 1, 8 * MiB, 4 * MiB, 5
    ours = importlib.util.find_spec("transports.quic") is not None
    pick = [k for k in a.perf_kinds.split(",") if k and (ours or not k.startswith("p2pstack"))]
    a.perf_kinds = pick
    a.dial_kinds = [
        k for k in a.dial_kinds.split(",") if k and (ours or k != "p2pstack")
    ]  # p2pstack-tcp runs without QUIC too
    return a


def datagram_of(kind: str) -> int:
    """The datagram size of an ``aioquic-SIZE`` kind."""
    size = kind.removeprefix("aioquic-")
    return MAX_DATAGRAM if size == "max" else int(size)


def one_rep(args: argparse.Namespace, samples: dict[str, list[dict[str, float]]], log: Any) -> None:
    """aioquic's core alone at each ceiling's datagram size, one perf run of every perf kind,
    one dial sample of every dial kind."""
    for kind in CEILINGS:
        core = transfer(datagram_of(kind), min(args.size, 16 * MiB), 16 * MiB)
        samples.setdefault(f"core|{kind}", []).append(core)
    for kind in args.perf_kinds:
        try:
            size = args.slow_size if kind == "py" else args.size
            run = perf_run(kind, size, args.timeout, log)
        except Exception as exc:  # one failing sample must not end the run; reported
            samples.setdefault(f"perf|{kind}|errors", []).append({})
            print(f"  perf {kind}: FAILED {exc}"[:300], flush=True)
            continue
        samples.setdefault(f"perf|{kind}", []).append(run)
        print(f"  perf {kind}: up {run['up']:.1f} down {run['down']:.1f} MB/s", flush=True)
    for kind in args.dial_kinds:
        try:
            run = dials_run(kind, args.dials, args.timeout, log)
        except Exception as exc:  # as above
            samples.setdefault(f"dials|{kind}|errors", []).append({})
            print(f"  dials {kind}: FAILED {exc}"[:300], flush=True)
            continue
        samples.setdefault(f"dials|{kind}", []).append(run)
        print(f"  dials {kind}: p50 {run['p50']:.1f} ms", flush=True)


def med(samples: dict[str, list[dict[str, float]]], key: str, field: str) -> float | None:
    """Median of ``field`` over the samples of ``key`` (None without any)."""
    xs = [s[field] for s in samples.get(key, []) if s.get(field) is not None]
    return statistics.median(xs) if xs else None


def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def perf_table(args: argparse.Namespace, samples: dict[str, list[dict[str, float]]]) -> list[str]:
    cols = ["up MB/s", "down MB/s", "dialer CPU ms/MiB sent", "dialer CPU ms/MiB received"]
    lines = ["| pair (dialer -> listener, same kind) | " + " | ".join(cols) + " | "]
    lines[0] += "listener CPU ms/MiB (both ways) | load avg | failed |"
    lines.append("|---|" + "---|" * (len(cols) + 3))
    for kind in args.perf_kinds:
        key = f"perf|{kind}"
        cells = [med(samples, key, f) for f in ("up", "down", "up_cpu", "down_cpu")]
        cells.append(med(samples, key, "listener_cpu"))
        loads = [s["load"] for s in samples.get(key, [])]
        load = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "-"
        fails = len(samples.get(f"{key}|errors", []))
        lines.append(f"| {label(kind)} | " + " | ".join(fmt(c) for c in cells))
        lines[-1] += f" | {load} | {fails} |"
    return lines


def core_table(samples: dict[str, list[dict[str, float]]]) -> list[str]:
    lines = ["| aioquic core alone (no I/O), datagram | send CPU ms/MiB | receive CPU ms/MiB "]
    lines[0] += "| µs per packet (send / receive) | MB/s with one core per side |"
    lines.append("|---|---|---|---|---|")
    for kind in CEILINGS:
        key = f"core|{kind}"
        send, recv = med(samples, key, "send_us_per_mib"), med(samples, key, "recv_us_per_mib")
        if send is None or recv is None:
            continue
        per = f"{fmt(med(samples, key, 'us_per_packet_send'), 0)} / "
        per += fmt(med(samples, key, "us_per_packet_recv"), 0)
        mbps = MiB / max(send, recv)  # bytes per µs = MB/s
        cells = f"{send / 1000:.1f} | {recv / 1000:.1f} | {per} | {mbps:.1f}"
        lines.append(f"| {datagram_of(kind)} B | {cells} |")
    return lines


def dial_table(args: argparse.Namespace, samples: dict[str, list[dict[str, float]]]) -> list[str]:
    lines = ["| dialer -> listener | dial + first ping p50 ms | p90 ms | listener CPU ms per "]
    lines[0] += "connection | load avg | failed |"
    lines.append("|---|---|---|---|---|---|")
    for kind in args.dial_kinds:
        key = f"dials|{kind}"
        loads = [s["load"] for s in samples.get(key, [])]
        load = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "-"
        fails = len(samples.get(f"{key}|errors", []))
        p50, p90 = med(samples, key, "p50"), med(samples, key, "p90")
        cpu = fmt(med(samples, key, "listener_cpu_ms"))
        lines.append(f"| {label(kind)} | {fmt(p50)} | {fmt(p90)} | {cpu} | {load} | {fails} |")
    return lines


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets(samples: dict[str, list[dict[str, float]]], ours_datagram: int) -> list[str]:
    """The issue's ratios (medians from this run): ours / ceiling >= 0.9, ours / py >= 1.3."""
    same = f"perf|aioquic-{ours_datagram}"
    rows: list[tuple[str, float | None, float]] = []  # (name, value, goal; 0: none)
    for d in ("up", "down"):
        ours = med(samples, "perf|p2pstack", d)
        best = max((med(samples, f"perf|{c}", d) or 0.0 for c in CEILINGS), default=0.0)
        rows += [
            (
                f"{d}load / aioquic at our {ours_datagram} B",
                ratio(ours, med(samples, same, d)),
                0.9,
            ),
            (f"{d}load / best aioquic ceiling", ratio(ours, best or None), 0.9),
            (
                f"{d}load at {MAX_DATAGRAM} B: ours / aioquic pair",
                ratio(med(samples, "perf|p2pstack-max", d), med(samples, "perf|aioquic-max", d)),
                0.9,
            ),
            (f"{d}load / py-libp2p QUIC", ratio(ours, med(samples, "perf|py", d)), 1.3),
            (f"{d}load / js-libp2p QUIC", ratio(ours, med(samples, "perf|js", d)), 0.0),
        ]
    cpu = [med(samples, k, "listener_cpu") for k in ("perf|p2pstack", same)]
    rows.append(("listener CPU per MiB / aioquic pair's (same size)", ratio(*cpu), 0.0))
    core = f"core|aioquic-{ours_datagram}"
    for d, f in (("sent", "send_us_per_mib"), ("received", "recv_us_per_mib")):
        floor = med(samples, core, f)
        ours_cpu = med(samples, "perf|p2pstack", "up_cpu" if d == "sent" else "down_cpu")
        name = f"our dialer CPU per MiB {d} / aioquic core alone"
        rows.append((name, ratio(ours_cpu, floor / 1000 if floor else None), 0.0))
    dial = {k: med(samples, f"dials|{k}", "p50") for k in ("p2pstack", "p2pstack-tcp", "js")}
    rows.append(
        (
            "QUIC dial+ping p50 / TCP+Noise+yamux (ours)",
            ratio(dial["p2pstack"], dial["p2pstack-tcp"]),
            0.0,
        )
    )
    rows.append(("QUIC dial+ping p50, ours / js", ratio(dial["p2pstack"], dial["js"]), 0.0))
    out = ["| ratio | value | goal | met |", "|---|---|---|---|"]
    for name, value, bound in rows:
        goal = f">= {bound}" if bound else "-"
        met = "-" if value is None or not bound else "yes" if value >= bound else "NO"
        out.append(f"| {name} | {fmt(value, 2)} | {goal} | {met} |")
    return out


def ours_datagram_size() -> int:
    """The datagram size p2pstack's QUIC sends (its config's default)."""
    return QuicConfig().max_datagram_size


def report(
    args: argparse.Namespace, samples: dict[str, list[dict[str, float]]], start: float
) -> list[str]:
    """The report's lines (markdown)."""
    return [
        f"one stream, {args.size / MiB:g} MiB each way (py-libp2p {args.slow_size / MiB:g} MiB)"
        f"; reps {args.reps}; medians; MB = 10^6 "
        f"bytes; {args.dials} dials per sample (first dropped); nproc {os.cpu_count()}; "
        f"load average at the end {load_average():.2f}",
        "",
        *perf_table(args, samples),
        "",
        *core_table(samples),
        "",
        *dial_table(args, samples),
        "",
        *targets(samples, ours_datagram_size()),
        "",
        f"wall time {time.monotonic() - start:.0f} s",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.monotonic()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    samples: dict[str, list[dict[str, float]]] = {}
    print(f"load average at start {load_average():.2f}", flush=True)
    log: TextIO
    with open(os.path.join(out, f"quic-{stamp}.log"), "w") as log:
        for rep in range(1, args.reps + 1):
            print(f"rep {rep}/{args.reps}", flush=True)
            one_rep(args, samples, log)
    lines = report(args, samples, start)
    print("\n".join(lines), flush=True)
    with open(os.path.join(out, "quic.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out, f"quic-{stamp}.json"), "w") as f:
        json.dump({"args": vars(args), "samples": samples, "report": lines}, f, indent=1)
    print(f"raw samples: {out}/quic-{stamp}.json", flush=True)


if __name__ == "__main__":
    main()
