"""The ``pubsub_sybil`` workload: gossipsub under a Sybil attack, with and without the v1.1
peer score (the GossipSub v1.1 evaluation's setting scaled to one machine; docs/pubsub.md,
"Sybil attacks"). Two runs of ``SybilRun`` from the same seed, one per scoring setting, side by
side in one ``metrics.json``: honest delivery (all and within the deadline), delivery delay,
mesh recovery after the covert flash, scores of honest and Sybil peers.

The gossipsub routers run as cores on the workload's own ``SybilOverlay`` (the hosts of the
scenario stay idle: set ``nodes = 1``); its virtual clock advances with the scenario's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio

from p2pstack.interfaces import Service
from p2pstack.roots.scenarios._pubsub_sybil_config import PubsubSybilConfig
from p2pstack.roots.scenarios._pubsub_sybil_plots import plot_delivery, plot_mesh, plot_scores
from p2pstack.roots.scenarios._pubsub_sybil_run import SybilRun
from p2pstack.roots.scenarios._workload import (
    MetricValue,
    NodeInfo,
    SimContext,
    WorkloadType,
    register_workload,
)

__all__ = ["PubsubSybilWorkload", "run_metrics"]


def _pct(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 3)


def _rates(run: SybilRun, start: float, end: float, deadline: float) -> tuple[float, ...]:
    """(delivered, delivered within ``deadline``) shares of the honest (message, node) pairs
    of the messages published in [start, end]; () when there are none."""
    cfg = run.cfg
    ids = [m for m, (t, _) in run.published.items() if start <= t <= end]
    expected = len(ids) * (cfg.honest - 1)
    if not expected:
        return ()
    delivered = sum(len(run.delays[m]) for m in ids)
    on_time = sum(1 for m in ids for d in run.delays[m] if d <= deadline)
    return round(delivered / expected, 6), round(on_time / expected, 6)


def recovery_seconds(run: SybilRun, *, clean: bool = False) -> float | None:
    """Seconds from the flash until the share of honest nodes holding at least D_lo honest
    mesh peers (``clean``: holding no Sybil) first reaches ``recovered_fraction``.

    Args:
        run: a finished run.
        clean: measure Sybil-free meshes instead of D_lo honest peers.

    Returns:
        The seconds, None when it did not happen within the run.
    """
    cfg = run.cfg
    for sample in run.mesh:
        share = sample.clean_fraction if clean else sample.ok_fraction
        if sample.t >= cfg.flash_at and share >= cfg.recovered_fraction:
            return round(sample.t - cfg.flash_at, 3)
    return None


def run_metrics(run: SybilRun) -> dict[str, MetricValue]:
    """The measurements of one run (keys without the scoring suffix).

    Args:
        run: a finished run.

    Returns:
        Flat metrics.
    """
    cfg = run.cfg
    last = cfg.run_for - cfg.deadline
    rate, on_time = _rates(run, cfg.publish_from, last, cfg.deadline) or (None, None)
    after = _rates(run, cfg.flash_at, last, cfg.deadline) or (None, None)
    fast = _rates(run, cfg.publish_from, last, 1.0) or (None, None)
    delays = sorted(d for ds in run.delays.values() for d in ds)
    end = run.mesh[-1] if run.mesh else None
    flash = next((s for s in run.mesh if s.t >= cfg.flash_at), None)
    scores = run.scores[-1].means if run.scores else {}
    out: dict[str, MetricValue] = {
        "honest_delivery_rate": rate,
        "honest_within_deadline_rate": on_time,
        "honest_within_1s_rate": fast[1],
        "honest_delivery_rate_after_flash": after[0],
        "honest_within_deadline_rate_after_flash": after[1],
        "honest_latency_p50_ms": _pct(delays, 0.5),
        "honest_latency_p99_ms": _pct(delays, 0.99),
        "mesh_recovery_seconds": recovery_seconds(run),
        "mesh_sybil_free_seconds": recovery_seconds(run, clean=True),
        "honest_mesh_sybil_peers_at_flash": round(flash.sybil_mean, 6) if flash else None,
        "honest_mesh_ok_fraction_at_flash": round(flash.ok_fraction, 6) if flash else None,
        "honest_mesh_ok_fraction_min_after_flash": min(
            (s.ok_fraction for s in run.mesh if s.t >= cfg.flash_at), default=None
        ),
        "honest_mesh_ok_fraction_end": round(end.ok_fraction, 6) if end else None,
        "honest_mesh_honest_peers_end": round(end.honest_mean, 6) if end else None,
        "honest_mesh_sybil_peers_end": round(end.sybil_mean, 6) if end else None,
        "invalid_messages_validated": run.invalid_validated,
        "messages_published": len(run.published),
        "rpcs_delivered": run.net.rpcs,
    }
    for kind, value in scores.items():
        out[f"score_{kind}_mean_end"] = round(value, 6)
    return out


class PubsubSybilWorkload:
    """Runs the attack with and without scoring (see the module docstring)."""

    def __init__(self, config: PubsubSybilConfig, sim: SimContext) -> None:
        self.cfg = config
        self.sim = sim
        #: The run with scoring and the one without, once started.
        self.runs: dict[str, SybilRun] = {}

    def services(self, node: NodeInfo) -> Sequence[Service]:
        return []

    def on_event(self, index: int, event: object) -> None:
        return

    async def run_node(self, index: int) -> None:
        """On the first node only: build both networks and advance them with the clock."""
        if index != self.sim.node_indexes[0]:
            return
        seed = self.sim.rng.root_seed
        self.runs = {
            "on": SybilRun(self.cfg, seed, scoring=True),
            "off": SybilRun(self.cfg, seed, scoring=False),
        }
        start = anyio.current_time()
        t = 0.0
        while t < self.cfg.run_for:
            t = min(t + 1.0, self.cfg.run_for)
            for run in self.runs.values():
                run.run_until(t)
            await anyio.sleep(max(0.0, start + t - anyio.current_time()))
            if t % self.cfg.score_sample_interval == 0:
                self._trace()

    def _trace(self) -> None:
        """Record each run's state in the trace (so that its hash covers the routers)."""
        for key, run in self.runs.items():
            mesh = run.mesh[-1] if run.mesh else None
            self.sim.trace.record(
                "pubsub_sybil",
                scoring=key,
                delivered=sum(len(d) for d in run.delays.values()),
                rpcs=run.net.rpcs,
                honest_mesh=round(mesh.honest_mean, 6) if mesh else None,
                sybil_mesh=round(mesh.sybil_mean, 6) if mesh else None,
            )

    def metrics(self) -> Mapping[str, MetricValue]:
        c = self.cfg
        honest_links = c.honest * c.honest_peers * 2 / c.honest
        sybil_links = c.sybils * c.sybil_peers / c.honest
        out: dict[str, MetricValue] = {
            "honest_nodes": c.honest,
            "sybil_nodes": c.sybils,
            "honest_connections_per_honest_node": round(honest_links, 3),
            "sybil_connections_per_honest_node": round(sybil_links, 3),
            "sybil_to_honest_connection_ratio": round(sybil_links / honest_links, 3),
            "deadline_seconds": c.deadline,
            "flash_at_seconds": c.flash_at,
        }
        for key, run in self.runs.items():
            suffix = "" if key == "on" else "_scoring_off"
            out.update({k + suffix: v for k, v in run_metrics(run).items()})
        return out

    def summary_rows(self) -> Sequence[tuple[str, str]]:
        m = self.metrics()

        def both(key: str) -> str:
            return f"{m.get(key)} / {m.get(key + '_scoring_off')}"

        return [
            ("honest / Sybil nodes", f"{m['honest_nodes']} / {m['sybil_nodes']}"),
            ("Sybil : honest connections", str(m["sybil_to_honest_connection_ratio"])),
            ("scoring on / off:", ""),
            ("honest delivery", both("honest_delivery_rate")),
            ("honest within deadline", both("honest_within_deadline_rate")),
            ("honest within 1 s", both("honest_within_1s_rate")),
            ("within deadline after the flash", both("honest_within_deadline_rate_after_flash")),
            (
                "latency p50 / p99 ms (on)",
                f"{m.get('honest_latency_p50_ms')} / {m.get('honest_latency_p99_ms')}",
            ),
            (
                "Sybil mesh peers per honest node at the flash",
                both("honest_mesh_sybil_peers_at_flash"),
            ),
            ("mesh recovery after the flash (s)", both("mesh_recovery_seconds")),
            ("meshes Sybil-free after the flash (s)", both("mesh_sybil_free_seconds")),
            ("nodes with >= D_lo honest mesh peers (end)", both("honest_mesh_ok_fraction_end")),
            ("invalid messages validated", both("invalid_messages_validated")),
        ]

    def plot(self, out_dir: Path, title: str) -> Sequence[Path]:
        if not self.runs:
            return []
        return [
            plot_scores(self.runs["on"], out_dir / "pubsub-sybil-scores.png", f"{title}: scores"),
            plot_mesh(self.runs, out_dir / "pubsub-sybil-mesh.png", f"{title}: honest meshes"),
            plot_delivery(self.runs, out_dir / "pubsub-sybil-delivery.png", f"{title}: delivery"),
        ]


register_workload(WorkloadType("pubsub_sybil", PubsubSybilConfig, PubsubSybilWorkload))
