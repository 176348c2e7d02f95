"""The ``pubsub`` simulation workload: gossipsub and floodsub side by side on the same nodes,
topology, links and publish schedule; delivery rate, latency and hop percentiles (next to
log_5 N), duplicates per delivery, bytes per node, mesh degree over time (docs/pubsub.md,
"Simulation")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from p2pstack.roots.scenarios._pubsub_base import PubsubNodes, PubsubSimConfig
from p2pstack.roots.scenarios._pubsub_plots import plot_hops, plot_latency_cdf, plot_mesh_degree
from p2pstack.roots.scenarios._workload import MetricValue, WorkloadType, register_workload

__all__ = ["PubsubWorkload"]

#: Summary rows: (label, metric name without prefix, unit).
_ROWS = (
    ("messages published", "messages_published", ""),
    ("delivery rate", "delivery_rate", ""),
    ("latency p50 / p99 / max", ("latency_p50_ms", "latency_p99_ms", "latency_max_ms"), " ms"),
    ("hops p50 / p99 / max / mean", ("hops_p50", "hops_p99", "hops_max", "hops_mean"), ""),
    ("duplicates per delivery", "duplicates_per_delivery", ""),
    ("bytes per node", "bytes_per_node", " B"),
    ("RPCs sent", "rpcs_sent", ""),
)


class PubsubWorkload(PubsubNodes):
    """``pubsub``: the overlays of ``routers`` side by side (see the module docstring)."""

    def metrics(self) -> Mapping[str, MetricValue]:
        return self.base_metrics()

    def summary_rows(self) -> Sequence[tuple[str, str]]:
        m = self.metrics()
        names = list(self.overlays)
        rows = [
            ("pubsub nodes / links", f"{m['pubsub_nodes']} / {m['pubsub_links']}"),
            ("overlays", " / ".join(names)),
        ]
        for label, keys, unit in _ROWS:
            cells = []
            for name in names:
                p = self.metric_prefix(name)
                ks = keys if isinstance(keys, tuple) else (keys,)
                cells.append(" / ".join(str(m.get(p + k)) for k in ks) + unit)
            rows.append((label, "  |  ".join(cells)))
        rows.append(("log_5 N (expected mesh hops)", str(m["hops_log5_n"])))
        return rows

    def plot(self, out_dir: Path, title: str) -> Sequence[Path]:
        paths = []
        lat = {name: rec.latencies_ms() for name, rec in self.recorders.items()}
        if any(lat.values()):
            path = out_dir / "pubsub-latency-cdf.png"
            paths.append(plot_latency_cdf(lat, path, f"{title}: delivery latency CDF"))
            hops = {name: rec.hop_counts() for name, rec in self.recorders.items()}
            log5n = self.base_metrics()["hops_log5_n"]
            assert isinstance(log5n, float)
            path = out_dir / "pubsub-hops.png"
            paths.append(plot_hops(hops, log5n, path, f"{title}: hops to first delivery"))
        c = self.cfg
        for name, rec in self.recorders.items():
            if rec.mesh:
                path = out_dir / f"pubsub-mesh-degree-{name}.png"
                paths.append(
                    plot_mesh_degree(
                        rec.mesh, (c.d_lo, c.d, c.d_hi), path, f"{title}: {name} mesh degree"
                    )
                )
        return paths


register_workload(WorkloadType("pubsub", PubsubSimConfig, PubsubWorkload))
