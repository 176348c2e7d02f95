"""Plots of the ``pubsub_sybil`` workload: the scores honest nodes give honest and Sybil peers
over time, the honest nodes' mesh make-up over time (scoring on and off), and the share of
honest nodes each message reached within the deadline, by publish time."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from p2pstack.roots.scenarios._plots import new_plot, save_plot, sensible_y
from p2pstack.roots.scenarios._pubsub_sybil_run import SybilRun

__all__ = ["plot_delivery", "plot_mesh", "plot_scores"]

_LABELS = {"on": "scoring on", "off": "scoring off"}


def plot_scores(run: SybilRun, path: Path, title: str) -> Path:
    """Mean score honest nodes give each kind of peer (honest, each Sybil role) over time.

    Args:
        run: the run with scoring.
        path: the PNG to write.
        title: the plot title.

    Returns:
        ``path``.
    """
    fig, ax = new_plot()
    kinds = sorted({k for s in run.scores for k in s.means})
    values: list[float] = []
    for kind in kinds:
        points = [(s.t, s.means[kind]) for s in run.scores if kind in s.means]
        label = "honest peers" if kind == "honest" else f"Sybils ({kind})"
        ax.plot([t for t, _ in points], [v for _, v in points], marker=".", label=label)
        values += [v for _, v in points]
    ax.axvline(run.cfg.flash_at, color="grey", linestyle=":", label="covert flash")
    ax.axhline(0.0, color="black", linewidth=0.5)
    sensible_y(ax, values, min_span=1.0)
    ax.set_yscale("symlog", linthresh=10.0)
    ax.set_ylabel("mean score given by honest nodes (symlog)")
    return save_plot(fig, ax, path, title)


def plot_mesh(runs: Mapping[str, SybilRun], path: Path, title: str) -> Path:
    """Honest and Sybil peers per honest node's mesh over time, scoring on and off.

    Args:
        runs: ``"on"`` / ``"off"`` -> run.
        path: the PNG to write.
        title: the plot title.

    Returns:
        ``path``.
    """
    fig, ax = new_plot()
    values: list[float] = []
    flash = 0.0
    for key, run in runs.items():
        style = "-" if key == "on" else "--"
        ts = [s.t for s in run.mesh]
        honest = [s.honest_mean for s in run.mesh]
        sybil = [s.sybil_mean for s in run.mesh]
        ax.plot(ts, honest, style, color="tab:green", label=f"honest peers, {_LABELS[key]}")
        ax.plot(ts, sybil, style, color="tab:red", label=f"Sybil peers, {_LABELS[key]}")
        values += honest + sybil
        flash = run.cfg.flash_at
    ax.axhline(4, color="grey", linewidth=0.5, label="D_lo")
    ax.axvline(flash, color="grey", linestyle=":", label="covert flash")
    sensible_y(ax, values, min_span=6.0)
    ax.set_ylabel("mesh peers per honest node (mean)")
    return save_plot(fig, ax, path, title)


def plot_delivery(runs: Mapping[str, SybilRun], path: Path, title: str) -> Path:
    """Share of honest nodes each message reached within the deadline, by publish time.

    Args:
        runs: ``"on"`` / ``"off"`` -> run.
        path: the PNG to write.
        title: the plot title.

    Returns:
        ``path``.
    """
    fig, ax = new_plot()
    flash = 0.0
    for key, run in runs.items():
        cfg = run.cfg
        points = sorted(
            (t, sum(1 for d in run.delays[m] if d <= cfg.deadline) / (cfg.honest - 1))
            for m, (t, _) in run.published.items()
        )
        ax.plot(
            [t for t, _ in points],
            [100 * v for _, v in points],
            "." if key == "on" else "x",
            markersize=3,
            label=_LABELS[key],
        )
        flash = cfg.flash_at
    ax.axvline(flash, color="grey", linestyle=":", label="covert flash")
    ax.set_ylim(0, 105)
    ax.set_ylabel("honest nodes reached within the deadline (%)")
    return save_plot(fig, ax, path, title)
