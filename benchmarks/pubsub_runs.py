"""Runs of the pubsub benchmark (benchmarks/pubsub.py): the peer processes of each
implementation (contract in benchmarks/pubsub_peer.py), one publisher -> one subscriber
throughput, and latency over a line of four nodes (three hops)."""

from __future__ import annotations

import itertools
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import IO, Any

from benchmarks.kad_procs import NODE, PY_LIBP2P, REPO, Lines, _env, cpu_seconds

TOPIC = "bench"
ACK_TOPIC = "bench-ack"
PEERS: dict[str, list[str]] = {
    "p2pstack": [sys.executable, "-m", "benchmarks.pubsub_peer"],
    "js": [NODE, str(REPO / "benchmarks/pubsub_js.mjs")],
    "py": [PY_LIBP2P, str(REPO / "benchmarks/pubsub_py.py")],
}
Event = dict[str, Any]


class PubsubPeer:
    """A benchmark peer process of ``kind`` listening on 127.0.0.1.

    Args:
        kind: ``p2pstack``, ``js`` or ``py``.
        log: file that receives the process's stderr.

    Raises:
        RuntimeError: it failed to start.
        TimeoutError: it did not start within 60 s.
    """

    def __init__(self, kind: str, log: IO[str] | None = None) -> None:
        self.kind = kind
        self.proc: subprocess.Popen[bytes] = subprocess.Popen(
            PEERS[kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log or subprocess.DEVNULL,
            cwd=REPO,
            env=_env(),
        )
        self.lines = Lines(self.proc, f"{kind} pubsub peer")
        listening = self.lines.event(60)
        if listening.get("event") != "listening":
            self.close()
            raise RuntimeError(f"{kind} pubsub peer: {listening}")
        self.peer_id: str = listening["peer_id"]
        self.addr = f"{listening['addrs'][0].split('/p2p/')[0]}/p2p/{self.peer_id}"

    def command(self, line: str, timeout: float = 60.0) -> Event:
        """Send one command and return its reply.

        Raises:
            RuntimeError: the command failed or the peer exited.
            TimeoutError: no reply within ``timeout``.
        """
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        end = time.monotonic() + timeout
        while True:
            ev = self.lines.event(max(0.1, end - time.monotonic()))
            if ev.get("event") == "command_error":
                raise RuntimeError(f"{self.kind} {line!r}: {ev.get('message')}")
            if "command" in ev:
                return ev

    def cpu(self) -> float:
        """CPU seconds the peer has used so far."""
        return cpu_seconds(self.proc.pid)

    def close(self) -> None:
        """EOF on stdin; killed if it has not exited 10 s later."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start(kind: str, n: int, log: IO[str] | None) -> list[PubsubPeer]:
    """``n`` peers of ``kind``; all are closed if one fails to start."""
    peers: list[PubsubPeer] = []
    try:
        for _ in range(n):
            peers.append(PubsubPeer(kind, log))
    except BaseException:
        close_all(peers)
        raise
    return peers


def close_all(peers: Sequence[PubsubPeer]) -> None:
    """Close every peer."""
    for p in peers:
        p.close()


def wait_mesh(peer: PubsubPeer, topic: str, want: set[str], timeout: float = 30.0) -> None:
    """Poll ``mesh`` until ``want`` peers are in ``peer``'s mesh of ``topic``.

    Raises:
        TimeoutError: not within ``timeout``.
    """
    end = time.monotonic() + timeout
    while not want <= set(peer.command(f"mesh {topic}")["peers"]):
        if time.monotonic() > end:
            raise TimeoutError(f"{peer.kind}: mesh of {topic} lacks {want}")
        time.sleep(0.2)


def throughput(
    pub: PubsubPeer, sub: PubsubPeer, *, count: int, size: int, window: int, idle: float = 5.0
) -> Event:
    """Publish ``count`` messages of ``size`` bytes from ``pub`` to ``sub`` (at most ``window``
    unacknowledged); messages/s from the first send to the last arrival, CPU per message."""
    sub.command("reset")
    pub.command("reset")
    cpu0 = pub.cpu(), sub.cpu()
    published = pub.command(f"publish {TOPIC} {count} {size} {window} 0", timeout=600)
    got = sub.command(f"wait {count} {idle}", timeout=600)
    cpu = pub.cpu() - cpu0[0], sub.cpu() - cpu0[1]
    n = got["count"]
    span = (got["last_arrival_ns"] - got["first_sent_ns"]) / 1e9 if n else None
    return {
        "count": count,
        "size": size,
        "received": n,
        "duplicates": got["duplicates"],
        "stalled": published["stalled"],
        "seconds": span,
        "per_second": n / span if span else None,
        "pub_cpu_us": cpu[0] / n * 1e6 if n else None,
        "sub_cpu_us": cpu[1] / n * 1e6 if n else None,
    }


def pair_run(kind: str, sizes: Sequence[tuple[int, int, int]], log: IO[str] | None) -> Event:
    """One publisher and one subscriber of ``kind``: a 100-message warm-up, then one
    throughput run per (size, count, window) of ``sizes``."""
    pub, sub = peers = start(kind, 2, log)
    try:
        sub.command(f"connect {pub.addr}")
        for p in peers:
            p.command(f"subscribe {TOPIC}")
            p.command(f"subscribe {ACK_TOPIC}")
        wait_mesh(pub, TOPIC, {sub.peer_id})
        wait_mesh(sub, ACK_TOPIC, {pub.peer_id})
        out: Event = {}
        for size, count, window in sizes:
            sub.command(f"ack {max(1, window // 4)}")
            throughput(pub, sub, count=min(100, count), size=size, window=window)  # warm-up
            out[str(size)] = throughput(pub, sub, count=count, size=size, window=window)
        return out
    finally:
        close_all(peers)


def line_run(
    kind: str,
    *,
    count: int,
    size: int,
    interval_ms: float,
    log: IO[str] | None,
    idle: float = 5.0,
) -> Event:
    """Four nodes of ``kind`` in a line (A - B - C - D, neighbours in each other's mesh); A
    publishes ``count`` messages every ``interval_ms``; D's end-to-end latencies (3 hops) as
    p50 / p99 in ms."""
    peers = start(kind, 4, log)
    try:
        for prev, nxt in itertools.pairwise(peers):
            nxt.command(f"connect {prev.addr}")
        for p in peers:
            p.command(f"subscribe {TOPIC}")
        # Both directions (a py-libp2p line that waited for the forward links only once
        # delivered nothing).
        for prev, nxt in itertools.pairwise(peers):
            wait_mesh(prev, TOPIC, {nxt.peer_id})
            wait_mesh(nxt, TOPIC, {prev.peer_id})
        first, last = peers[0], peers[-1]
        last.command("reset")
        first.command(f"publish {TOPIC} {count} {size} 0 {interval_ms}", timeout=600)
        got = last.command(f"wait {count} {idle}", timeout=600)
        lat = sorted(x / 1000 for x in got["latencies_us"])
        return {
            "count": count,
            "received": got["count"],
            "duplicates": got["duplicates"],
            "p50_ms": statistics.median(lat) if lat else None,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None,
            "mean_ms": statistics.fmean(lat) if lat else None,
        }
    finally:
        close_all(peers)
