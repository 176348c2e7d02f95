"""The short CI fuzz run: every target under atheris for a couple of seconds, in subprocesses
(atheris owns the process it runs in). The longer run is ``make fuzz`` / ``python -m fuzz``."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz._registry import TARGETS

ROOT = Path(__file__).resolve().parents[2]
#: Seconds each target is fuzzed in CI; 22 targets, 2 at a time, stay around a minute on 2 cores.
CI_SECONDS = 2

if importlib.util.find_spec("atheris") is None and sys.platform != "linux":
    pytest.skip("atheris has wheels for Linux only", allow_module_level=True)


def _fuzz(*args: str, work: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "fuzz", *args, "--work-dir", str(work)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_short_run_of_every_target_finds_no_crash(tmp_path: Path) -> None:
    result = _fuzz("--seconds", str(CI_SECONDS), "--jobs", "2", work=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(TARGETS)} targets" in result.stdout
    assert "crashed: none" in result.stdout
    for name in TARGETS:
        line = next(line for line in result.stdout.splitlines() if line.startswith(name + " "))
        runs = int(line.split("runs=")[1].split()[0])
        assert runs > 0, line


def test_runner_reports_a_crash(tmp_path: Path) -> None:
    result = _fuzz("selftest_crash", "--runs", "200000", work=tmp_path, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "CRASH" in result.stdout and "crashed: selftest_crash" in result.stdout
    crashes = list((tmp_path / "artifacts").glob("selftest_crash-*"))
    assert crashes and all(path.read_bytes().startswith(b"!") for path in crashes)
