"""Plot helpers for simulation outputs (matplotlib, Agg backend: no display needed). Axes are
made for people: y starts at 0 for counts and durations, a flat series gets a readable span
instead of a magnified ±1e-11 band, and tick labels never use an offset."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["new_plot", "save_plot", "sensible_y"]


def new_plot() -> tuple[Figure, Axes]:
    """A fresh 8x4 in figure and its axes on the Agg backend.

    Returns:
        The figure and its axes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    return fig, ax


def sensible_y(
    ax: Axes, values: Sequence[float], *, min_span: float = 1.0, integer: bool = False
) -> tuple[float, float]:
    """Set the y range: from 0 (or the minimum, if negative) to 10% above the maximum, and at
    least ``min_span`` tall; plain tick labels with no offset.

    Args:
        ax: the axes.
        values: every y value plotted.
        min_span: the least height of the range, in data units.
        integer: ticks on whole numbers only (counts).

    Returns:
        The (bottom, top) limits set.
    """
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    bottom = min(0.0, min(values, default=0.0))
    top = max(values, default=0.0)
    top = max(top + 0.1 * (top - bottom), bottom + min_span)
    ax.set_ylim(bottom, top)
    formatter = ScalarFormatter(useOffset=False)
    formatter.set_scientific(False)
    ax.yaxis.set_major_formatter(formatter)
    if integer:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return bottom, top


def save_plot(fig: Figure, ax: Axes, path: Path, title: str) -> Path:
    """Label the time axis, title, legend, write ``path`` (PNG) and close the figure.

    Args:
        fig: the figure.
        ax: its axes.
        path: the PNG to write.
        title: the plot title.

    Returns:
        ``path``.
    """
    import matplotlib.pyplot as plt

    ax.set_xlabel("virtual time (s)")
    ax.set_xlim(left=0)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
