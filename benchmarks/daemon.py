"""``python -m benchmarks daemon [--quick] [--daemon NAME | --daemon-cmd CMD] [--size N]``:
one-stream upload throughput through a p2pd daemon's control socket against direct library use.

Three processes on the daemon path (a client of the daemon, the daemon, a remote p2pstack node)
and two on the direct one (a p2pstack library host, the same remote), as described in
benchmarks/daemon_peer.py; the two paths alternate, rep after rep, and the medians are printed
side by side with their ratio. The daemon is a name of tests/interop/daemons.py's ``DAEMONS``
(``js`` or ``p2pstack``) or any command line taking p2pd's flags
(``--daemon-cmd "p2pstack daemon"``).
The control socket is a unix socket (p2pd's default) unless ``--control tcp``. ``--quick`` is
the smoke test: 16 MiB, one rep.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmarks._procs import REPO, environment
from tests.interop.daemons import BASE_FLAGS, DAEMONS, start_daemon_sync, stop_sync

MiB = 1 << 20
PEER = [sys.executable, "-m", "benchmarks.daemon_peer"]


def start_remote(timeout: float = 60.0) -> tuple[subprocess.Popen[bytes], str]:
    """The remote node and its first address (with ``/p2p/``)."""
    proc = subprocess.Popen(
        [*PEER, "remote"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=REPO
    )
    assert proc.stdout is not None
    fd, pending, end = proc.stdout.fileno(), b"", time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            stop_sync(proc)
            raise TimeoutError("the remote node did not start")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise RuntimeError(f"the remote node exited ({proc.wait()})")
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if line.startswith(b"{") and json.loads(line).get("event") == "listening":
                return proc, str(json.loads(line)["addrs"][0])


def run_upload(args: list[str], timeout: float) -> dict[str, Any]:
    """One uploading process to its end; its ``upload`` event."""
    proc = subprocess.run(
        [*PEER, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False
    )
    for line in proc.stdout.splitlines():
        if line.startswith("{") and (ev := json.loads(line)).get("event") == "upload":
            result: dict[str, Any] = ev
            return result
    raise RuntimeError(f"upload {args[0]} failed ({proc.returncode}): {proc.stderr[-1500:]}")


def daemon_argv(args: argparse.Namespace, control_dir: str) -> list[str]:
    """The daemon's command line: its command, then p2pd flags with the control socket that
    ``--control`` asks for (TCP on loopback, or a unix socket in ``control_dir``)."""
    flags = list(BASE_FLAGS)
    if args.control == "unix":
        flags[0] = f"-listen=/unix{control_dir}/p2pd.sock"
    if args.daemon_cmd:
        return [*shlex.split(args.daemon_cmd), *flags]
    if args.daemon not in DAEMONS:
        raise SystemExit(f"unknown daemon {args.daemon!r}; known: {', '.join(DAEMONS)}")
    return [*DAEMONS[args.daemon], *flags]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    """MB/s samples by path ("direct", "daemon"), and the CPU seconds the remote and the daemon
    spent during each daemon-path upload ("remote_cpu", "daemon_cpu")."""
    results: dict[str, list[float]] = {
        "direct": [],
        "daemon": [],
        "remote_cpu": [],
        "daemon_cpu": [],
    }
    remote, addr = start_remote()
    control_dir = tempfile.TemporaryDirectory(prefix="p2pd-bench-")
    try:
        daemon, banner = start_daemon_sync(daemon_argv(args, control_dir.name))
        try:
            size = ["--size", str(args.size)]
            for _ in range(args.reps):
                ev = run_upload(["direct", addr, *size], args.timeout)
                results["direct"].append(ev["mbps"])
                before = cpu_seconds(remote.pid), cpu_seconds(daemon.pid)
                ev = run_upload(["via", banner.control, addr, *size], args.timeout)
                results["daemon"].append(ev["mbps"])
                results["remote_cpu"].append(cpu_seconds(remote.pid) - before[0])
                results["daemon_cpu"].append(cpu_seconds(daemon.pid) - before[1])
        finally:
            stop_sync(daemon)
    finally:
        stop_sync(remote)
        control_dir.cleanup()
    return results


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks daemon", description=__doc__)
    p.add_argument("--daemon", default="js", help="a name of tests/interop/daemons.py DAEMONS")
    p.add_argument("--daemon-cmd", help="a daemon command line taking p2pd's flags")
    p.add_argument(
        "--control",
        choices=["tcp", "unix"],
        default="unix",
        help="the control socket: a unix socket (p2pd's default), or TCP on loopback",
    )
    p.add_argument("--size", type=int, default=256 * MiB, help="bytes per upload")
    p.add_argument("--reps", type=int, default=9, help="uploads per path (medians are printed)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per upload process")
    p.add_argument("--quick", action="store_true", help="16 MiB, one rep: a smoke test")
    p.add_argument("--json", action="store_true", help="print the samples as JSON too")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.reps = 16 * MiB, 1
    results = measure(args)
    direct, daemon = (statistics.median(results[k]) for k in ("direct", "daemon"))
    name = args.daemon_cmd or args.daemon
    print(
        f"one-stream upload of {args.size / MiB:.0f} MiB, median of {args.reps}, "
        f"{args.control} control socket, load average {os.getloadavg()[0]:.2f}"
    )
    print(", ".join(f"{k}={v}" for k, v in environment().items()))
    print("| path | processes | MB/s |")
    print("|---|---|---|")
    print(f"| p2pstack library host -> remote | 2 | {direct:,.1f} |")
    print(f"| client -> {name} daemon -> remote | 3 | {daemon:,.1f} |")
    print(f"daemon / direct: {daemon / direct:.2f}")
    cpu = {k: statistics.median(results[k]) for k in ("remote_cpu", "daemon_cpu")}
    print(
        f"CPU seconds per daemon-path upload (medians): daemon {cpu['daemon_cpu']:.2f}, "
        f"remote {cpu['remote_cpu']:.2f}"
    )
    if args.json:
        samples = {k: results[k] for k in ("direct", "daemon")}
        cpu_samples = {k: results[k] for k in ("remote_cpu", "daemon_cpu")}
        report = {"samples": samples, "cpu_seconds": cpu_samples, "ratio": daemon / direct}
        print(json.dumps({**report, "daemon": name}))
