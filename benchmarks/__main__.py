"""``make bench`` / ``python -m benchmarks``: p2pstack against js-libp2p 3.x and py-libp2p 0.8.1,
side by side in one run, interleaved (rep 1 of every pair, then rep 2, ...), each side its own
OS process on 127.0.0.1. Measures /perf/1.0.0 throughput
(https://github.com/libp2p/specs/blob/master/perf/perf.md) over TCP+Noise+yamux and +mplex, 16
parallel echo streams, dial + upgrade + first ping, handshakes/s, RSS per idle connection, the
ChaCha20-Poly1305 ceiling, and the scale check; prints medians and the issue's ratios.
``python -m benchmarks kad [--quick]``: the DHT benchmarks (benchmarks/kad.py).
``python -m benchmarks pubsub [--quick]``: the gossipsub benchmarks (benchmarks/pubsub.py).
``python -m benchmarks tls [--quick]``: TLS+yamux against Noise+yamux (benchmarks/tls.py).
``python -m benchmarks quic [--quick]``: the QUIC benchmarks (benchmarks/quic.py).
``python -m benchmarks daemon [--quick] [--daemon NAME | --daemon-cmd CMD]``: upload through a
p2pd daemon against direct library use (benchmarks/daemon.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from benchmarks._procs import REPO, Listener, dial, environment
from benchmarks.scale import hold, scale_ok

MiB = 1 << 20
#: (listener, dialer) pairs: "ours -> js" means our dialer against a js listener.
PAIRS = [
    ("p2pstack", "p2pstack"),
    ("js", "p2pstack"),
    ("p2pstack", "js"),
    ("js", "js"),
    ("py", "py"),
]
SLOW = {"py"}  # peers measured with --slow-size


def cipher_ceiling(seconds: float = 1.0) -> float:
    """MB/s of ChaCha20-Poly1305 encryption of 64 KiB frames, one core, as Noise uses it."""
    aead = ChaCha20Poly1305(bytes(32))
    frame = bytes(65535 - 16)
    n = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(64):
            aead.encrypt(n.to_bytes(12, "little"), frame, None)
            n += 1
    return n * len(frame) / 1e6 / elapsed


def pair_name(listener: str, dialer: str) -> str:
    return f"{dialer} -> {listener}"


def one_rep(args: argparse.Namespace, results: dict[str, list[float]]) -> None:
    """One repetition of every pair and muxer, recording into ``results`` (name -> samples)."""

    def add(key: str, value: float) -> None:
        results.setdefault(key, []).append(value)

    add("cipher MB/s", cipher_ceiling())
    for listener_kind, dialer_kind in PAIRS:
        name = pair_name(listener_kind, dialer_kind)
        slow = listener_kind in SLOW or dialer_kind in SLOW
        size = args.slow_size if slow else args.size
        psize = args.parallel_size // 4 if slow else args.parallel_size
        rate = max(1, args.rate * 2 // 5) if slow else args.rate
        for muxer in args.muxers:
            # py-libp2p's mplex runs at ~15 MB/s: half the slow size keeps the run short.
            n = size // 2 if slow and muxer == "mplex" else size
            # One dialer process per group, so that a failure costs one sample, not the pair's.
            groups = {"perf": f"perf:{n}:{n}"}
            if muxer == "yamux":
                groups["streams"] = f"streams:16:{psize}"
                groups["dials"] = f"dials:{args.dials},rate:{rate}"
            listener = Listener(listener_kind, muxer)
            try:
                for group, actions in groups.items():
                    try:
                        events = dial(dialer_kind, listener.addr, muxer, actions, args.timeout)
                    except Exception as exc:  # one failing sample must not end the run
                        add(f"{name}|{muxer}|{group} failures", 1)
                        print(f"  {name} {muxer} {group}: FAILED {exc}"[:300], flush=True)
                        continue
                    record(events, f"{name}|{muxer}|", add)
            finally:
                listener.close()
            print(f"  {name} {muxer}: done", flush=True)


def record(events: list[dict[str, Any]], prefix: str, add: Callable[[str, float], None]) -> None:
    """Turn a dialer's events into samples named ``prefix + metric``."""
    for ev in events:
        kind = ev["event"]
        if kind == "perf":
            add(f"{prefix}up MB/s", ev["upload_mbps"])
            add(f"{prefix}down MB/s", ev["download_mbps"])
        elif kind == "streams":
            add(f"{prefix}16x MB/s", 16 * ev["bytes"] / 1e6 / ev["seconds"])
        elif kind == "dials":
            ms = sorted(ev["ms"])
            add(f"{prefix}dial p50 ms", statistics.median(ms))
            add(f"{prefix}dial p99 ms", ms[min(len(ms) - 1, int(len(ms) * 0.99))])
        elif kind == "rate":
            add(f"{prefix}handshakes/s", ev["per_second"])


