"""Plots of the ``membership`` workload: the CDF of first-suspicion and dead-declaration times
of the crashed members, and the members each live member sees over time (min, median, max over
members, next to the true live count)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from p2pstack.roots.scenarios._membership_run import MembershipRun
from p2pstack.roots.scenarios._plots import new_plot, save_plot, sensible_y

__all__ = ["plot_detection", "plot_views"]


def _arm(lifeguard: bool) -> str:
    return "Lifeguard on" if lifeguard else "Lifeguard off"


def plot_detection(runs: Mapping[bool, MembershipRun], path: Path, title: str) -> Path:
    """CDFs of seconds from the crash to the first suspicion and to the first dead declaration.

    Args:
        runs: Lifeguard on/off -> run.
        path: the PNG to write.
        title: the plot title.

    Returns:
        ``path``.
    """
    fig, ax = new_plot()
    for lifeguard, run in runs.items():
        for label, times in (
            ("first suspicion", run.detection_times()),
            ("declared dead", run.dead_times()),
        ):
            if times:
                ys = [(k + 1) / len(times) for k in range(len(times))]
                ax.step(times, ys, where="post", label=f"{label} ({_arm(lifeguard)})")
    sensible_y(ax, [1.0], min_span=1.0)
    ax.set_ylabel("share of crashed members")
    path = save_plot(fig, ax, path, title)
    return path


def plot_views(runs: Mapping[bool, MembershipRun], path: Path, title: str) -> Path:
    """Members (alive or suspect, itself included) each live member counts over time.

    Args:
        runs: Lifeguard on/off -> run.
        path: the PNG to write.
        title: the plot title.

    Returns:
        ``path``.
    """
    fig, ax = new_plot()
    values: list[float] = []
    for lifeguard, run in runs.items():
        ts = [v.t for v in run.views]
        for label, ys, style in (
            ("max", [v.view_max for v in run.views], ":"),
            ("median", [v.view_p50 for v in run.views], "-"),
            ("min", [v.view_min for v in run.views], "--"),
        ):
            ax.plot(ts, ys, linestyle=style, label=f"{label} over members ({_arm(lifeguard)})")
            values += ys
    first = next(iter(runs.values()))
    ax.plot(
        [v.t for v in first.views],
        [v.truth for v in first.views],
        color="black",
        linewidth=0.8,
        label="live members (truth)",
    )
    sensible_y(ax, values, min_span=1.0, integer=True)
    # Zoomed on the dip: the counts stay near N, a 5% drop would vanish on a 0..N axis.
    low, high = min(values, default=0), max(values, default=1)
    ax.set_ylim(low - 0.05 * (high - low) - 1, high + 0.05 * (high - low) + 1)
    ax.set_ylabel("members seen alive or suspect")
    return save_plot(fig, ax, path, title)
