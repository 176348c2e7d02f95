"""Start-up time of the ``p2pstack`` command line: ``p2pstack --help`` and ``p2pstack id``
(issue 8's measure: 0.35 s or less, median of 10 runs), next to a bare ``python -c pass`` for
the interpreter's own share.

Each repetition runs every command once, in turn (interleaved), so that a change in the
machine's load hits all of them alike. Reports the median wall time and the median CPU time
(user + system of the child, from ``getrusage``): on a loaded machine the wall time mostly
measures the wait for a core, the CPU time what the command itself costs.

Not part of the test suite. Usage::

    python -m benchmarks.startup [--reps N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: name → argv; the console script next to this interpreter, as an installed user runs it.
_BIN = Path(sys.executable).parent


def commands() -> dict[str, list[str]]:
    """The commands measured.

    Returns:
        Their names and argument vectors.
    """
    script = str(_BIN / "p2pstack")
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "p2pstack --help": [script, "--help"],
        "p2pstack id": [script, "id"],
    }


def run_once(argv: list[str]) -> tuple[float, float]:
    """Run one command to completion, its output discarded.

    Args:
        argv: the command.

    Returns:
        (wall seconds, CPU seconds: user + system of the child).

    Raises:
        subprocess.CalledProcessError: the command failed.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=os.environ.copy())
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(reps: int) -> dict[str, dict[str, float]]:
    """Run every command ``reps`` times, interleaved, after one unmeasured warm-up round
    (which fills the page cache and writes the bytecode caches).

    Args:
        reps: repetitions per command.

    Returns:
        Per command: median and max wall seconds, median CPU seconds.
    """
    cmds = commands()
    for argv in cmds.values():
        run_once(argv)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
    for _ in range(reps):
        for name, argv in cmds.items():
            samples[name].append(run_once(argv))
    return {
        name: {
            "wall_median_s": statistics.median(wall for wall, _ in runs),
            "wall_max_s": max(wall for wall, _ in runs),
            "cpu_median_s": statistics.median(cpu for _, cpu in runs),
        }
        for name, runs in samples.items()
    }


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10, help="runs per command (default 10)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    results = measure(args.reps)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'command':<18} {'wall median':>12} {'wall max':>10} {'CPU median':>11}")
    for name, r in results.items():
        print(
            f"{name:<18} {r['wall_median_s']:>11.3f}s {r['wall_max_s']:>9.3f}s"
            f" {r['cpu_median_s']:>10.3f}s"
        )


if __name__ == "__main__":
    main()
