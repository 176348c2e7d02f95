"""``python -m benchmarks tls [--quick]``: TCP + TLS 1.3 (/tls/1.0.0,
https://github.com/libp2p/specs/blob/master/tls/tls.md) + yamux against TCP + Noise + yamux,
side by side in one run, interleaved (rep 1 of every row, then rep 2, ...).

Each row is a listener process and a dialer process on 127.0.0.1 speaking the peer contract of
tests/interop/README.md: /perf/1.0.0 throughput both ways on one stream, then dial + upgrade +
first ping (``dials:N``) and sequential handshakes per second (``rate:N``). The main rows are
p2pstack to p2pstack; js-libp2p to js-libp2p and p2pstack to js (both directions) give context.
Also printed: the one-core ceilings of the AEAD each channel encrypts with (Noise:
ChaCha20-Poly1305 in 64 KiB frames; TLS 1.3: AES-GCM in 16 KiB records).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from benchmarks._procs import COMMANDS, REPO, Event, environment, read_until

MiB = 1 << 20
SECURITY = ("noise", "tls")
SECURITY_IDS = {"noise": "/noise", "tls": "/tls/1.0.0"}
#: (listener, dialer) kinds; p2pstack's own pair first, it is what the comparison is about.
PAIRS = [("p2pstack", "p2pstack"), ("js", "js"), ("js", "p2pstack"), ("p2pstack", "js")]
METRICS = ["up MB/s", "down MB/s", "dial p50 ms", "handshakes/s"]
START_TIMEOUT = 60.0  # seconds for a listener to print its address


def aead_ceiling(kind: str, seconds: float = 1.0) -> float:
    """MB/s of one core encrypting records as the channel does.

    Args:
        kind: ``"noise"`` (ChaCha20-Poly1305, 64 KiB frames) or ``"tls"`` (AES-256-GCM,
            16 KiB records, the TLS 1.3 maximum record size).
        seconds: how long to measure.

    Returns:
        Plaintext megabytes (10^6 bytes) encrypted per second.
    """
    if kind == "noise":
        aead: ChaCha20Poly1305 | AESGCM = ChaCha20Poly1305(bytes(32))
        record = bytes(65535 - 16)
    else:
        aead = AESGCM(bytes(32))
        record = bytes(16384)
    n = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(64):
            aead.encrypt(n.to_bytes(12, "little"), record, None)
            n += 1
    return n * len(record) / 1e6 / elapsed


def run_row(listener: str, dialer: str, security: str, actions: str, timeout: float) -> list[Event]:
    """One listener and one dialer run to the end with ``security`` + yamux.

    Args:
        listener: kind of the listening peer (``p2pstack``, ``js``, ``py``).
        dialer: kind of the dialing peer.
        security: ``noise`` or ``tls``.
        actions: the dialer's ``--actions``.
        timeout: bound on the dialer's run, seconds.

    Returns:
        The dialer's JSON events.

    Raises:
        RuntimeError: a peer failed or exited early.
        TimeoutError: the listener did not start or the dialer did not finish in time.
    """
    common = ["--security", security, "--muxer", "yamux"]
    proc = subprocess.Popen(
        [*COMMANDS[listener], "--listen", "/ip4/127.0.0.1/tcp/0", *common],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        text=True,
        bufsize=1,
    )
    try:
        addr = read_until(proc, "listening", START_TIMEOUT)["addrs"][0]
        done = subprocess.run(
            [*COMMANDS[dialer], "--dial", addr, *common, "--actions", actions],
            check=False,  # checked below, with the events in the message
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
        )
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    events = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    if done.returncode != 0 or not any(e.get("event") == "done" for e in events):
        errors = [e.get("message") for e in events if e.get("event") == "error"]
        message = f"{dialer} dialer failed ({done.returncode}): {errors or events[-1:]}"
        raise RuntimeError(message, events)  # the events so far still hold samples
    for ev in events:  # js says which channel it got: make sure it is the one asked for
        if ev["event"] == "connected" and ev.get("encryption") not in (
            None,
            SECURITY_IDS[security],
        ):
            raise RuntimeError(f"asked for {security}, {dialer} got {ev['encryption']}")
    return events


def record(events: list[Event], prefix: str, add: Callable[[str, float], None]) -> None:
    """Turn a dialer's events into samples named ``prefix + metric``.

    Args:
        events: the dialer's events.
        prefix: the row's name.
        add: called with each (name, value).
    """
    for ev in events:
        kind = ev["event"]
        if kind == "perf":
            add(f"{prefix}up MB/s", ev["upload_mbps"])
            add(f"{prefix}down MB/s", ev["download_mbps"])
        elif kind == "dials":
            add(f"{prefix}dial p50 ms", statistics.median(ev["ms"]))
        elif kind == "rate":
            add(f"{prefix}handshakes/s", ev["per_second"])


def one_rep(args: argparse.Namespace, results: dict[str, list[float]]) -> None:
    """One repetition of every row, recording into ``results`` (name -> samples).

    Args:
        args: the command line.
        results: where samples accumulate.
    """

    def add(key: str, value: float) -> None:
        results.setdefault(key, []).append(value)

    for security in SECURITY:
        add(f"{security} cipher MB/s", aead_ceiling(security))
    # One dialer process per group, so that a failure costs one group's samples, not the row's
    # (js's dials action now and then fails with "Cannot write to a stream that is closed", over
    # Noise as over TLS); rate runs before dials for the same reason.
    groups = {
        "perf": f"perf:{args.size}:{args.size}",
        "handshakes": f"rate:{args.rate},dials:{args.dials}",
    }
    for listener, dialer in PAIRS:
        for security in SECURITY:
            name = f"{dialer} -> {listener}|{security}|"
            for group, actions in groups.items():
                try:
                    events = run_row(listener, dialer, security, actions, args.timeout)
                except Exception as exc:  # one failing sample must not end the run
                    add(f"{name}failures", 1)
                    print(
                        f"  {name}{group} FAILED {exc.args[0] if exc.args else exc!r}"[:300],
                        flush=True,
                    )
                    events = exc.args[1] if len(exc.args) > 1 else []
                record(events, name, add)
            print(f"  {dialer} -> {listener} {security}: done", flush=True)


def med(results: dict[str, list[float]], key: str) -> float | None:
    """Median of the samples under ``key``, or None without any."""
    xs = results.get(key)
    return statistics.median(xs) if xs else None


def fmt(x: float | None, digits: int = 1) -> str:
    """A number for the table, ``-`` when missing."""
    return "-" if x is None else f"{x:,.{digits}f}"


def table(results: dict[str, list[float]]) -> list[str]:
    """The report: one line per row and security, then TLS / Noise per pair.

    Args:
        results: the samples.

    Returns:
        Markdown lines.
    """
    lines = ["| dialer -> listener | security | " + " | ".join(METRICS) + " | failed runs |"]
    lines.append("|---|---|" + "---|" * (len(METRICS) + 1))
    ratios = ["| dialer -> listener | " + " | ".join(f"TLS / Noise {m}" for m in METRICS) + " |"]
    ratios.append("|---|" + "---|" * len(METRICS))
    for listener, dialer in PAIRS:
        pair = f"{dialer} -> {listener}"
        for security in SECURITY:
            cells = [fmt(med(results, f"{pair}|{security}|{m}")) for m in METRICS]
            cells.append(str(len(results.get(f"{pair}|{security}|failures", []))))
            lines.append(f"| {pair} | {security} | " + " | ".join(cells) + " |")
        cells = []
        for m in METRICS:
            t, n = med(results, f"{pair}|tls|{m}"), med(results, f"{pair}|noise|{m}")
            cells.append(fmt(t / n if t is not None and n else None, 2))
        ratios.append(f"| {pair} | " + " | ".join(cells) + " |")
    return [*lines, "", *ratios]


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line of ``python -m benchmarks tls``."""
    p = argparse.ArgumentParser(prog="python -m benchmarks tls", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes, 1 rep: a smoke test")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--size", type=int, default=256 * MiB, help="perf bytes each way")
    p.add_argument("--dials", type=int, default=50)
    p.add_argument("--rate", type=int, default=30, help="handshakes per rate sample")
    p.add_argument("--timeout", type=float, default=180.0, help="bound per dialer run (s)")
    p.add_argument("--out", default=str(REPO / ".interop" / "bench-tls-results.json"))
    a = p.parse_args(argv)
    if a.quick:
        a.reps, a.size, a.dials, a.rate = 1, 16 * MiB, 10, 10
    return a


