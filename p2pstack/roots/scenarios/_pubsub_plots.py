"""Plots of the pubsub workloads: the delivery latency CDF of each overlay, the gossipsub mesh
degree over time with D, D_lo and D_hi marked, and deliveries per hop count next to log_5 N."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from p2pstack.roots.scenarios._plots import new_plot, save_plot, sensible_y
from p2pstack.roots.scenarios._pubsub_record import MeshSample

__all__ = ["plot_hops", "plot_latency_cdf", "plot_mesh_degree"]


def plot_latency_cdf(series: Mapping[str, Sequence[float]], path: Path, title: str) -> Path:
    """The cumulative distribution of delivery latencies, one line per overlay.

    Args:
        series: label -> every delivery's latency in ms, ascending.
        path: the PNG to write.
        title: the plot title.

    Returns:
        ``path``.
    """
    import matplotlib.pyplot as plt

    fig, ax = new_plot()
    for label, values in series.items():
        if not values:
            continue
        n = len(values)
        # At most ~2,000 points per line: the CDF's shape, not every delivery.
        stride = max(1, n // 2000)
        xs = [values[i] for i in range(0, n, stride)] + [values[-1]]
        ys = [100.0 * (i + 1) / n for i in range(0, n, stride)] + [100.0]
        ax.plot(xs, ys, label=label)
    ax.set_ylim(0, 101)
    ax.set_xlim(left=0)
    ax.set_xlabel("delivery latency (virtual ms after publish)")
    ax.set_ylabel("deliveries (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_mesh_degree(
    samples: Sequence[MeshSample], bounds: tuple[int, int, int], path: Path, title: str
) -> Path:
    """Mesh degree over time: the mean, the 5th-95th percentile band and the extremes.

    Args:
        samples: the mesh samples, in time order.
        bounds: (D_lo, D, D_hi), drawn as lines.
        path: the PNG to write.
        title: the plot title.

    Returns:
        ``path``.
    """
    fig, ax = new_plot()
    ts = [s.t for s in samples]
    ax.fill_between(
        ts, [s.low for s in samples], [s.high for s in samples], alpha=0.3, label="5th-95th pct"
    )
    ax.plot(ts, [s.mean for s in samples], color="tab:blue", label="mean")
    ax.plot(ts, [s.minimum for s in samples], color="grey", linestyle=":", label="min / max")
    ax.plot(ts, [s.maximum for s in samples], color="grey", linestyle=":")
    d_lo, d, d_hi = bounds
    for value, name, style in ((d_lo, "D_lo", "--"), (d, "D", "-"), (d_hi, "D_hi", "--")):
        ax.axhline(value, color="tab:red", linestyle=style, linewidth=0.8)
        ax.annotate(name, (0, value), xytext=(2, 2), textcoords="offset points", fontsize=8)
    sensible_y(ax, [float(s.maximum) for s in samples] + [float(d_hi)], integer=True)
    ax.set_ylabel("mesh peers per node")
    return save_plot(fig, ax, path, title)


def plot_hops(series: Mapping[str, Sequence[int]], log5n: float, path: Path, title: str) -> Path:
    """Deliveries per hop count, one bar group per overlay, with log_5 N marked.

    Args:
        series: label -> every delivery's hop count.
        log5n: log_5 N of the network (the expected mesh hops).
        path: the PNG to write.
        title: the plot title.

    Returns:
        ``path``.
    """
    import matplotlib.pyplot as plt

    fig, ax = new_plot()
    top = max((max(v) for v in series.values() if v), default=1)
    width = 0.8 / max(1, len(series))
    shares: list[float] = []
    for k, (label, hops) in enumerate(series.items()):
        counts = [0] * (top + 1)
        for h in hops:
            counts[h] += 1
        share = [100.0 * c / max(1, len(hops)) for c in counts]
        shares += share
        xs = [h - 0.4 + width * (k + 0.5) for h in range(top + 1)]
        ax.bar(xs, share, width=width, label=label)
    ax.axvline(log5n, color="tab:red", linestyle="--", label=f"log_5 N = {log5n:.1f}")
    sensible_y(ax, shares, min_span=10.0)
    ax.set_xticks(range(top + 1))
    ax.set_xlabel("hops from the publisher (first delivery)")
    ax.set_ylabel("deliveries (%)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
