"""Plots of the Kademlia workloads: the lookup hop histogram (with ceil(log2 N) and the IPFS
measurement marked) and the fraction of records retrievable over time, with and without
republish, next to the share of nodes replaced so far."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from p2pstack.roots.scenarios._plots import new_plot, save_plot, sensible_y

__all__ = ["plot_hops", "plot_retrievability"]


def plot_hops(counts: Mapping[int, int], log2n: int, path: Path, title: str) -> Path:
    """Bar chart of lookups per hop count.

    Args:
        counts: lookups per hop count.
        log2n: ceil(log2 N) of the simulated network, drawn as a line.
        path: the PNG to write.
        title: the plot title.

    Returns:
        ``path``.
    """
    import matplotlib.pyplot as plt

    fig, ax = new_plot()
    total = sum(counts.values()) or 1
    hops = sorted(counts)
    ax.bar(hops, [100.0 * counts[h] / total for h in hops], color="tab:blue", label="lookups")
    ax.axvline(log2n, color="tab:red", linestyle="--", label=f"ceil(log2 N) = {log2n}")
    ax.axvline(4, color="tab:green", linestyle=":", label="IPFS median (4, ~16k servers)")
    ax.axvline(6, color="tab:olive", linestyle=":", label="IPFS 90th percentile (6)")
    sensible_y(ax, [100.0 * counts[h] / total for h in hops], min_span=10.0)
    ax.set_xlim(-0.5, max([*hops, log2n, 6]) + 0.5)
    ax.set_xticks(range(max([*hops, log2n, 6]) + 1))
    ax.set_xlabel("hops (the closest answering peer's distance in referrals from the seeds)")
    ax.set_ylabel("lookups (%)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_retrievability(
    series: Mapping[str, Sequence[tuple[float, float]]],
    replaced: Sequence[tuple[float, float]],
    path: Path,
    title: str,
) -> Path:
    """Fraction of records retrievable over time, one line per series, and the share of the
    original nodes replaced so far.

    Args:
        series: label -> (virtual time, fraction 0..1) points.
        replaced: (virtual time, fraction of nodes replaced 0..1) points.
        path: the PNG to write.
        title: the plot title.

    Returns:
        ``path``.
    """
    fig, ax = new_plot()
    for label, points in series.items():
        ax.plot([t for t, _ in points], [100 * v for _, v in points], marker="o", label=label)
    if replaced:
        ax.step(
            [t for t, _ in replaced],
            [100 * v for _, v in replaced],
            where="post",
            color="grey",
            linestyle="--",
            label="nodes replaced",
        )
    ax.set_ylim(0, 105)
    ax.set_ylabel("records retrievable / nodes replaced (%)")
    return save_plot(fig, ax, path, title)
