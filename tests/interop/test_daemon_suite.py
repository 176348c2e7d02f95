"""The official libp2p interop suite (@libp2p/interop 14.0.16) judging p2pstack's daemon, run by
``tests/interop/daemon_suite/runner.mjs`` under Node 22: ``mixed`` puts js-libp2p (in-process,
behind @libp2p/daemon-server) in the suite's ``js`` slot and ``p2pstack daemon`` in its ``go``
slot, as js-libp2p's own runner does with go's p2pd; ``self`` puts p2pstack in both slots.

CI runs a subset: in mixed mode connect, DHT, pubsub, relay and the echo matrix for Ed25519 keys;
in self mode the same without the echo matrix and with one of the (there identical) relay
blocks. The whole suite, in both modes, is the long lane
(docs/daemon.md has the commands and the counts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.interop.peers import HERE, JS_NODE, REPO

RUNNER = HERE / "daemon_suite" / "runner.mjs"
#: Tests the suite itself holds pending: transports no slot offers (it skips on
#: UnsupportedError) and gossipsub/hybrid blocks that are ``describe.skip`` upstream.
UPSTREAM_PENDING = (
    "connection.webtransport ",
    "connection.webrtc-direct ",
    "pubsub.gossipsub ",
    "pubsub.hybrid ",
)
#: The CI subset: every block but the echo matrix, and the echo matrix for Ed25519 keys.
CI_GREP = r"^(?!\S+ echo )|^ed25519/"
#: The self-mode CI subset: the 8 relay blocks are the same three p2pstack daemons there (the
#: slot names differ only), so one of them; no echo matrix (mixed mode's CI subset has it).
SELF_CI_GREP = r"^(?!\S+ to \S+ over relay )|^go to go over relay go "


def run_suite(
    tmp_path: Path, mode: str, suites: str, grep: str | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Run the runner; return mocha's JSON report and the reasons of the blocks held pending."""
    if not JS_NODE.exists():
        pytest.fail(f"{JS_NODE} missing: run tests/interop/setup.sh")
    output = tmp_path / f"{mode}.json"
    argv = [str(JS_NODE), str(RUNNER), "--mode", mode, "--suites", suites, "--output", str(output)]
    if grep is not None:
        argv += ["--grep", grep]
    env = dict(os.environ, P2PSTACK_PYTHON=sys.executable, PYTHONPATH=str(REPO))
    result = subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    if not output.exists():
        pytest.fail(f"no report (exit {result.returncode}): {result.stderr[-2000:]}")
    report = json.loads(output.read_text())
    reasons = json.loads(Path(f"{output}.pending.json").read_text())
    return report, reasons


def check_report(report: dict[str, Any], reasons: dict[str, str]) -> None:
    failures = [
        f"{t['fullTitle']}: {t['err'].get('message', '')[:300]}" for t in report["failures"]
    ]
    assert failures == []
    for test in report["pending"]:
        title = test["fullTitle"]
        ours = [d for d in reasons if title.startswith(f"{d} ")]
        assert title.startswith(UPSTREAM_PENDING) or ours, f"{title} pending without a reason"


def test_interop_suite_mixed_ci_subset(tmp_path: Path) -> None:
    report, reasons = run_suite(tmp_path, "mixed", "connect,streams,dht,pubsub,relay", CI_GREP)
    check_report(report, reasons)
    stats = report["stats"]
    # connect 3 (tcp), echo 18 (Ed25519: 3 channels x 2 muxer labels x 3 slot pairs), DHT 11,
    # floodsub 4, relay 16 (8 slot triples x connects / fails without a reservation).
    assert (stats["passes"], stats["failures"]) == (52, 0)
    # connect 6 (webtransport, webrtc-direct), pubsub 8 (gossipsub and hybrid: skipped
    # upstream).
    assert stats["pending"] == 14


def test_interop_suite_self_ci_subset(tmp_path: Path) -> None:
    report, reasons = run_suite(tmp_path, "self", "connect,dht,pubsub,relay", SELF_CI_GREP)
    check_report(report, reasons)
    stats = report["stats"]
    # connect 3, DHT 11, floodsub 4, relay 2 (one block); pending: connect 6 and pubsub 8
    # (upstream). The echo matrix and the other relay blocks against itself are the long lane's.
    assert (stats["passes"], stats["failures"], stats["pending"]) == (20, 0, 14)


@pytest.mark.long
@pytest.mark.parametrize("mode", ["mixed", "self"])
def test_interop_suite_whole(tmp_path: Path, mode: str) -> None:
    report, reasons = run_suite(tmp_path, mode, "connect,streams,dht,pubsub,relay")
    check_report(report, reasons)
    # 88 in both modes (js against itself passes as many): 14 pending upstream.
    assert (report["stats"]["passes"], report["stats"]["pending"]) == (88, 14)


def test_chai_stand_in_calls_property_assertions() -> None:
    """The aegir/chai stand-in's ``.to.exist()`` / ``.to.eventually.be.ok()`` pass and fail as
    they should (tests/interop/daemon_suite/chai_check.mjs checks both ways)."""
    if not JS_NODE.exists():
        pytest.fail(f"{JS_NODE} missing: run tests/interop/setup.sh")
    check = HERE / "daemon_suite" / "chai_check.mjs"
    result = subprocess.run(
        [str(JS_NODE), str(check)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout.strip()) == (0, "chai shim ok"), result.stderr
