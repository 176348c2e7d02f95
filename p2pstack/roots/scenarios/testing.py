"""Helpers for tests that run simulations: a failure names its seed and the exact command that
replays it (same seed, same trace hash)."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

from p2pstack.roots.scenarios._model import Scenario, load_scenario
from p2pstack.roots.scenarios._runner import SimResult, run_scenario

__all__ = ["SimulationFailed", "replay_command", "run_checked"]


class SimulationFailed(AssertionError):
    """A check on a simulated run failed; the message says how to replay it."""


def replay_command(scenario_path: str | Path | None, seed: int, test_id: str | None = None) -> str:
    """The command that reruns a simulation: ``p2pstack sim FILE --seed N`` for a scenario
    file, else the pytest node id with ``P2PSTACK_SIM_SEED=N``."""
    if scenario_path is not None:
        return f"PYTHONHASHSEED=0 p2pstack sim {shlex.quote(str(scenario_path))} --seed {seed}"
    target = shlex.quote(test_id) if test_id else "<test id>"
    return f"P2PSTACK_SIM_SEED={seed} PYTHONHASHSEED=0 pytest {target}"


def run_checked(
    scenario: Scenario | str | Path,
    *,
    seed: int,
    check: Callable[[SimResult], None],
    test_id: str | None = None,
    keep_trace: int = 0,
) -> SimResult:
    """Run a scenario and apply ``check(result)``; if it raises ``AssertionError``, raise
    ``SimulationFailed`` naming the seed, the trace hash and the replay command.

    Args:
        scenario: a ``Scenario`` or the path of a scenario file.
        seed: the root seed.
        check: a callable taking the ``SimResult`` and asserting on it.
        test_id: the pytest node id, for the replay hint of in-code scenarios.
        keep_trace: trace lines to keep in the result.

    Returns:
        The result, when the check passed.

    Raises:
        SimulationFailed: the check failed.
    """
    path = None if isinstance(scenario, Scenario) else Path(scenario)
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    result = run_scenario(sc, seed=seed, keep_trace=keep_trace)
    try:
        check(result)
    except AssertionError as exc:
        raise SimulationFailed(
            f"{exc}\nsimulation seed {seed}, trace sha256 {result.trace_hash}\n"
            f"replay with: {replay_command(path, seed, test_id)}"
        ) from exc
    return result
