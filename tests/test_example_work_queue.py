"""examples/work_queue.py: every task completes although a worker is killed mid-run (its
tasks are re-routed), spread by gossiped load; ``--help`` and bad options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "work_queue.py"
TIMEOUT = 60.0


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        check=False,
    )


def test_all_tasks_complete_despite_a_killed_worker() -> None:
    result = _run("--json", "--workers", "4", "--tasks", "60", "--parallel", "12", "--kill", "1")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["completed"] == summary["tasks"] == 60
    assert summary["killed"] == "worker-1"
    assert summary["rerouted"] >= 1  # its queued tasks failed over to the others
    assert summary["killed_state"] in ("left", "dead", "suspect")
    per_worker = summary["per_worker"]
    assert sum(per_worker.values()) == 60
    others = [per_worker.get(f"worker-{i}", 0) for i in (0, 2, 3)]
    assert min(others) > 0, summary  # the survivors shared the work
    assert per_worker.get("worker-1", 0) < max(others), summary


def test_help_and_bad_options() -> None:
    result = _run("--help")
    assert result.returncode == 0 and "--workers" in result.stdout
    result = _run("--workers", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--workers >= 2" in result.stderr
