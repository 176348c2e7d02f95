"""``python -m fuzz [TARGET ...] (--seconds N | --runs N)``: fuzz the wire parsers with atheris.

Each target runs in its own subprocess (``fuzz._worker``), ``--jobs`` at a time, starting from
its checked-in seeds plus a working corpus that persists between runs (``--work-dir``). A crash
leaves its input in ``<work-dir>/artifacts/`` and makes the exit status 1. ``--replay`` runs the
seeds and the working corpus through every target without atheris (a quick check after a fix).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from fuzz._registry import SELF_TESTS, TARGETS, TargetSpec

__all__ = ["Outcome", "main", "run_target"]

_DEFAULT_WORK_DIR = Path(tempfile.gettempdir()) / "p2pstack-fuzz"
_DONE = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+)")
_STAT = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+)")


@dataclass
class Outcome:
    """How one target's run ended.

    Attributes:
        name: the target.
        returncode: the worker's exit status (0: no crash).
        runs: inputs executed (from libFuzzer's last status line).
        coverage: coverage counters reached.
        seconds: wall time of the worker.
        log: the worker's log file.
        crashes: crash inputs it left in the artifacts directory.
    """

    name: str
    returncode: int
    runs: int
    coverage: int
    seconds: float
    log: Path
    crashes: list[Path]


def _worker_command(spec: TargetSpec, work: Path, artifacts: Path, budget: list[str]) -> list[str]:
    corpus = work / "corpus" / spec.name
    corpus.mkdir(parents=True, exist_ok=True)
    dirs = [str(corpus)] + ([str(spec.seed_dir)] if spec.seed_dir.is_dir() else [])
    return [
        sys.executable,
        "-m",
        "fuzz._worker",
        spec.name,
        *dirs,
        *budget,
        f"-max_len={spec.max_len}",
        f"-artifact_prefix={artifacts}/{spec.name}-",
        "-timeout=20",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
    ]


def run_target(spec: TargetSpec, work: Path, budget: list[str]) -> subprocess.Popen[bytes]:
    """Start the worker of ``spec``; its output goes to ``<work>/logs/<name>.log``.

    Args:
        spec: the target.
        work: the working directory (corpus, logs, artifacts).
        budget: libFuzzer's ``-max_total_time=`` or ``-runs=`` argument.

    Returns:
        The running worker.
    """
    artifacts = work / "artifacts"
    logs = work / "logs"
    artifacts.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    log = (logs / f"{spec.name}.log").open("wb")
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    with log:
        return subprocess.Popen(
            _worker_command(spec, work, artifacts, budget),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=env,
        )


def _outcome(
    spec: TargetSpec, proc: subprocess.Popen[bytes], work: Path, started: float
) -> Outcome:
    log = work / "logs" / f"{spec.name}.log"
    text = log.read_text(errors="replace")
    stats = _DONE.findall(text) or _STAT.findall(text)
    runs, coverage = (int(stats[-1][0]), int(stats[-1][1])) if stats else (0, 0)
    # Artifacts of earlier runs stay in the directory: report only this run's.
    since = time.time() - (time.monotonic() - started) - 1
    crashes = [
        path
        for path in sorted((work / "artifacts").glob(f"{spec.name}-*"))
        if path.stat().st_mtime >= since
    ]
    return Outcome(
        spec.name, proc.returncode or 0, runs, coverage, time.monotonic() - started, log, crashes
    )


def _run_one(spec: TargetSpec, work: Path, budget: list[str]) -> Outcome:
    started = time.monotonic()
    proc = run_target(spec, work, budget)
    proc.wait()
    return _outcome(spec, proc, work, started)


def _run_all(specs: list[TargetSpec], work: Path, budget: list[str], jobs: int) -> list[Outcome]:
    # One thread per running worker: each waits for its subprocess, so a target that crashes
    # early frees its slot at once.
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_run_one, spec, work, budget) for spec in specs]
        for future in as_completed(futures):
            outcome = future.result()
            outcomes.append(outcome)
            _report(outcome)
    return outcomes


def _report(outcome: Outcome) -> None:
    status = "ok" if outcome.returncode == 0 else f"CRASH (exit {outcome.returncode})"
    print(
        f"{outcome.name:16} {status:18} runs={outcome.runs:<9} cov={outcome.coverage:<5} "
        f"{outcome.seconds:6.1f} s",
        flush=True,
    )
    if outcome.returncode:
        tail = outcome.log.read_text(errors="replace").splitlines()[-40:]
        print("\n".join(f"    {line}" for line in tail))
        for crash in outcome.crashes:
            print(f"    crash input: {crash} = {crash.read_bytes()!r}")


def replay(specs: list[TargetSpec], work: Path) -> int:
    """Run every seed and working-corpus input through its target in this process.

    Returns:
        The number of inputs that crashed (each is printed).
    """
    from fuzz._registry import load

    failures = 0
    for spec in specs:
        target = load(spec.name)
        files = [
            p
            for d in (spec.seed_dir, work / "corpus" / spec.name)
            if d.is_dir()
            for p in sorted(d.iterdir())
        ]
        for path in files:
            try:
                target(path.read_bytes())
            except Exception as exc:  # a crash: report it and go on with the others
                failures += 1
                print(f"{spec.name}: {path}: {exc!r}")
        print(f"{spec.name:16} replayed {len(files)} inputs")
    return failures


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("targets", nargs="*", help="targets to run (default: all)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=int, help="time budget per target (default 10)")
    budget.add_argument("--runs", type=int, help="inputs to execute per target")
    parser.add_argument("--jobs", type=int, default=2, help="targets fuzzed at once (default 2)")
    parser.add_argument("--work-dir", type=Path, default=_DEFAULT_WORK_DIR)
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument("--replay", action="store_true", help="replay corpora without atheris")
    parser.add_argument("--write-seeds", action="store_true", help="regenerate fuzz/corpus")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (1 if any target crashed)."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.list:
        for spec in TARGETS.values():
            print(f"{spec.name:16} {spec.summary}")
        return 0
    if args.write_seeds:
        from fuzz._seeds import write_seeds

        print("\n".join(write_seeds()))
        return 0
    known = {**TARGETS, **SELF_TESTS}
    unknown = [name for name in args.targets if name not in known]
    if unknown:
        print(f"unknown targets: {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    specs = [known[name] for name in args.targets] or list(TARGETS.values())
    if args.replay:
        return 1 if replay(specs, args.work_dir) else 0
    if importlib.util.find_spec("atheris") is None:
        print("atheris is not installed: pip install atheris (or use --replay)", file=sys.stderr)
        return 2
    budget = (
        [f"-runs={args.runs}"]
        if args.runs is not None
        else [f"-max_total_time={args.seconds or 10}"]
    )
    outcomes = _run_all(specs, args.work_dir, budget, max(1, args.jobs))
    crashed = [o.name for o in outcomes if o.returncode]
    runs = sum(o.runs for o in outcomes)
    print(f"{len(outcomes)} targets, {runs} runs, crashed: {', '.join(crashed) or 'none'}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
