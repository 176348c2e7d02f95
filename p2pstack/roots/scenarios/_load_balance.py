"""The ``load_balance`` simulation workload: tasks arrive at random members of a SWIM cluster
and are placed on a worker either by power of two choices over the gossiped load
(``SwimCore.pick_member_by_load``) or at random; each worker serves its queue in order. Both
placements run from the same seed on the same network with the same arrivals and service
times; task latency (arrival to completion) and the max/mean queue length are compared
(docs/membership.md, "Simulation results").

Members publish their queue length as their metadata ``load`` every ``load_update_interval``
seconds when it changed (a new signed alive claim, gossiped like any other), so placement sees
load as old as gossip makes it. The cores run on the workload's own network
(``_membership_net``); the scenario's one node stays idle.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import attrs

from p2pstack.interfaces import Service
from p2pstack.roots.scenarios._membership_net import SwimNet
from p2pstack.roots.scenarios._membership_run import pct
from p2pstack.roots.scenarios._plots import new_plot, save_plot, sensible_y
from p2pstack.roots.scenarios._workload import (
    MetricValue,
    NodeInfo,
    SimContext,
    WorkloadType,
    register_workload,
)
from protocols.membership import ConnectionPolicy, SwimConfig

__all__ = ["LoadBalanceConfig", "LoadBalanceWorkload", "Placement"]

_ARMS = ("power_of_two", "random")


@attrs.frozen(kw_only=True)
class LoadBalanceConfig:
    """``[load_balance]``: ``members`` SWIM members; from ``start`` until ``run_for`` tasks
    arrive at random members at ``utilization * members / service_mean`` per second (Poisson),
    each needing an exponential service time of mean ``service_mean`` seconds on one worker.
    Links: one-way latency uniform in [``latency_min``, ``latency_max``], ``loss`` of the SWIM
    messages lost (tasks ride reliable streams: latency only). Loads are sampled every
    ``sample_interval`` seconds."""

    members: int = 100
    run_for: float = 60.0
    start: float = 5.0
    utilization: float = 0.9
    service_mean: float = 0.1
    load_update_interval: float = 1.0
    latency_min: float = 0.005
    latency_max: float = 0.050
    loss: float = 0.01
    sample_interval: float = 0.5

    def __attrs_post_init__(self) -> None:
        if self.members < 3 or not 0 < self.utilization < 1:
            raise ValueError("need members >= 3 and 0 < utilization < 1")
        if min(self.service_mean, self.load_update_interval, self.sample_interval) <= 0:
            raise ValueError("service_mean, load_update_interval, sample_interval must be > 0")
        if not 0 <= self.start < self.run_for:
            raise ValueError("need 0 <= start < run_for")


class Placement:
    """One placement policy on its own SWIM network."""

    def __init__(self, cfg: LoadBalanceConfig, seed: int, arm: str) -> None:
        self.cfg, self.arm = cfg, arm
        self.net = SwimNet(
            cfg.members,
            seed=seed,
            config=SwimConfig(),
            latency_min=cfg.latency_min,
            latency_max=cfg.latency_max,
            loss=cfg.loss,
            policy=ConnectionPolicy,
            on_event=lambda t, i, e: None,
        )
        self.rng = random.Random(f"placement/{seed}/{arm}")
        self.queues: list[collections.deque[tuple[float, float]]] = [
            collections.deque() for _ in range(cfg.members)
        ]
        self.published = [0] * cfg.members
        self.latencies: list[float] = []
        #: (time, max queue length, mean queue length).
        self.loads: list[tuple[float, int, float]] = []
        q = self.net.queue
        for i in range(cfg.members):
            q.at(self.rng.uniform(0, cfg.load_update_interval), self._publish, i)
        t = 0.0
        while t < cfg.run_for:
            q.at(t, self._sample)
            t += cfg.sample_interval

    def submit(self, now: float, task: tuple[int, float]) -> None:
        """A task needing ``service`` seconds arrives at member ``submitter``."""
        submitter, service = task
        net = self.net
        if self.arm == "power_of_two":
            peer = net.cores[submitter].pick_member_by_load(self.rng)
            worker = submitter if peer is None else net.index[peer]
        else:
            worker = self.rng.randrange(self.cfg.members - 1)
            worker += worker >= submitter
        delay = net.latency(submitter, worker) if worker != submitter else 0.0
        net.queue.at(now + delay, self._arrive, (worker, now, service))

    def _arrive(self, now: float, arg: tuple[int, float, float]) -> None:
        worker, born, service = arg
        queue = self.queues[worker]
        queue.append((born, service))
        if len(queue) == 1:
            self.net.queue.at(now + service, self._done, worker)

    def _done(self, now: float, worker: int) -> None:
        queue = self.queues[worker]
        born, _ = queue.popleft()
        self.latencies.append(now - born)
        if queue:
            self.net.queue.at(now + queue[0][1], self._done, worker)

    def _publish(self, now: float, i: int) -> None:
        load = len(self.queues[i])
        if load != self.published[i]:
            self.published[i] = load
            self.net.cores[i].set_metadata(load=float(load))
            self.net.flush(i)
        self.net.queue.at(now + self.cfg.load_update_interval, self._publish, i)

    def _sample(self, now: float, _: object) -> None:
        if now < self.cfg.start:
            return
        lengths = [len(q) for q in self.queues]
        self.loads.append((now, max(lengths), sum(lengths) / len(lengths)))

    def metrics(self) -> dict[str, MetricValue]:
        lat = sorted(self.latencies)
        ratios = [mx / mean for _, mx, mean in self.loads if mean > 0]
        return {
            "tasks_completed": len(lat),
            "task_latency_p50_ms": pct([x * 1000 for x in lat], 0.5),
            "task_latency_p99_ms": pct([x * 1000 for x in lat], 0.99),
            "task_latency_max_ms": round(lat[-1] * 1000, 3) if lat else None,
            "load_max": max((mx for _, mx, _ in self.loads), default=0),
            "load_mean": round(sum(m for _, _, m in self.loads) / len(self.loads), 6)
            if self.loads
            else None,
            "load_max_mean_ratio": round(sum(ratios) / len(ratios), 6) if ratios else None,
            "swim_messages_per_member_per_second": round(
                sum(self.net.sent) / self.cfg.members / self.cfg.run_for, 6
            ),
        }


class LoadBalanceWorkload:
    """Runs both placements (see the module docstring)."""

    def __init__(self, config: LoadBalanceConfig, sim: SimContext) -> None:
        self.cfg = config
        self.sim = sim
        self.arms: dict[str, Placement] = {}

    def services(self, node: NodeInfo) -> Sequence[Service]:
        return []

    def on_event(self, index: int, event: object) -> None:
        return

    def tasks(self, seed: int) -> list[tuple[float, int, float]]:
        """(arrival time, submitter, service seconds) of every task, the same for both arms."""
        cfg = self.cfg
        rng = random.Random(f"tasks/{seed}")
        rate = cfg.utilization * cfg.members / cfg.service_mean
        out: list[tuple[float, int, float]] = []
        t = cfg.start
        while True:
            t += rng.expovariate(rate)
            if t >= cfg.run_for:
                return out
            out.append((t, rng.randrange(cfg.members), rng.expovariate(1 / cfg.service_mean)))

    async def run_node(self, index: int) -> None:
        """On the first node only: run both placements with the scenario clock."""
        if index != self.sim.node_indexes[0]:
            return
        seed = self.sim.rng.root_seed
        cfg = self.cfg
        self.arms = {arm: Placement(cfg, seed, arm) for arm in _ARMS}
        for arm in self.arms.values():
            for t, submitter, service in self.tasks(seed):
                arm.net.queue.at(t, arm.submit, (submitter, service))
        start = anyio.current_time()
        t = 0.0
        while t < cfg.run_for:
            t = min(t + 1.0, cfg.run_for)
            for name, arm in self.arms.items():
                arm.net.run_until(t)
                self.sim.trace.record("load_balance", arm=name, t=t, done=len(arm.latencies))
            await anyio.sleep(max(0.0, start + t - anyio.current_time()))

    def metrics(self) -> Mapping[str, MetricValue]:
        out: dict[str, MetricValue] = {"members": self.cfg.members}
        for name, arm in self.arms.items():
            suffix = "" if name == "power_of_two" else "_random"
            out.update({k + suffix: v for k, v in arm.metrics().items()})
        return out

    def summary_rows(self) -> Sequence[tuple[str, str]]:
        m = self.metrics()

        def both(key: str) -> str:
            return f"{m.get(key)} | {m.get(key + '_random')}"

        return [
            ("placement", "power of two (gossiped load) | random"),
            ("tasks completed", both("tasks_completed")),
            ("task latency p50 (ms)", both("task_latency_p50_ms")),
            ("task latency p99 (ms)", both("task_latency_p99_ms")),
            ("queue length max", both("load_max")),
            ("queue length max / mean (mean over samples)", both("load_max_mean_ratio")),
        ]

    def plot(self, out_dir: Path, title: str) -> Sequence[Path]:
        if not self.arms:
            return []
        fig, ax = new_plot()
        values: list[float] = []
        for name, arm in self.arms.items():
            ax.plot(
                [t for t, _, _ in arm.loads],
                [mx for _, mx, _ in arm.loads],
                label=f"max queue ({name})",
            )
            ax.plot(
                [t for t, _, _ in arm.loads],
                [m for _, _, m in arm.loads],
                linestyle="--",
                label=f"mean queue ({name})",
            )
            values += [mx for _, mx, _ in arm.loads]
        sensible_y(ax, values, min_span=1.0)
        ax.set_ylabel("tasks queued at a member")
        path = out_dir / "load-balance-queues.png"
        return [save_plot(fig, ax, path, f"{title}: queue lengths")]


register_workload(WorkloadType("load_balance", LoadBalanceConfig, LoadBalanceWorkload))
