"""Outputs of a simulated run: the summary table (text and JSON) and PNG plots of the
measurements (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from p2pstack.roots.scenarios._runner import SimResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["summary_rows", "write_plots", "write_summary"]


def summary_rows(result: SimResult) -> list[tuple[str, str]]:
    """The summary table of ``result``: scenario, timing, measurements and the trace hash."""
    sc = result.scenario
    security = sc.security if sc.security == "noise" else "plaintext (INSECURE, fast)"
    speed = result.virtual_seconds / result.wall_seconds if result.wall_seconds > 0 else 0.0
    return [
        ("scenario", sc.name),
        ("seed", str(result.seed)),
        ("nodes", str(sc.nodes)),
        ("security / muxer", f"{security} / {sc.muxer}"),
        ("virtual time", f"{result.virtual_seconds:.1f} s"),
        ("wall time", f"{result.wall_seconds:.2f} s ({speed:.1f}x real time)"),
        ("trace events", str(result.events)),
        *result.metrics.summary(),
        ("trace sha256", result.trace_hash),
    ]


def write_summary(result: SimResult, out_dir: Path) -> list[Path]:
    """Write ``summary.txt`` and ``summary.json`` into ``out_dir``.

    Returns:
        The paths written.
    """
    rows = summary_rows(result)
    width = max(len(k) for k, _ in rows)
    text = out_dir / "summary.txt"
    text.write_text("".join(f"{k:<{width}}  {v}\n" for k, v in rows), encoding="utf-8")
    data = out_dir / "summary.json"
    data.write_text(json.dumps(dict(rows), indent=2) + "\n", encoding="utf-8")
    return [text, data]


def write_plots(result: SimResult, out_dir: Path) -> list[Path]:
    """Write ``connections.png`` and ``pings.png`` (RTTs and failures over time).

    Returns:
        The paths written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def finish(fig: Figure, ax: Axes, what: str) -> Path:
        ax.set_xlabel("virtual time (s)")
        ax.set_title(f"{result.scenario.name}: {what} (seed {result.seed})")
        ax.legend()
        path = out_dir / f"{what}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    m = result.metrics
    paths: list[Path] = []
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([t for t, _, _ in m.samples], [c for _, c, _ in m.samples], label="connections")
    ax.plot([t for t, _, _ in m.samples], [u for _, _, u in m.samples], label="nodes up")
    for t, action in m.faults:
        ax.axvline(t, color="grey", linestyle=":", linewidth=1)
        ax.annotate(action, (t, 0), rotation=90, fontsize=7, va="bottom")
    paths.append(finish(fig, ax, "connections"))

    fig, ax = plt.subplots(figsize=(8, 4))
    ok = [(t, rtt * 1000) for t, rtt in m.pings if rtt is not None]
    failed = [t for t, rtt in m.pings if rtt is None]
    ax.scatter([t for t, _ in ok], [r for _, r in ok], s=2, label="RTT (ms)")
    if failed:
        top = max((r for _, r in ok), default=1.0)
        ax.scatter(failed, [top * 1.1] * len(failed), s=6, marker="x", color="red", label="failed")
    ax.set_ylabel("ms")
    paths.append(finish(fig, ax, "pings"))
    return paths
