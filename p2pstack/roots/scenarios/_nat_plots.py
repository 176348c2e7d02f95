"""Plots of the ``nat_traversal`` workload: reachable pairs and hole-punch success by NAT type,
and hole-punch success by NAT-type combination next to what RFC 4787/5382 predict (with the
ProbeLab measurement of DCUtR marked)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from p2pstack.roots.scenarios._nat_expected import TYPE_ORDER
from p2pstack.roots.scenarios._plots import new_plot
from p2pstack.roots.scenarios._workload import MetricValue

__all__ = ["plot_nat_rates"]


def _num(value: MetricValue) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _bars(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float], str]],
    path: Path,
    *,
    title: str,
    xlabel: str,
    probelab: float | None,
) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = new_plot()
    width = 0.8 / len(series)
    for i, (name, values, color) in enumerate(series):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        ax.bar(xs, values, width=width, label=name, color=color)
    if probelab is not None:
        ax.axhline(probelab, color="tab:red", linestyle=":", label="ProbeLab DCUtR (~70%)")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=45 if len(labels) > 8 else 0, ha="right", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("rate")
    ax.set_xlabel(xlabel)
    ax.set_title(title, pad=24)
    ax.legend(
        fontsize=7,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=len(series) + 1,
        frameon=False,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_nat_rates(m: Mapping[str, MetricValue], out_dir: Path, title: str) -> list[Path]:
    """Write ``nat-by-type.png`` and ``nat-by-combination.png`` into ``out_dir``.

    Args:
        m: the workload's metrics.
        out_dir: the output directory.
        title: the run's title.

    Returns:
        The paths written.
    """
    types = [t for t in TYPE_ORDER if f"reachable_pairs_rate_{t}" in m]
    by_type = _bars(
        types,
        [
            ("reachable pairs", [_num(m[f"reachable_pairs_rate_{t}"]) for t in types], "tab:blue"),
            (
                "TCP hole punch success",
                [_num(m.get(f"holepunch_success_rate_{t}")) for t in types],
                "tab:green",
            ),
            (
                "QUIC hole punch success",
                [_num(m.get(f"holepunch_quic_success_rate_{t}")) for t in types],
                "tab:purple",
            ),
        ],
        out_dir / "nat-by-type.png",
        title=f"{title}: pairs involving each NAT type",
        xlabel="NAT type",
        probelab=None,
    )
    prefix = "holepunch_pairs_"
    combos = [k[len(prefix) :] for k in m if k.startswith(prefix)]
    by_combo = _bars(
        combos,
        [
            ("TCP measured", [_num(m[f"holepunch_success_rate_{c}"]) for c in combos], "tab:green"),
            (
                "TCP expected (RFC 4787/5382)",
                [_num(m[f"holepunch_expected_rate_{c}"]) for c in combos],
                "tab:gray",
            ),
            *(
                [
                    (
                        "QUIC measured",
                        [_num(m.get(f"holepunch_quic_success_rate_{c}")) for c in combos],
                        "tab:purple",
                    ),
                    (
                        "QUIC expected",
                        [_num(m.get(f"holepunch_quic_expected_rate_{c}")) for c in combos],
                        "tab:pink",
                    ),
                ]
                if "holepunch_quic_pairs" in m
                else []
            ),
        ],
        out_dir / "nat-by-combination.png",
        title=f"{title}: hole punch success by NAT type pair",
        xlabel="NAT types of the pair",
        probelab=_num(m.get("holepunch_probelab_rate")),
    )
    return [by_type, by_combo]
