"""``p2pstack sim SCENARIO [--seed N] [--out DIR]``: run a simulation scenario with a progress
bar, write ``trace.jsonl``, ``metrics.json``, ``summary.txt`` and PNG plots, print the trace hash
(docs/simulation.md). Ctrl-C stops the run early; what it measured is still written."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

__all__ = ["add_sim_arguments", "run_sim"]


def add_sim_arguments(sim: argparse.ArgumentParser) -> None:
    """Add the ``sim`` command's arguments to its subparser.

    Args:
        sim: the subparser.
    """
    sim.add_argument("scenario", metavar="SCENARIO", help="scenario file (examples/sim/*.toml)")
    sim.add_argument("--seed", type=int, default=None, help="root seed (default: the file's)")
    sim.add_argument("--out", metavar="DIR", default=None, help="output directory")
    sim.add_argument(
        "--plaintext",
        action="store_true",
        help="use the INSECURE plaintext channel instead of Noise (faster; labelled in output)",
    )
    sim.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    sim.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


class _CtrlC:
    """Ctrl-C as a flag the simulation checks each time its virtual clock advances.

    asyncio's own handler cancels the main task instead, and a cancellation that arrives while a
    task group is starting a task can be absorbed, so the run went on to its end (minutes for a
    large scenario). Raising ``KeyboardInterrupt`` from the clock callback, once, reaches
    ``run_scenario``, which keeps what was measured. A second Ctrl-C interrupts at once.
    """

    def __init__(self) -> None:
        self.pending = False
        self.raised = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.pending:
            raise KeyboardInterrupt
        self.pending = True

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` once after the first Ctrl-C."""
        if self.pending and not self.raised:
            self.raised = True
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[_CtrlC]:
        """Handle SIGINT with this object while the block runs (main thread only)."""
        previous = signal.signal(signal.SIGINT, self._handle)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


def _ensure_hash_seed() -> None:
    """Re-run this command with ``PYTHONHASHSEED=0`` when it is unset: str/bytes hashing is
    randomised per process otherwise, and any set iteration order would differ between runs."""
    if "PYTHONHASHSEED" in os.environ or "sim" not in sys.argv[1:]:
        return
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    os.execve(sys.executable, [sys.executable, "-m", "p2pstack.roots.cli", *sys.argv[1:]], env)


def run_sim(args: argparse.Namespace) -> int:
    """Run the ``sim`` command.

    Args:
        args: ``scenario``, ``seed``, ``out``, ``plaintext``, ``no_plots``, ``quiet``.

    Returns:
        0, or 130 when interrupted (the partial outputs are written).

    Raises:
        ScenarioError: the scenario file is invalid.
        SimulationDeadlock: the simulation deadlocked.
        OSError: the scenario cannot be read or the outputs written.
    """
    _ensure_hash_seed()
    import attrs
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from p2pstack.roots.cli._malloc import tune_allocator
    from p2pstack.roots.scenarios import load_scenario, run_scenario
    from p2pstack.roots.scenarios._report import summary_rows, write_plots, write_summary

    tune_allocator()
    scenario = load_scenario(args.scenario)
    if args.plaintext:
        scenario = attrs.evolve(scenario, security="plaintext")
    seed = scenario.seed if args.seed is None else args.seed
    out_dir = Path(args.out or f"sim-{scenario.name}-{seed}")
    out_dir.mkdir(parents=True, exist_ok=True)
    console = Console()
    if scenario.security == "plaintext":
        console.print("[bold yellow]security: plaintext (INSECURE, for fast simulation only)")
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("virtual {task.completed:.0f}/{task.total:.0f} s"),
        TimeElapsedColumn(),
        console=console,
        auto_refresh=False,
        disable=args.quiet,
    )
    task = progress.add_task(scenario.name, total=scenario.duration)
    last = [0.0]

    ctrl_c = _CtrlC()

    def on_advance(now: float) -> None:
        ctrl_c.check()
        wall = time.monotonic()  # display throttling only; never reaches the trace
        if wall - last[0] >= 0.1:
            last[0] = wall
            progress.update(task, completed=min(now, scenario.duration))
            progress.refresh()

    trace_path = out_dir / "trace.jsonl"
    with progress, ctrl_c.installed(), trace_path.open("w", encoding="utf-8") as trace_file:
        result = run_scenario(scenario, seed=seed, trace_file=trace_file, on_advance=on_advance)
        progress.update(task, completed=min(result.virtual_seconds, scenario.duration))
        progress.refresh()
    write_summary(result, out_dir)
    if not args.no_plots:
        write_plots(result, out_dir)
    table = Table(title=f"simulation summary ({out_dir})", show_header=False)
    for key, value in summary_rows(result):
        table.add_row(key, value)
    console.print(table)
    print(f"trace sha256 {result.trace_hash}", flush=True)
    if result.interrupted:
        print(
            f"p2pstack: interrupted at virtual {result.virtual_seconds:.1f} s of "
            f"{scenario.duration:g} s; partial results written to {out_dir}",
            file=sys.stderr,
            flush=True,
        )
        return 130
    return 0