def main(argv: list[str]) -> None:
    """Run every row ``--reps`` times, print the tables, save the raw samples.

    Args:
        argv: the arguments after ``tls``.
    """
    args = parse_args(argv)
    start = time.monotonic()
    env = environment()
    print(f"machine: {env}", flush=True)
    results: dict[str, list[float]] = {}
    for rep in range(1, args.reps + 1):
        print(f"rep {rep}/{args.reps}", flush=True)
        one_rep(args, results)
    lines = [
        f"reps {args.reps}; TCP + security + yamux; perf {args.size / MiB:g} MiB each way on "
        f"one stream; {args.dials} dials (+ first ping); rate over {args.rate} handshakes; "
        "medians; MB = 10^6 bytes",
        "",
        *table(results),
        "",
        "one core, encrypt only: ChaCha20-Poly1305 64 KiB frames (Noise) "
        f"{fmt(med(results, 'noise cipher MB/s'))} MB/s; AES-256-GCM 16 KiB records (TLS) "
        f"{fmt(med(results, 'tls cipher MB/s'))} MB/s",
        "",
        f"wall time {time.monotonic() - start:.0f} s",
    ]
    print("\n".join(lines), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"env": env, "samples": results, "report": lines}, indent=1))
    print(f"raw samples: {out}")
