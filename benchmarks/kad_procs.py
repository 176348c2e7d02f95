"""Process plumbing for the DHT benchmarks: DHT peers of the three implementations (the
``--dht`` contract of tests/interop/README.md; p2pstack's is benchmarks/kad_peer.py), the
FIND_NODE load generators (benchmarks/kad_load.py, kad_js.mjs, kad_py.py) and the CPU time of a
process read from /proc."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
NODE = str(REPO / "tests/interop/js/node_modules/.bin/node")
PY_LIBP2P = str(REPO / ".interop/py-venv/bin/python")
#: Every DHT peer serves on loopback with this namespace accepted without validation.
NAMESPACE = "bench"
DHT_PEERS: dict[str, list[str]] = {
    "p2pstack": [sys.executable, "-m", "benchmarks.kad_peer"],
    "js": [NODE, str(REPO / "tests/interop/js/peer.mjs"), "--muxer", "yamux"],
    "py": [PY_LIBP2P, str(REPO / "tests/interop/py/peer.py"), "--muxer", "yamux"],
}
LOADERS: dict[str, list[str]] = {
    "p2pstack": [sys.executable, "-m", "benchmarks.kad_load"],
    "js": [NODE, str(REPO / "benchmarks/kad_js.mjs")],
    "py": [PY_LIBP2P, str(REPO / "benchmarks/kad_py.py")],
}
CLK_TCK = os.sysconf("SC_CLK_TCK")

Event = dict[str, Any]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def _env() -> dict[str, str]:
    # The worktree's packages first, whatever the venv's editable install points at.
    return {**os.environ, "PYTHONPATH": str(REPO)}


class Lines:
    """Lines of a process's stdout, read from the pipe's file descriptor (a buffered text file
    would read ahead: ``select`` would then miss lines already sitting in its buffer)."""

    def __init__(self, proc: subprocess.Popen[bytes], what: str) -> None:
        assert proc.stdout is not None
        self._proc = proc
        self._fd = proc.stdout.fileno()
        self._what = what
        self._buffer = b""

    def event(self, timeout: float) -> Event:
        """The next JSON line (bounded by ``timeout``).

        Raises:
            TimeoutError: nothing within ``timeout``.
            RuntimeError: the process exited.
        """
        end = time.monotonic() + timeout
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                if line.startswith(b"{"):
                    ev: Event = json.loads(line)
                    return ev
            left = end - time.monotonic()
            if left <= 0 or not select.select([self._fd], [], [], left)[0]:
                raise TimeoutError(f"{self._what}: silent for {timeout:.0f} s")
            data = os.read(self._fd, 65536)
            if not data:
                raise RuntimeError(f"{self._what} exited ({self._proc.wait()})")
            self._buffer += data


class DhtPeer:
    """A DHT server process of ``kind`` on 127.0.0.1, driven by stdin commands.

    Args:
        kind: ``p2pstack``, ``js`` or ``py``.
        bootstrap: addresses to join through at start.
        hosts: p2pstack only: DHT servers in the one process (commands go to the first).
        log: file that receives the process's stderr.
    """

    def __init__(
        self,
        kind: str,
        *,
        bootstrap: Sequence[str] = (),
        hosts: int = 1,
        log: IO[str] | None = None,
    ) -> None:
        self.kind = kind
        args = ["--listen", "/ip4/127.0.0.1/tcp/0", "--dht", "server", "--dht-namespace", NAMESPACE]
        for addr in bootstrap:
            args += ["--bootstrap", addr]
        if hosts != 1:
            args += ["--hosts", str(hosts)]
        self.proc: subprocess.Popen[bytes] = subprocess.Popen(
            [*DHT_PEERS[kind], *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log or subprocess.DEVNULL,
            cwd=REPO,
            env=_env(),
        )
        self.lines = Lines(self.proc, f"{kind} peer")
        self.addr = ""
        self.ready: Event = {}

    def wait_ready(self, timeout: float = 60.0) -> Event:
        """Wait for ``listening`` then ``ready``; returns ``ready``.

        Raises:
            RuntimeError: the peer reported an error or exited.
            TimeoutError: not ready within ``timeout``.
        """
        end = time.monotonic() + timeout
        while True:
            ev = self.lines.event(max(0.1, end - time.monotonic()))
            if ev.get("event") == "listening":
                self.addr = ev["addrs"][0]
            elif ev.get("event") == "ready":
                self.ready = ev
                return ev
            elif ev.get("event") == "error":
                raise RuntimeError(f"{self.kind} peer: {ev}")

    def command(self, line: str, timeout: float = 60.0) -> tuple[Event, float]:
        """Send one command; its reply event and the seconds from sending to reply.

        Raises:
            RuntimeError: the command failed (``command_error``) or the peer exited.
            TimeoutError: no reply within ``timeout``.
        """
        assert self.proc.stdin is not None
        start = time.perf_counter()
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        end = time.monotonic() + timeout
        while True:
            ev = self.lines.event(max(0.1, end - time.monotonic()))
            if "command" in ev:
                seconds = time.perf_counter() - start
                if ev["event"] == "command_error":
                    raise RuntimeError(f"{self.kind} {line!r}: {ev.get('message')}")
                return ev, seconds

    def cpu(self) -> float:
        """CPU seconds the peer has used so far."""
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        """EOF on stdin: the peer stops."""
        try:
            if self.proc.stdin is not None and not self.proc.stdin.closed:
                self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def close(self) -> None:
        """Stop the peer; killed if it has not exited 10 s later."""
        self.stop()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def close_all(peers: Sequence[DhtPeer]) -> None:
    """Stop every peer at once, then wait for each (see ``DhtPeer.close``)."""
    for p in peers:
        p.stop()
    for p in peers:
        p.close()


def run_load(
    kind: str, server: DhtPeer, *, clients: int, warmup: float, seconds: float, log: IO[str] | None
) -> Event:
    """Run the ``kind`` load generator against ``server``; its ``load`` event plus the server's
    CPU seconds inside the measured window (``server_cpu``).

    Raises:
        RuntimeError: the load generator failed.
        TimeoutError: it did not finish in time.
    """
    args = ["--target", server.addr, "--clients", str(clients)]
    args += ["--warmup", str(warmup), "--seconds", str(seconds)]
    proc = subprocess.Popen(
        [*LOADERS[kind], *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log or subprocess.DEVNULL,
        cwd=REPO,
        env=_env(),
    )
    lines = Lines(proc, f"{kind} load")
    try:
        window = lines.event(60 + warmup)
        if window.get("event") != "window":
            raise RuntimeError(f"{kind} load: {window}")
        cpu0 = server.cpu()
        ev = lines.event(seconds + 30)
        ev["server_cpu"] = server.cpu() - cpu0
        if ev.get("event") != "load":
            raise RuntimeError(f"{kind} load: {ev}")
        proc.wait(30)
        return ev
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