def med(results: dict[str, list[float]], key: str) -> float | None:
    xs = results.get(key)
    return statistics.median(xs) if xs else None


def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


METRICS = ["up MB/s", "down MB/s", "16x MB/s", "dial p50 ms", "dial p99 ms", "handshakes/s"]


def table(results: dict[str, list[float]], muxers: list[str]) -> list[str]:
    lines = ["| dialer -> listener | muxer | " + " | ".join(METRICS) + " | failed runs |"]
    lines.append("|---|---|" + "---|" * (len(METRICS) + 1))
    for listener_kind, dialer_kind in PAIRS:
        name = pair_name(listener_kind, dialer_kind)
        for muxer in muxers:
            cells = [fmt(med(results, f"{name}|{muxer}|{m}")) for m in METRICS]
            fails = [
                f"{g} {len(results[k])}"
                for g in ("perf", "streams", "dials")
                if (k := f"{name}|{muxer}|{g} failures") in results
            ]
            cells.append(", ".join(fails) or "0")
            lines.append(f"| {name} | {muxer} | " + " | ".join(cells) + " |")
    return lines


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets(results: dict[str, list[float]], memory: dict[str, Any]) -> list[str]:
    """The issue's targets, as ratios of medians from this run."""
    ours, js, py = "p2pstack -> p2pstack", "js -> js", "py -> py"
    ceiling = med(results, "cipher MB/s")
    rows: list[tuple[str, float | None, str, bool | None]] = []
    for d in ("up", "down"):
        o = med(results, f"{ours}|yamux|{d} MB/s")
        r = ratio(o, med(results, f"{py}|yamux|{d} MB/s"))
        rows.append((f"yamux {d}load vs py-libp2p", r, ">= 2.0x", None if r is None else r >= 2))
        r = ratio(o, med(results, f"{js}|yamux|{d} MB/s"))
        rows.append((f"yamux {d}load vs js-libp2p", r, ">= 1.3x", None if r is None else r >= 1.3))
        r = ratio(o, ceiling)
        rows.append(
            (f"yamux {d}load / cipher ceiling", r, ">= 0.40", None if r is None else r >= 0.4)
        )
        o = med(results, f"{ours}|mplex|{d} MB/s")
        r = ratio(o, med(results, f"{py}|mplex|{d} MB/s"))
        rows.append((f"mplex {d}load vs py-libp2p", r, ">= 5x", None if r is None else r >= 5))
    r = ratio(med(results, f"{ours}|yamux|dial p50 ms"), med(results, f"{py}|yamux|dial p50 ms"))
    rows.append(
        ("dial+upgrade+ping p50 vs py-libp2p", r, "<= 0.8x", None if r is None else r <= 0.8)
    )
    per = memory.get("p2pstack", {}).get("per_conn_kib")
    rows.append(("KiB RSS per idle connection", per, "<= 64", None if per is None else per <= 64))
    out = ["| target | value | goal | met |", "|---|---|---|---|"]
    for label, value, goal, ok in rows:
        met = "-" if ok is None else "yes" if ok else "NO"
        out.append(f"| {label} | {fmt(value, 2)} | {goal} | {met} |")
    return out


def run_memory(args: argparse.Namespace) -> dict[str, Any]:
    """RSS per idle connection of each kind of listener, dialed by p2pstack."""
    out: dict[str, Any] = {}
    for kind in args.memory_peers:
        try:
            r = hold(kind, args.idle_conns, 0)
        except Exception as exc:  # reported, the run goes on
            out[kind] = {"error": str(exc)[:300]}
            continue
        out[kind] = {
            "per_conn_kib": r["per_conn_kib"],
            "held": r["holding"]["connections"],
            "alive_at_release": r["closed"]["alive_before_close"],
            "rss_before_kib": r["rss_before_kib"],
            "rss_after_kib": r["rss_after_kib"],
        }
    return out


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes, 2 reps: a smoke test")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--size", type=int, default=512 * MiB, help="perf bytes each way")
    p.add_argument("--slow-size", type=int, default=256 * MiB, help="perf bytes for py-libp2p")
    p.add_argument("--parallel-size", type=int, default=16 * MiB, help="bytes per parallel stream")
    p.add_argument("--dials", type=int, default=200)
    p.add_argument("--rate", type=int, default=50, help="handshakes per rate sample")
    p.add_argument("--idle-conns", type=int, default=1000)
    p.add_argument("--muxers", default="yamux,mplex")
    p.add_argument("--memory-peers", default="p2pstack,js,py")
    p.add_argument("--scale-streams", type=int, default=10, help="streams per conn (0: skip)")
    p.add_argument("--timeout", type=float, default=180.0, help="bound per dialer run (s)")
    p.add_argument("--out", default=str(REPO / ".interop" / "bench-results.json"))
    a = p.parse_args()
    if a.quick:
        a.reps, a.size, a.slow_size, a.parallel_size = 2, 32 * MiB, 16 * MiB, 2 * MiB
        a.dials, a.rate, a.idle_conns, a.scale_streams = 20, 10, 100, 2
    a.muxers = a.muxers.split(",")
    a.memory_peers = a.memory_peers.split(",")
    return a


