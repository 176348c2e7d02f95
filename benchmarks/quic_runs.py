"""Runs of the QUIC benchmark (benchmarks/quic.py): the peer processes of each implementation,
a listener and a dialer on 127.0.0.1, each its own OS process, and the CPU time they spend.

Every peer speaks one contract: ``--listen MA`` prints ``{"event": "listening", "addrs": [...]}``
and serves /perf/1.0.0 and ping until its stdin ends; ``--dial MA --actions perf:UP:DOWN`` or
``dials:N`` prints ``perf`` / ``dials`` events and ``done`` (benchmarks/peer.py,
benchmarks/quic_raw.py, quic_js.mjs, quic_py.py, tests/interop/js/peer.mjs).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from typing import IO, Any

from benchmarks.kad_procs import NODE, PY_LIBP2P, REPO, Lines, _env, cpu_seconds

QUIC_ADDR = "/ip4/127.0.0.1/udp/0/quic-v1"
TCP_ADDR = "/ip4/127.0.0.1/tcp/0"
#: kind -> (command, listen address). ``aioquic-N`` kinds are built by ``command``.
PEERS: dict[str, tuple[list[str], str]] = {
    "p2pstack": ([sys.executable, "-m", "benchmarks.peer"], QUIC_ADDR),
    "py": ([PY_LIBP2P, str(REPO / "benchmarks/quic_py.py")], QUIC_ADDR),
    "js": ([NODE, str(REPO / "benchmarks/quic_js.mjs")], QUIC_ADDR),
    "p2pstack-tcp": ([sys.executable, "-m", "benchmarks.peer", "--muxer", "yamux"], TCP_ADDR),
    "js-tcp": ([NODE, str(REPO / "tests/interop/js/peer.mjs"), "--muxer", "yamux"], TCP_ADDR),
}
#: "max": the largest datagram size aioquic 1.7.2 moves a stream with here (loopback MTU is
#: 65,536; at 24,576 bytes and more its receiver fails with "Failed to parse frame").
MAX_DATAGRAM = 16384
Event = dict[str, Any]


def command(kind: str) -> tuple[list[str], str]:
    """The command line and listen address of peer ``kind``.

    Args:
        kind: a key of ``PEERS``, ``aioquic-SIZE`` or ``p2pstack-SIZE`` (SIZE a datagram size
            or ``max``).

    Returns:
        The argv prefix (without ``--listen`` / ``--dial``) and the address to listen on.

    Raises:
        KeyError: unknown kind.
    """
    if kind.startswith("p2pstack-") and kind != "p2pstack-tcp":  # p2pstack-SIZE: datagram size
        size = kind.removeprefix("p2pstack-")
        size = str(MAX_DATAGRAM) if size == "max" else size
        return [sys.executable, "-m", "benchmarks.peer", "--quic-datagram", size], QUIC_ADDR
    if kind.startswith("aioquic-"):
        size = kind.removeprefix("aioquic-")
        size = str(MAX_DATAGRAM) if size == "max" else size
        return [sys.executable, "-m", "benchmarks.quic_raw", "--datagram", size], QUIC_ADDR
    return PEERS[kind]


class Listener:
    """A listening peer of ``kind``; closing its stdin stops it.

    Args:
        kind: see ``command``.
        log: file that receives the process's stderr.

    Raises:
        RuntimeError: it failed to start.
        TimeoutError: it did not start within 90 s.
    """

    def __init__(self, kind: str, log: IO[str] | None = None) -> None:
        argv, addr = command(kind)
        self.kind = kind
        self.proc: subprocess.Popen[bytes] = subprocess.Popen(
            [*argv, "--listen", addr],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log or subprocess.DEVNULL,
            cwd=REPO,
            env=_env(),
        )
        self.lines = Lines(self.proc, f"{kind} listener")
        try:
            ev = self.lines.event(90)
        except (RuntimeError, TimeoutError):
            self.close()
            raise
        if ev.get("event") != "listening":
            self.close()
            raise RuntimeError(f"{kind} listener said {ev}")
        self.addr: str = ev["addrs"][0]

    def cpu(self) -> float:
        """CPU seconds the listener has used so far."""
        return cpu_seconds(self.proc.pid)

    def close(self) -> None:
        """Stop it (EOF on stdin, then kill after 10 s)."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(10)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            self.proc.kill()
            self.proc.wait()


