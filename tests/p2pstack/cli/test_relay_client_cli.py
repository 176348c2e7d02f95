"""``p2pstack node --relay MA`` and client commands dialing ``/p2p-circuit`` addresses, with a
small test relay in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from p2pstack.identity import Identity
from tests.p2pstack.cli.runner import assert_one_line_error, json_node, run_cli

ROOT = Path(__file__).resolve().parents[3]


@contextmanager
def mini_relay() -> Iterator[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.protocols.relay.mini_relay"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded by the test's timeout (the relay starts fast)
        yield str(json.loads(line)["addr"])
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_node_listens_through_relay_and_ping_reaches_it() -> None:
    with mini_relay() as relay, json_node("--relay", relay) as (node, first):
        assert first["event"] == "listening"
        peer_id = first["peer_id"]
        circuit = [a for a in first["addrs"] if "/p2p-circuit/" in a]  # type: ignore[attr-defined]  # a JSON list
        assert circuit == [f"{relay}/p2p-circuit/p2p/{peer_id}"]
        made = node.wait_event(lambda e: e["event"] == "relay:reservation")
        assert made["state"] == "made" and made["relay"] == relay.rsplit("/", 1)[1]
        result = run_cli("ping", circuit[0], "--count", "2", "--json")
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert [line["seq"] for line in lines if line.get("event") == "ping"] == [0, 1]
        identify = run_cli("identify", circuit[0], "--json")
        assert identify.returncode == 0, identify.stderr
        assert str(peer_id) in identify.stdout
        # perf does not run over a relay's limited connection: a clear one-line refusal.
        perf = run_cli("perf", circuit[0], "--upload", "1000", "--download", "1000")
        assert_one_line_error(perf, "limited (relayed)")


def test_dial_through_relay_without_reservation_names_no_reservation() -> None:
    nobody = Identity.generate().peer_id
    with mini_relay() as relay:
        result = run_cli("ping", f"{relay}/p2p-circuit/p2p/{nobody}", "--timeout", "10")
    assert_one_line_error(result, "NO_RESERVATION")


def test_bad_relay_option_is_one_line_error() -> None:
    result = run_cli("node", "--relay", "/ip4/127.0.0.1/tcp/1")
    assert_one_line_error(result, "/p2p/<peer-id>")
