"""Run a test scenario inside a private network namespace (``unshare -n``, as root): only a
loopback interface, up, with a multicast route, so that mDNS traffic never leaves the test.

The namespace belongs to the child process: it disappears when the child and its own children
exit, whatever the outcome. ``run_in_netns`` kills the child's whole process group on timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[4]


def netns_available() -> bool:
    """Whether this process may create network namespaces (root with ``unshare`` and ``ip``)."""
    return (
        os.geteuid() == 0 and shutil.which("unshare") is not None and shutil.which("ip") is not None
    )


def setup_loopback_multicast() -> None:
    """Inside a fresh namespace: bring ``lo`` up and route multicast through it. ``lo`` also
    gets a documentation address (192.0.2.1, RFC 5737): without a non-loopback address,
    ``getaddrinfo(..., AI_ADDRCONFIG)`` (used by anyio's TCP listener) resolves nothing."""
    for cmd in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"],
        ["ip", "link", "set", "lo", "multicast", "on"],
        ["ip", "route", "add", "224.0.0.0/4", "dev", "lo"],
    ):
        subprocess.run(cmd, check=True, capture_output=True, timeout=10)


def run_in_netns(module: str, *args: str, timeout: float) -> list[dict[str, Any]]:
    """Run ``python -m module args`` in a new network namespace; return the JSON objects it
    printed, one per line.

    Raises:
        AssertionError: the child failed or ran past ``timeout`` (its stderr is in the message).
    """
    return _finish(_start(["unshare", "-n"], module, args), module, args, timeout)


def run_in_named_netns(
    names: Sequence[str], module: str, *args: str, timeout: float
) -> list[list[dict[str, Any]]]:
    """Run ``python -m module args NAME`` in each existing namespace ``NAME`` at once (``ip
    netns exec``); return each one's JSON lines, in the order of ``names``."""
    procs = [_start(["ip", "netns", "exec", name], module, (*args, name)) for name in names]
    return [_finish(p, module, args, timeout) for p in procs]


@contextmanager
def linked_namespaces(count: int = 2) -> Iterator[list[str]]:
    """``count`` network namespaces on one link (a bridge-less chain is enough for two: a veth
    pair), each with ``lo`` up and addresses ``10.77.0.<i+1>/24`` and ``fd77::<i+1>/64`` (plus
    the kernel's link-local one) on its end, IPv4 multicast routed onto the link. Deleted on
    exit, whatever happened."""
    if count != 2:
        raise ValueError("linked_namespaces makes two namespaces")
    tag = f"{os.getpid() % 100000}"
    names = [f"p2pmdns-{tag}-{i}" for i in range(count)]
    links = [f"mda{tag}", f"mdb{tag}"]
    try:
        for name in names:
            _ip("netns", "add", name)
        _ip(
            "link",
            "add",
            links[0],
            "netns",
            names[0],
            "type",
            "veth",
            "peer",
            "name",
            links[1],
            "netns",
            names[1],
        )
        for i, (name, link) in enumerate(zip(names, links, strict=True)):
            for cmd in (
                ["link", "set", "lo", "up"],
                ["addr", "add", f"10.77.0.{i + 1}/24", "dev", link],
                ["-6", "addr", "add", f"fd77::{i + 1}/64", "dev", link, "nodad"],
                ["link", "set", link, "up"],
                ["route", "add", "224.0.0.0/4", "dev", link],
            ):
                _ip("-n", name, *cmd)
        yield names
    finally:
        for name in names:
            subprocess.run(
                ["ip", "netns", "del", name], capture_output=True, timeout=10, check=False
            )


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _start(prefix: list[str], module: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    argv = [*prefix, sys.executable, "-m", module, *args]
    return subprocess.Popen(
        argv,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _finish(
    proc: subprocess.Popen[bytes], module: str, args: Sequence[str], timeout: float
) -> list[dict[str, Any]]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(
            f"{module} {args} ran past {timeout} s; stdout:\n{out.decode(errors='replace')}\n"
            f"stderr:\n{err.decode(errors='replace')[-4000:]}"
        ) from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.returncode != 0:
        raise AssertionError(
            f"{module} {args} exited with {proc.returncode}; stdout:\n"
            f"{out.decode(errors='replace')}\nstderr:\n{err.decode(errors='replace')[-4000:]}"
        )
    return [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
