"""The pubsub benchmark's js-libp2p and py-libp2p peers (benchmarks/pubsub_js.mjs,
benchmarks/pubsub_py.py) speak its contract: a tiny run of each delivers every message (py at
its reduced counts) and reports a rate and a latency."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.pubsub import SLOW
from tests.scale.test_pubsub_bench import check_kind, run_tiny


def test_pubsub_benchmark_runs_js_and_py(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = run_tiny("js,py", tmp_path, capsys)
    samples = raw["samples"]
    assert isinstance(samples, dict)
    check_kind(samples, "js", 20, 5)
    check_kind(samples, "py", 20 // SLOW["py"], 1, lossy=True)
