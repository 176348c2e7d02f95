"""The pubsub benchmark (``python -m benchmarks pubsub``) runs end to end at a tiny size with
p2pstack peers only (each node its own OS process; about 10 s): every message arrives, and the
report and raw samples are written. The js and py peers are run by
tests/interop/test_pubsub_bench.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.pubsub import main

TINY = ["--reps", "1", "--small", "20", "--large", "5", "--window", "8"]
TINY += ["--latency-messages", "5", "--interval", "20"]


def run_tiny(kinds: str, out: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    """Run the benchmark for ``kinds``; its raw samples (and the report is checked to exist)."""
    main(["--kinds", kinds, *TINY, "--out", str(out)])
    printed = capsys.readouterr().out
    assert "msgs/s vs py" in printed
    assert (out / "pubsub.md").read_text().startswith("gossipsub, one publisher")
    (raw_path,) = out.glob("pubsub-*.json")
    raw: dict[str, object] = json.loads(raw_path.read_text())
    return raw


def check_kind(
    samples: dict[str, list[dict[str, object]]], kind: str, small: int, large: int
) -> None:
    """Every message of ``kind``'s runs arrived once, with a rate and a latency."""
    assert f"{kind}|errors" not in samples, samples.get(f"{kind}|errors")
    for size, count in (("1024", small), ("65536", large)):
        (run,) = samples[f"{kind}|{size}"]
        assert run["received"] == count and run["duplicates"] == 0, run
        assert not run["stalled"]
        assert isinstance(run["per_second"], float) and run["per_second"] > 0
    (line,) = samples[f"{kind}|line"]
    assert line["received"] == 5 and line["duplicates"] == 0, line
    assert isinstance(line["p50_ms"], float) and line["p50_ms"] > 0


def test_pubsub_benchmark_runs_p2pstack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = run_tiny("p2pstack", tmp_path, capsys)
    samples = raw["samples"]
    assert isinstance(samples, dict)
    check_kind(samples, "p2pstack", 20, 5)
    assert set(samples) == {"p2pstack|1024", "p2pstack|65536", "p2pstack|line"}
