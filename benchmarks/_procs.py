"""Process plumbing for the benchmarks: start a listening peer (p2pstack, js-libp2p or
py-libp2p, contract of tests/interop/README.md), run a dialer against it, read JSON events,
read a process's RSS from /proc."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PY = str(REPO / ".venv" / "bin" / "python")
COMMANDS: dict[str, list[str]] = {
    "p2pstack": [PY, "-m", "benchmarks.peer"],
    "js": [
        str(REPO / "tests/interop/js/node_modules/.bin/node"),
        str(REPO / "tests/interop/js/peer.mjs"),
    ],
    "py": [str(REPO / ".interop/py-venv/bin/python"), str(REPO / "tests/interop/py/peer.py")],
}

Event = dict[str, Any]


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


class Listener:
    """A listening peer with stdin and stdout piped; closing stdin stops it."""

    def __init__(self, kind: str, muxer: str, timeout: float = 30.0) -> None:
        self.kind = kind
        self.proc = _spawn(kind, "--listen", "/ip4/127.0.0.1/tcp/0", "--muxer", muxer)
        ev = self.next_event(timeout)
        if ev.get("event") != "listening":
            raise RuntimeError(f"{kind} listener said {ev}")
        self.addr: str = ev["addrs"][0]

    def next_event(self, timeout: float) -> Event:
        assert self.proc.stdout is not None
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise TimeoutError(f"{self.kind} listener silent for {timeout} s")
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.kind} listener exited ({self.proc.poll()})")
            if line.startswith("{"):
                ev: Event = json.loads(line)
                if ev.get("event") in ("listening", "stats"):
                    return ev

    def stats(self, timeout: float = 10.0) -> Event:
        """p2pstack listeners only: the host's connection and stream counts."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return self.next_event(timeout)

    def close(self) -> int | None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            return self.proc.wait(10)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            self.proc.kill()
            self.proc.wait()
            return None


def dial(kind: str, addr: str, muxer: str, actions: str, timeout: float) -> list[Event]:
    """Run a dialer of ``kind`` to the end; its events (raises on an error event or exit)."""
    proc = subprocess.run(
        [*COMMANDS[kind], "--dial", addr, "--muxer", muxer, "--actions", actions],
        check=False,  # the exit code is checked below, with the events in the message
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )
    events = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not any(e.get("event") == "done" for e in events):
        tail = proc.stderr[-800:]
        raise RuntimeError(f"{kind} dialer failed ({proc.returncode}): {events[-2:]} {tail}")
    return events


def spawn_dialer(kind: str, addr: str, muxer: str, actions: str) -> subprocess.Popen[str]:
    """A dialer whose stdin is a pipe (``conns`` waits for one line on it)."""
    return _spawn(kind, "--dial", addr, "--muxer", muxer, "--actions", actions)


def _spawn(kind: str, *args: str) -> subprocess.Popen[str]:
    """Peer ``kind`` with ``args``, stdin and stdout piped as lines, stderr discarded."""
    return subprocess.Popen(
        [*COMMANDS[kind], *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        text=True,
        bufsize=1,
    )


def read_until(proc: subprocess.Popen[str], name: str, timeout: float) -> Event:
    """Events of ``proc`` until one named ``name`` (bounded by ``timeout``)."""
    assert proc.stdout is not None
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
            raise TimeoutError(f"no {name} event within {timeout} s")
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"process exited before {name} ({proc.wait()})")
        if line.startswith("{"):
            ev: Event = json.loads(line)
            if ev.get("event") == "error":
                raise RuntimeError(f"dialer error: {ev}")
            if ev.get("event") == name:
                return ev


def environment() -> dict[str, str]:
    """The machine, for the report."""
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    import platform

    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "memory_gib": f"{mem_kib / 2**20:.1f}",
    }
