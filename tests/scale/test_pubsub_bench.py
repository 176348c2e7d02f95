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
    samples: dict[str, list[dict[str, object]]],
    kind: str,
    small: int,
    large: int,
    *,
    lossy: bool = False,
) -> None:
    """Every message of ``kind``'s runs arrived once, with a rate and a latency. ``lossy``
    (py-libp2p, which drops messages beyond its 32-entry queues): at least one of the 1 KiB and
    one of the latency messages arrived, none twice, and the 64 KiB run finished."""
    assert f"{kind}|errors" not in samples, samples.get(f"{kind}|errors")
    (line,) = samples[f"{kind}|line"]
    runs = [(samples[f"{kind}|1024"][0], small), (samples[f"{kind}|65536"][0], large)]
    for run, count, least in [(*runs[0], 1), (*runs[1], 0), (line, 5, 1)]:
        assert run["count"] == count and run["duplicates"] == 0, run
        received = run["received"]
        assert isinstance(received, int)
        assert (least <= received <= count) if lossy else received == count, run
    for run, _ in runs:
        assert not run["stalled"], run
    small_run = runs[0][0]
    assert isinstance(small_run["per_second"], float) and small_run["per_second"] > 0
    assert isinstance(line["p50_ms"], float) and line["p50_ms"] > 0


def test_pubsub_benchmark_runs_p2pstack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = run_tiny("p2pstack", tmp_path, capsys)
    samples = raw["samples"]
    assert isinstance(samples, dict)
    check_kind(samples, "p2pstack", 20, 5)
    assert set(samples) == {"p2pstack|1024", "p2pstack|65536", "p2pstack|line"}
