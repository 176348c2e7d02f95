"""Outputs of a simulated run: ``metrics.json`` (flat, snake_case, numbers as numbers, for
programs; a function of the scenario and the seed only), ``summary.txt`` (the same for people,
plus wall time) and PNG plots (the runner's connections plot and each workload's)."""

from __future__ import annotations

import json
from pathlib import Path

from p2pstack.roots.scenarios._plots import new_plot, save_plot, sensible_y
from p2pstack.roots.scenarios._runner import SimResult
from p2pstack.roots.scenarios._workload import MetricValue

__all__ = ["metrics_values", "summary_rows", "write_plots", "write_summary"]


def metrics_values(result: SimResult) -> dict[str, MetricValue]:
    """The flat ``metrics.json`` object of ``result``.

    Args:
        result: a run.

    Returns:
        Run facts, the runner's series and every workload's entries, in that order.

    Raises:
        ValueError: two workloads report the same key.
    """
    sc = result.scenario
    # Only what the seed determines: the same seed gives a byte-identical metrics.json. Wall
    # time (which depends on the machine) is in summary.txt and ``SimResult.wall_seconds``.
    values: dict[str, MetricValue] = {
        "scenario": sc.name,
        "seed": result.seed,
        "nodes": sc.nodes,
        "transport": sc.transport,
        "security": "tls" if sc.transport == "quic" else sc.security,
        "muxer": "quic" if sc.transport == "quic" else sc.muxer,
        "interrupted": result.interrupted,
        "duration_seconds": sc.duration,
        "virtual_seconds": round(result.virtual_seconds, 9),
        "trace_events": result.events,
        "trace_sha256": result.trace_hash,
        **result.metrics.values(),
    }
    for name, workload in result.workloads.items():
        for key, value in workload.metrics().items():
            if key in values:
                raise ValueError(f"workload {name!r} reports {key!r}, which is already taken")
            values[key] = value
    return values


def summary_rows(result: SimResult) -> list[tuple[str, str]]:
    """The human summary of ``result``: scenario, timing, measurements and the trace hash.

    Args:
        result: a run.

    Returns:
        (name, value) rows.
    """
    sc = result.scenario
    security = sc.security if sc.security == "noise" else "plaintext (INSECURE, fast)"
    stack = f"tcp / {security} / {sc.muxer}"
    if sc.transport == "quic":
        stack = "quic-v1 (TLS 1.3 and streams in QUIC)"
    speed = result.virtual_seconds / result.wall_seconds if result.wall_seconds > 0 else 0.0
    status = [("status", f"INTERRUPTED at {result.virtual_seconds:.1f} s of {sc.duration:g} s")]
    return [
        ("scenario", sc.name),
        *(status if result.interrupted else []),
        ("seed", str(result.seed)),
        ("nodes", str(sc.nodes)),
        ("transport / security / muxer", stack),
        ("virtual time", f"{result.virtual_seconds:.1f} s"),
        ("wall time", f"{result.wall_seconds:.2f} s ({speed:.1f}x real time)"),
        ("trace events", str(result.events)),
        *result.metrics.summary(),
        *(row for w in result.workloads.values() for row in w.summary_rows()),
        ("trace sha256", result.trace_hash),
    ]


def write_summary(result: SimResult, out_dir: Path) -> list[Path]:
    """Write ``summary.txt`` and ``metrics.json`` into ``out_dir``.

    Args:
        result: a run.
        out_dir: an existing directory.

    Returns:
        The paths written.

    Raises:
        OSError: a file cannot be written.
    """
    rows = summary_rows(result)
    width = max(len(k) for k, _ in rows)
    text = out_dir / "summary.txt"
    text.write_text("".join(f"{k:<{width}}  {v}\n" for k, v in rows), encoding="utf-8")
    data = out_dir / "metrics.json"
    data.write_text(json.dumps(metrics_values(result), indent=2) + "\n", encoding="utf-8")
    return [text, data]


def write_plots(result: SimResult, out_dir: Path) -> list[Path]:
    """Write ``connections.png`` (connections and nodes up, faults marked) and each workload's
    plots (``pings.png`` for ping).

    Args:
        result: a run.
        out_dir: an existing directory.

    Returns:
        The paths written.
    """
    title = f"{result.scenario.name} (seed {result.seed})"
    m = result.metrics
    fig, ax = new_plot()
    times = [t for t, _, _ in m.samples]
    conns = [c for _, c, _ in m.samples]
    ups = [u for _, _, u in m.samples]
    ax.plot(times, conns, label="connections")
    ax.plot(times, ups, label="nodes up")
    for t, action in m.faults:
        ax.axvline(t, color="grey", linestyle=":", linewidth=1)
        ax.annotate(action, (t, 0), rotation=90, fontsize=7, va="bottom")
    sensible_y(ax, [*conns, *ups], min_span=1.0, integer=True)
    ax.set_ylabel("count")
    paths = [save_plot(fig, ax, out_dir / "connections.png", f"{title}: connections")]
    for workload in result.workloads.values():
        paths.extend(workload.plot(out_dir, title))
    return paths
