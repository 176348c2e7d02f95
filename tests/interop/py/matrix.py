"""Run the js/py interop peers against each other and tabulate the results.

Validates the peer harness itself (see ../README.md): every listener/dialer pairing, per muxer,
runs one action list; the raw events go to a JSON file and a markdown table to stdout.
Standard library only; run it with any Python >= 3.10 after ../setup.sh:

    python3 tests/interop/py/matrix.py --pairs js-js,py-js --muxers yamux,mplex
    python3 tests/interop/py/matrix.py --security tls
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
PEERS = {
    "js": [
        str(HERE.parent / "js" / "node_modules" / ".bin" / "node"),
        str(HERE.parent / "js" / "peer.mjs"),
    ],
    "py": [str(REPO / ".interop" / "py-venv" / "bin" / "python"), str(HERE / "peer.py")],
}
DEFAULT_ACTIONS = "ping:20,identify,echo:67108864,streams:100:65536,perf:33554432:33554432"


class Peer:
    """A peer process whose stdout JSON lines are collected by a reader thread."""

    def __init__(self, impl: str, args: list[str]) -> None:
        self.impl = impl
        self.proc = subprocess.Popen(
            [*PEERS[impl], *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr_tail: list[str] = []
        self.readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self.readers:
            t.start()

    def join_readers(self) -> None:
        """After the process exits, wait until its output has been fully collected."""
        for t in self.readers:
            t.join(10)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                ev = {"event": "garbage", "line": line.rstrip()}
            self.events.append(ev)
            self.lines.put(ev)
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_tail = [*self.stderr_tail[-19:], line.rstrip()]

    def wait_event(self, names: set[str], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.impl}: no {names} within {timeout} s")
            try:
                ev = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if ev is None:
                raise RuntimeError(f"{self.impl} exited early: {self.stderr_tail[-5:]}")
            if ev["event"] in names:
                return ev

    def stop(self, timeout: float = 10.0) -> int:
        """Close stdin (the peer's shutdown signal), then escalate if it lingers."""
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            rc = self.proc.wait(timeout)
            self.join_readers()
            return rc
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            return -999


def run_pair(
    listener: str, dialer: str, muxer: str, actions: str, timeout: float, *, security: str = "noise"
) -> dict[str, Any]:
    mux = ["--muxer", muxer] if muxer != "default" else []
    mux += ["--security", security]
    server = Peer(listener, ["--listen", "/ip4/127.0.0.1/tcp/0", *mux])
    result: dict[str, Any] = {"listener": listener, "dialer": dialer, "muxer": muxer}
    start = time.monotonic()
    try:
        addr = server.wait_event({"listening", "error"}, 30)["addrs"][0]
        client = Peer(dialer, ["--dial", addr, "--actions", actions, *mux])
        try:
            client.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            client.proc.kill()
            client.proc.wait()
            client.events.append({"event": "error", "message": f"timed out after {timeout} s"})
        client.join_readers()
        result["dialer_rc"] = client.proc.returncode
        result["dialer_events"] = client.events
        result["dialer_stderr"] = client.stderr_tail
    except Exception as exc:  # keep going with the rest of the matrix
        result["dialer_rc"] = -1
        result["dialer_events"] = [{"event": "error", "message": repr(exc)}]
    result["listener_rc"] = server.stop()
    result["listener_events"] = server.events
    result["listener_stderr"] = server.stderr_tail
    result["wall_seconds"] = time.monotonic() - start
    return result


def summarize(r: dict[str, Any]) -> dict[str, Any]:
    ev = r["dialer_events"]
    by: dict[str, list[dict[str, Any]]] = {}
    for e in ev:
        by.setdefault(e["event"], []).append(e)
    errors = [e["message"] for e in by.get("error", [])]
    errors += [f"listener: {e['message']}" for e in r["listener_events"] if e["event"] == "error"]
    handler_errors = [e for e in r["listener_events"] if e["event"] == "handler_error"]
    pings = [e["rtt_ms"] for e in by.get("ping", [])]
    s: dict[str, Any] = {
        "pair": f"{r['listener']}-listen / {r['dialer']}-dial",
        "muxer": (by.get("connected") or [{}])[0].get("muxer"),
        "ok": r["dialer_rc"] == 0 and "done" in by and not handler_errors,
        "dial_ms": (by.get("connected") or [{}])[0].get("dial_ms"),
        "ping_median_ms": statistics.median(pings) if pings else None,
        "identify": bool(by.get("identify")),
        "wall_s": r["wall_seconds"],
        "listener_rc": r["listener_rc"],
        "errors": errors + [f"listener handler: {e['message']}" for e in handler_errors[:3]],
    }
    if by.get("echo"):
        e = by["echo"][0]
        s["echo_s"] = e["seconds"]
        s["echo_mbps"] = e["bytes"] / 1e6 / e["seconds"]
    if by.get("streams"):
        s["streams_s"] = by["streams"][0]["seconds"]
    if by.get("perf"):
        p = by["perf"][0]
        s["perf_up_mbps"] = p["upload_mbps"]
        s["perf_down_mbps"] = p["download_mbps"]
    if by.get("idle"):
        s["idle"] = by["idle"][0]["still_connected"]
    return s


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if v < 100 else f"{v:.0f}"
    return str(v)


COLUMNS = [
    "pair",
    "muxer",
    "ok",
    "dial_ms",
    "ping_median_ms",
    "echo_s",
    "echo_mbps",
    "streams_s",
    "perf_up_mbps",
    "perf_down_mbps",
    "idle",
    "wall_s",
    "errors",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", default="js-js,py-py,js-py,py-js", help="LISTENER-DIALER,...")
    ap.add_argument("--muxers", default="yamux,mplex")
    ap.add_argument("--security", default="noise", choices=["noise", "tls"])
    ap.add_argument("--actions", default=DEFAULT_ACTIONS)
    ap.add_argument("--timeout", type=float, default=600.0, help="per dialer run, seconds")
    ap.add_argument("--out", default=str(REPO / ".interop" / "matrix-results.json"))
    a = ap.parse_args()
    results, rows = [], []
    for pair in a.pairs.split(","):
        listener, dialer = pair.split("-")
        for muxer in a.muxers.split(","):
            r = run_pair(listener, dialer, muxer, a.actions, a.timeout, security=a.security)
            s = summarize(r)
            results.append({**r, "summary": s})
            rows.append(s)
            print(json.dumps(s), file=sys.stderr, flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=1))
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for s in rows:
        print(
            "| "
            + " | ".join(
                fmt(s.get(c)) if c != "errors" else "; ".join(s["errors"])[:200] or "-"
                for c in COLUMNS
            )
            + " |"
        )
    return 0 if all(s["ok"] for s in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
