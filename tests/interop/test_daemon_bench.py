"""The daemon benchmark (benchmarks/daemon.py) on a tiny upload: both paths move every byte
and report a rate, through each daemon of tests/interop/daemons.py."""

from __future__ import annotations

import json

import pytest

from benchmarks.daemon import main
from tests.interop.daemons import selected


@pytest.mark.parametrize("kind", selected())
def test_daemon_benchmark_smoke(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--daemon", kind, "--size", str(4 << 20), "--reps", "1", "--timeout", "120", "--json"])
    out = capsys.readouterr().out
    assert f"| client -> {kind} daemon -> remote | 3 |" in out
    samples = [line for line in out.splitlines() if line.startswith("{")]
    (raw,) = samples
    data = json.loads(raw)
    assert len(data["samples"]["direct"]) == len(data["samples"]["daemon"]) == 1
    assert all(x > 0 for xs in data["samples"].values() for x in xs)
    assert data["ratio"] > 0