def dial(kind: str, addr: str, actions: str, timeout: float, log: IO[str] | None) -> list[Event]:
    """Run a dialer of ``kind`` against ``addr`` to the end.

    Args:
        kind: see ``command``.
        addr: the listener's multiaddr.
        actions: the action list, e.g. ``perf:67108864:67108864``.
        timeout: bound on the whole run (s).
        log: file that receives the dialer's stderr.

    Returns:
        Its JSON events.

    Raises:
        RuntimeError: it exited with an error or without ``done``.
        subprocess.TimeoutExpired: it ran past ``timeout``.
    """
    argv, _ = command(kind)
    proc = subprocess.run(
        [*argv, "--dial", addr, "--actions", actions],
        check=False,  # the exit code is checked below, with the events in the message
        stdout=subprocess.PIPE,
        stderr=log or subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=_env(),
    )
    events = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not any(e.get("event") == "done" for e in events):
        raise RuntimeError(f"{kind} dialer failed ({proc.returncode}): {events[-2:]}")
    return events


def perf_run(kind: str, size: int, timeout: float, log: IO[str] | None) -> dict[str, float]:
    """One perf exchange of ``size`` bytes each way between two fresh peers of ``kind``.

    Returns:
        ``up``/``down`` MB/s, the dialer's CPU ms per MiB sent (``up_cpu``) and received
        (``down_cpu``) where the peer reports them, the listener's CPU ms per MiB (both
        directions: ``listener_cpu``), and the load average at the end.
    """
    listener = Listener(kind, log)
    try:
        cpu0 = listener.cpu()
        events = dial(kind, listener.addr, f"perf:{size}:{size}", timeout, log)
        listener_cpu = listener.cpu() - cpu0
    finally:
        listener.close()
    ev = next(e for e in events if e["event"] == "perf")
    mib = size / (1 << 20)
    out = {
        "up": ev["upload_mbps"],
        "down": ev["download_mbps"],
        "listener_cpu": listener_cpu * 1000 / (2 * mib),
        "load": load_average(),
    }
    if ev.get("upload_cpu_s") is not None:
        out["up_cpu"] = ev["upload_cpu_s"] * 1000 / mib
        out["down_cpu"] = ev["download_cpu_s"] * 1000 / mib
    return out


def dials_run(kind: str, count: int, timeout: float, log: IO[str] | None) -> dict[str, float]:
    """``count`` x (fresh dial + upgrade + first ping) from a dialer of ``kind`` to a listener of
    ``kind``; the first dial (cold: imports, JIT, caches) is dropped. py-libp2p gets 6: its QUIC
    listener refuses the 9th connection from one peer.

    Returns:
        ``p50`` and ``p90`` in ms, the listener's CPU ms per connection (accept, handshake,
        ping, close: the load does not inflate it as it does latency), the load average.
    """
    if kind == "py":  # its listener refuses a peer's 9th connection: the first + 7 redials
        count = min(count, 6)
    listener = Listener(kind, log)
    try:
        cpu0 = listener.cpu()
        events = dial(kind, listener.addr, f"dials:{count + 1}", timeout, log)
        cpu = listener.cpu() - cpu0
    finally:
        listener.close()
    ms = sorted(next(e for e in events if e["event"] == "dials")["ms"][1:])
    return {
        "p50": statistics.median(ms),
        "p90": ms[min(len(ms) - 1, int(len(ms) * 0.9))],
        "listener_cpu_ms": cpu * 1000 / (count + 2),  # + the dialer's first connect
        "load": load_average(),
    }


def load_average() -> float:
    """The 1-minute load average (the machine is shared: figures carry it)."""
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])
