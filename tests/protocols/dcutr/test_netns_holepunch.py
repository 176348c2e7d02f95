"""Real hole punches between two p2pstack nodes, each behind its own nftables NAT router in
network namespaces; DCUtR runs over a limited connection spliced by a public node."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.protocols.dcutr.natnet import NatNet, available, nat_network

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(not available(), reason="needs root, ip and nft")


class Proc:
    """A child in a namespace whose stdout lines are read by a thread."""

    def __init__(self, netns: str, *argv: str, exe: str = sys.executable) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.popen = subprocess.Popen(
            ["ip", "netns", "exec", netns, exe, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line)

    def wait_for(self, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line.strip() == event:
                return {}
            if line.startswith("{"):
                obj: dict[str, Any] = json.loads(line)
                if obj.get("event") == event:
                    return obj
        self.stop()
        assert self.popen.stderr is not None
        raise AssertionError(f"no {event!r} within {timeout} s: {self.popen.stderr.read()[-3000:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.popen.wait(timeout=10)


def _stop_all(procs: list[Proc]) -> None:
    for proc in procs:
        proc.stop()


@contextmanager
def processes() -> Iterator[list[Proc]]:
    procs: list[Proc] = []
    with ExitStack() as stack:
        stack.callback(_stop_all, procs)
        yield procs


def punch(net: NatNet, kind: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Run splicer, B and A; return B's and A's outcome, and B's ping report (or {})."""
    peer = "tests.protocols.dcutr.netns_peer"
    with processes() as procs:
        splicer = Proc(net.inet, "-m", "tests.protocols.dcutr.splice", net.splicer_ip, "7000")
        procs.append(splicer)
        splicer.wait_for("ready", 20)
        b = Proc(net.host_b, "-m", peer, "listen", net.splicer_ip, kind)
        procs.append(b)
        ready = b.wait_for("ready", 30)
        a = Proc(net.host_a, "-m", peer, "dial", net.splicer_ip, kind, ready["peer_id"])
        procs.append(a)
        out_b = b.wait_for("holepunch", 45)
        out_a = a.wait_for("holepunch", 30)
        ping = b.wait_for("ping", 30) if out_b["outcome"] == "direct" else {}
        return out_b, out_a, ping


@pytest.mark.parametrize("kind", ["tcp", "quic"])
def test_hole_punch_through_two_nats(kind: str) -> None:
    with nat_network() as net:
        out_b, out_a, ping = punch(net, kind)
    assert out_b["role"] == "initiator" and out_a["role"] == "responder"
    assert out_b["outcome"] == "direct", out_b
    assert out_a["outcome"] == "direct", out_a
    assert out_b["transport"] == ("tcp" if kind == "tcp" else "quic-v1")
    assert out_b["attempts"] <= 3 and out_b["rtt_ms"] > 0
    # Each sees the other at its NAT's public address (port 4001 kept by masquerade): the
    # connection went through both NATs, not through the splicer.
    proto = "tcp" if kind == "tcp" else "udp"
    assert out_b["remote_addr"].startswith(f"/ip4/{net.nat_a_wan}/{proto}/4001")
    assert out_a["remote_addr"].startswith(f"/ip4/{net.nat_b_wan}/{proto}/4001")
    if kind == "tcp":
        # A TCP simultaneous open: both connect() calls succeeded, no listener accepted.
        assert out_a["direction"] == out_b["direction"] == "outbound"
    else:
        # A dialed; B punched and accepted A's QUIC connection on its listen socket.
        assert (out_a["direction"], out_b["direction"]) == ("outbound", "inbound")
    # The relayed connection closed; pings run over the direct one.
    assert ping["limited_closed"] is True
    assert len(ping["rtts_ms"]) == 3
    assert ping["connections"] and all(limited is False for _, limited in ping["connections"])


@pytest.mark.parametrize(
    ("kind", "sym_a", "sym_b"),
    [
        ("tcp", True, True),
        pytest.param("quic", True, True, marks=pytest.mark.long),
        pytest.param("tcp", False, True, marks=pytest.mark.long),
        pytest.param("quic", True, False, marks=pytest.mark.long),
    ],
    ids=["tcp-both", "quic-both", "tcp-b-only", "quic-a-only"],
)
def test_symmetric_nats_fail_within_the_attempt_limit(kind: str, sym_a: bool, sym_b: bool) -> None:
    with nat_network(symmetric=sym_a, symmetric_b=sym_b) as net:
        started = time.monotonic()
        out_b, out_a, _ = punch(net, kind)
        took = time.monotonic() - started
    assert out_b["outcome"] == "failed"
    assert out_b["attempts"] == 3
    assert "3 attempts" in out_b["reason"]
    assert out_a["outcome"] == "failed"
    assert out_b["remote_addr"] is None
    assert took < 45
