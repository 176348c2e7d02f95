"""The ``membership`` simulation workload: SWIM + Lifeguard cores on a simulated message
network (``_membership_net``), crashes and CPU-starved members, with Lifeguard on and off side
by side in one ``metrics.json``, and steady runs at several sizes for the message load per
member (docs/membership.md, "Simulation results").

The cores run on the workload's own network (the hosts of the scenario stay idle: set
``nodes = 1``); its virtual clock advances with the scenario's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio

from p2pstack.interfaces import Service
from p2pstack.roots.scenarios._membership_plots import plot_detection, plot_views
from p2pstack.roots.scenarios._membership_run import MembershipRun, MembershipSimConfig
from p2pstack.roots.scenarios._workload import (
    MetricValue,
    NodeInfo,
    SimContext,
    WorkloadType,
    register_workload,
)

__all__ = ["MembershipWorkload"]


def _suffix(lifeguard: bool) -> str:
    return "" if lifeguard else "_lifeguard_off"


class MembershipWorkload:
    """Runs the configured arms and load sizes (see the module docstring)."""

    def __init__(self, config: MembershipSimConfig, sim: SimContext) -> None:
        self.cfg = config
        self.sim = sim
        #: Lifeguard on/off -> run, once started.
        self.runs: dict[bool, MembershipRun] = {}
        #: Members -> steady load run.
        self.load_runs: dict[int, MembershipRun] = {}

    def services(self, node: NodeInfo) -> Sequence[Service]:
        return []

    def on_event(self, index: int, event: object) -> None:
        return

    async def run_node(self, index: int) -> None:
        """On the first node only: run every network, advancing with the scenario clock."""
        if index != self.sim.node_indexes[0]:
            return
        seed = self.sim.rng.root_seed
        cfg = self.cfg
        self.runs = {
            arm == "on": MembershipRun(cfg, seed, lifeguard=arm == "on") for arm in cfg.lifeguard
        }
        start = anyio.current_time()
        t = 0.0
        while t < cfg.run_for:
            t = min(t + cfg.sample_interval, cfg.run_for)
            for lifeguard, run in self.runs.items():
                run.run_until(t)
                self._trace(run, _suffix(lifeguard))
            await anyio.sleep(max(0.0, start + t - anyio.current_time()))
        for n in cfg.load_sizes:
            run = MembershipRun(cfg, seed, lifeguard=True, members=n, faults=False)
            run.run_until(cfg.load_run_for)
            self.load_runs[n] = run
            self._trace(run, f"_n{n}")
            await anyio.lowlevel.checkpoint()

    def _trace(self, run: MembershipRun, arm: str) -> None:
        view = run.views[-1] if run.views else None
        self.sim.trace.record(
            "membership",
            arm=arm,
            t=run.t,
            sent=sum(run.net.sent),
            suspected=len(run.first_suspect),
            dead=len(run.first_dead),
            false_dead=len(run.false_deaths),
            view_min=view.view_min if view else None,
        )

    def metrics(self) -> Mapping[str, MetricValue]:
        out: dict[str, MetricValue] = {}
        for lifeguard, run in self.runs.items():
            if not out:
                out.update(run.reference())
            out.update({k + _suffix(lifeguard): v for k, v in run.metrics().items()})
        for n, run in self.load_runs.items():
            out[f"messages_per_member_per_period_n{n}"] = run.messages_per_member_per_period()
            out[f"bytes_per_member_per_period_n{n}"] = run.bytes_per_member_per_period()
        if True in self.runs and False in self.runs:
            for key in (
                "false_positives",
                "false_positives_healthy",
                "false_suspicions",
                "false_dead_declarations",
                "false_positive_events_at_healthy",
            ):
                on, off = out[key], out[key + "_lifeguard_off"]
                assert isinstance(on, int) and isinstance(off, int)
                # Off / on, with at least one incident counted on each side.
                out[f"{key}_reduction"] = round(max(off, 1) / max(on, 1), 3)
        return out

    def summary_rows(self) -> Sequence[tuple[str, str]]:
        m = self.metrics()
        arms = [_suffix(lg) for lg in self.runs]

        def row(label: str, *keys: str) -> tuple[str, str]:
            cells = [" / ".join(str(m.get(k + a)) for k in keys) for a in arms]
            return (label, "  |  ".join(cells))

        rows = [
            ("members", str(m.get("members"))),
            ("arms", "  |  ".join("lifeguard on" if lg else "lifeguard off" for lg in self.runs)),
            row("crashed / starved", "crashed_members", "starved_members"),
            row("detected / declared dead", "detected", "declared_dead"),
            row("first suspicion p50 / p99 (s)", "detection_time_p50_s", "detection_time_p99_s"),
            row("first suspicion mean (periods)", "detection_periods_mean"),
            ("SWIM paper: expected periods", str(m.get("expected_detection_periods"))),
            row("dead p50 / p99 (s)", "dead_declared_time_p50_s", "dead_declared_time_p99_s"),
            ("suspicion timeout min (s)", str(m.get("suspicion_timeout_min_s"))),
            row(
                "full dissemination p50 / p99 (periods)",
                "full_dissemination_periods_p50",
                "full_dissemination_periods_p99",
            ),
            row("false positives (dead) / healthy", "false_positives", "false_positives_healthy"),
            row("false suspicions / healthy", "false_suspicions", "false_suspicions_healthy"),
            row(
                "false dead declarations: all / by healthy members",
                "false_dead_declarations",
                "false_positive_events_at_healthy",
            ),
            (
                "false positives / healthy / suspicions: off ÷ on",
                f"{m.get('false_positives_reduction')}"
                f" / {m.get('false_positives_healthy_reduction')}"
                f" / {m.get('false_suspicions_reduction')}",
            ),
            (
                "false dead declarations, all / by healthy members: off ÷ on",
                f"{m.get('false_dead_declarations_reduction')}"
                f" / {m.get('false_positive_events_at_healthy_reduction')}",
            ),
            row(
                "messages / bytes per member per period",
                "messages_per_member_per_period",
                "bytes_per_member_per_period",
            ),
            row(
                "connections per member max / mean",
                "connections_per_member_max",
                "connections_per_member_mean",
            ),
        ]
        for n in self.load_runs:
            rows.append(
                (
                    f"messages per member per period, N = {n}",
                    str(m[f"messages_per_member_per_period_n{n}"]),
                )
            )
        return rows

    def plot(self, out_dir: Path, title: str) -> Sequence[Path]:
        if not self.runs:
            return []
        return [
            plot_detection(
                self.runs,
                out_dir / "membership-detection.png",
                f"{title}: detection (x: seconds from the crash)",
            ),
            plot_views(self.runs, out_dir / "membership-views.png", f"{title}: members seen"),
        ]


register_workload(WorkloadType("membership", MembershipSimConfig, MembershipWorkload))