def main() -> None:
    if sys.argv[1:2] == ["kad"]:  # python -m benchmarks kad ...: the DHT benchmarks
        from benchmarks.kad import main as kad_main

        kad_main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["pubsub"]:  # python -m benchmarks pubsub ...: the gossipsub benchmarks
        from benchmarks.pubsub import main as pubsub_main

        pubsub_main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["tls"]:  # python -m benchmarks tls ...: TLS against Noise
        from benchmarks.tls import main as tls_main

        tls_main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["daemon"]:  # python -m benchmarks daemon ...: through a p2pd daemon
        from benchmarks.daemon import main as daemon_main

        daemon_main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["quic"]:  # python -m benchmarks quic ...: the QUIC benchmarks
        from benchmarks.quic import main as quic_main

        quic_main(sys.argv[2:])
        return
    args = parse_args()
    start = time.monotonic()
    env = environment()
    print(f"machine: {env}", flush=True)
    results: dict[str, list[float]] = {}
    for rep in range(1, args.reps + 1):
        print(f"rep {rep}/{args.reps}", flush=True)
        one_rep(args, results)
    print("memory (idle connections)", flush=True)
    memory = run_memory(args)
    scale: dict[str, Any] | None = None
    if args.scale_streams:
        print("scale check", flush=True)
        scale = hold("p2pstack", args.idle_conns, args.scale_streams)
        scale["ok"] = scale_ok(scale)
    lines = [
        f"reps {args.reps}; perf {args.size / MiB:g} MiB each way (py-libp2p: "
        f"{args.slow_size / MiB:g} MiB yamux, {args.slow_size / MiB / 2:g} MiB mplex); 16 x "
        f"{args.parallel_size / MiB:g} MiB echo streams (py: / 4); {args.dials} dials; rate over "
        f"{args.rate} handshakes (py: {max(1, args.rate * 2 // 5)}); medians; MB = 10^6 bytes",
        "",
        *table(results, args.muxers),
        "",
        "ChaCha20-Poly1305 encrypt, 64 KiB frames, one core: "
        f"{fmt(med(results, 'cipher MB/s'))} MB/s",
        "",
        "| listener (dialed by p2pstack) | idle conns held | KiB RSS per conn |",
        "|---|---|---|",
    ]
    for kind, m in memory.items():
        held = m.get("held", "-")
        per = fmt(m.get("per_conn_kib"))
        if "alive_at_release" in m and m["alive_at_release"] != held:
            # The listener closed most of them: the RSS difference means nothing.
            held = f"{held} dialed, {m['alive_at_release']} still open at release"
            per = "n/a"
        lines.append(f"| {kind} | {held} | {per} {m.get('error', '')}|")
    if scale is not None:
        lines += [
            "",
            f"scale: {scale['holding']['connections']} connections, {scale['holding']['streams']} "
            f"streams held (opened in {scale['holding']['seconds']:.1f} s), closed in "
            f"{scale['closed']['close_seconds']:.1f} s, errors {scale['closed']['errors']}, "
            f"listener back to {scale['listener_end_stats']['connections']} connections: "
            f"{'OK' if scale['ok'] else 'FAILED'}",
        ]
    lines += ["", *targets(results, memory), "", f"wall time {time.monotonic() - start:.0f} s"]
    print("\n".join(lines), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = {"env": env, "samples": results, "memory": memory, "scale": scale, "report": lines}
    out.write_text(json.dumps(raw, indent=1))
    print(f"raw samples: {out}")


if __name__ == "__main__":
    main()
