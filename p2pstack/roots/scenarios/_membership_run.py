"""One membership simulation run: a ``SwimNet`` of ``members`` cores from a converged view,
``crash_fraction`` of them crashing at once at ``crash_at``, some starved of CPU, and what is
observed: the first suspicion and dead declaration of each crashed member anywhere, when every
live member knows of each death, every false suspicion and false death (of a member that did
not crash), messages sent, connections per member and each member's view size over time
(docs/membership.md, "Simulation results")."""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs

from p2pstack.roots.scenarios._membership_net import SwimNet
from p2pstack.roots.scenarios._workload import MetricValue
from protocols.membership import (
    ConnectionPolicy,
    MemberDead,
    MemberEvent,
    MemberSuspected,
    SwimConfig,
    retransmit_limit,
    suspicion_timeout,
)

__all__ = ["EXPECTED_DETECTION_PERIODS", "MembershipRun", "MembershipSimConfig", "pct"]

#: The SWIM paper's expected protocol periods until some member probes a failed one:
#: 1 / (1 - 1/e) = e / (e - 1).
EXPECTED_DETECTION_PERIODS = math.e / (math.e - 1)


def _sizes(value: object) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) for v in value):
        raise ValueError("load_sizes must be a list of member counts")
    return tuple(int(v) for v in value)


def _arms(value: object) -> tuple[str, ...]:
    arms = tuple(value) if isinstance(value, (list, tuple)) else ()
    if not arms or any(arm not in ("on", "off") for arm in arms) or len(set(arms)) < len(arms):
        raise ValueError('lifeguard must list "on" and/or "off"')
    return tuple(str(arm) for arm in arms)


@attrs.frozen(kw_only=True)
class MembershipSimConfig:
    """``[membership]``: ``members`` SWIM cores (memberlist's LAN defaults) start from a
    converged view; at ``crash_at`` a ``crash_fraction`` of them crash at once; a
    ``starved_fraction`` of the others run their timers and reads only every ``starved_tick``
    seconds (CPU starvation), or, with ``starved_pause`` > 0, are frozen for ``starved_pause``
    seconds every ``starved_every`` seconds (each from a random phase); with
    ``starved_reads_only`` only their reads wait for the tick (slow message processing, timers
    on time). Links: one-way latency
    uniform in [``latency_min``, ``latency_max``] per pair, ``loss`` of messages lost. Each
    member keeps connections by a ``ConnectionPolicy(lookahead, idle_timeout,
    max_connections)``; ``gossip_window`` (0, the default: any member, as memberlist) keeps
    gossip on the next probe targets. The run lasts
    ``run_for`` seconds, once per entry of ``lifeguard`` (same seed, same network); then one
    steady run of ``load_run_for`` seconds per entry of ``load_sizes`` measures the message
    load. ``shared_view`` starts every core from one shared converged view (``SharedView``)
    instead of a full table each: the memory of 10,000 members."""

    members: int = 1000
    run_for: float = 40.0
    crash_fraction: float = 0.05
    crash_at: float = 5.0
    starved_fraction: float = 0.0
    starved_tick: float = 1.5
    starved_pause: float = 0.0
    starved_every: float = 0.0
    starved_reads_only: bool = False
    latency_min: float = 0.005
    latency_max: float = 0.050
    loss: float = 0.01
    lifeguard: tuple[str, ...] = attrs.field(default=("on",), converter=_arms)
    gossip_window: int = 0
    lookahead: int = 3
    idle_timeout: float = 5.0
    max_connections: int = 16
    load_sizes: tuple[int, ...] = attrs.field(default=(), converter=_sizes)
    load_run_for: float = 10.0
    sample_interval: float = 1.0
    shared_view: bool = False

    def __attrs_post_init__(self) -> None:
        if self.members < 2 or not 0 <= self.crash_fraction < 1:
            raise ValueError("need members >= 2 and 0 <= crash_fraction < 1")
        if not 0 <= self.starved_fraction < 1 or not 0 <= self.loss < 1:
            raise ValueError("starved_fraction and loss must be in [0, 1)")
        if self.run_for <= 0 or self.sample_interval <= 0 or self.starved_tick <= 0:
            raise ValueError("run_for, sample_interval and starved_tick must be positive")
        if self.starved_pause and not 0 < self.starved_pause < self.starved_every:
            raise ValueError("need 0 < starved_pause < starved_every")


def pct(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile ``p`` (0..1) of sorted ``values``, rounded (None if empty)."""
    if not values:
        return None
    return round(values[max(0, math.ceil(p * len(values)) - 1)], 6)


@attrs.frozen
class ViewSample:
    """Members each live member counts alive or suspect (itself included) at ``t``, and the
    connections per live member."""

    t: float
    truth: int
    view_min: int
    view_p50: int
    view_max: int
    conns_mean: float
    conns_max: int


class MembershipRun:
    """One run (see the module docstring).

    Args:
        cfg: the workload settings.
        seed: the run's root seed.
        lifeguard: Lifeguard on or off.
        members: overrides ``cfg.members`` (the load runs).
        faults: whether members crash and starve (off for the load runs).
    """

    def __init__(
        self,
        cfg: MembershipSimConfig,
        seed: int,
        *,
        lifeguard: bool,
        members: int | None = None,
        faults: bool = True,
    ) -> None:
        self.cfg = cfg
        self.n = members or cfg.members
        self.config = SwimConfig(lifeguard=lifeguard, gossip_window=cfg.gossip_window or None)
        self.net = SwimNet(
            self.n,
            seed=seed,
            config=self.config,
            latency_min=cfg.latency_min,
            latency_max=cfg.latency_max,
            loss=cfg.loss,
            policy=lambda: ConnectionPolicy(
                lookahead=cfg.lookahead,
                idle_timeout=cfg.idle_timeout,
                max_connections=cfg.max_connections,
            ),
            on_event=self._event,
            shared_view=cfg.shared_view,
        )
        rng = self.net.rng
        everyone = list(range(self.n))
        k_crash = round(cfg.crash_fraction * self.n) if faults else 0
        self.to_crash = sorted(rng.sample(everyone, k_crash))
        others = [i for i in everyone if i not in set(self.to_crash)]
        k_starve = round(cfg.starved_fraction * self.n) if faults else 0
        self.starved = set(rng.sample(others, k_starve))
        for i in sorted(self.starved):
            if cfg.starved_pause > 0:
                phase = rng.uniform(0.0, cfg.starved_every)
                self.net.pause(i, cfg.starved_pause, cfg.starved_every, phase)
            elif cfg.starved_reads_only:
                self.net.slow_reads(i, cfg.starved_tick)
            else:
                self.net.starve(i, cfg.starved_tick)
        self.crashed_at: float | None = None
        #: Per crashed member: first suspicion and first dead declaration anywhere, and when
        #: each live member declared or learnt its death.
        self.first_suspect: dict[int, float] = {}
        self.first_dead: dict[int, float] = {}
        self.dead_seen: dict[int, dict[int, float]] = {i: {} for i in self.to_crash}
        #: (time, observer, subject, incarnation) of suspicions and dead declarations of
        #: members that did not crash.
        self.false_suspicions: list[tuple[float, int, int, int]] = []
        self.false_deaths: list[tuple[float, int, int, int]] = []
        self.views: list[ViewSample] = []
        self.t = 0.0
        self._sent_at_start = 0

    def _event(self, t: float, observer: int, event: MemberEvent) -> None:
        if not isinstance(event, (MemberSuspected, MemberDead)):
            return
        subject = self.net.index[event.peer_id]
        if subject in self.dead_seen and self.crashed_at is not None:
            if isinstance(event, MemberSuspected):
                self.first_suspect.setdefault(subject, t)
            else:
                self.first_dead.setdefault(subject, t)
                self.dead_seen[subject].setdefault(observer, t)
        elif subject not in self.net.crashed:
            record = (t, observer, subject, event.incarnation)
            if isinstance(event, MemberSuspected):
                self.false_suspicions.append(record)
            else:
                self.false_deaths.append(record)

    def run_until(self, end: float) -> None:
        """Advance to ``end`` (sampling every ``sample_interval``, crashing at ``crash_at``)."""
        cfg = self.cfg
        while self.t < end - 1e-9:
            t = min(end, self.t + cfg.sample_interval)
            if self.crashed_at is None and self.to_crash and self.t < cfg.crash_at <= t:
                self.net.run_until(cfg.crash_at)
                self.crashed_at = cfg.crash_at
                for i in self.to_crash:
                    self.net.crash(i)
            self.net.run_until(t)
            self.net.manage_connections(t)
            self.t = t
            self._sample(t)

    def _sample(self, t: float) -> None:
        net = self.net
        live = net.live()
        views = sorted(net.cores[i].live_count() for i in live)
        conns = [len(net.connections[i]) for i in live]
        self.views.append(
            ViewSample(
                round(t, 6),
                len(live),
                views[0],
                views[len(views) // 2],
                views[-1],
                round(sum(conns) / len(conns), 3),
                max(conns),
            )
        )

    # --- measurements ---------------------------------------------------------------------

    def detection_times(self) -> list[float]:
        """Seconds from the crash to each crashed member's first suspicion, sorted."""
        t0 = self.crashed_at or 0.0
        return sorted(t - t0 for t in self.first_suspect.values())

    def dead_times(self) -> list[float]:
        """Seconds from the crash to each crashed member's first dead declaration, sorted."""
        t0 = self.crashed_at or 0.0
        return sorted(t - t0 for t in self.first_dead.values())

    def dissemination_periods(self) -> tuple[list[float], int]:
        """Probe periods from each death's first declaration until every live member knew it,
        sorted; and how many deaths never reached every live member."""
        live = set(self.net.live())
        out, missing = [], 0
        for subject, seen in self.dead_seen.items():
            if not seen or not live.issubset(seen):
                missing += 1
                continue
            last = max(seen[i] for i in live)
            out.append((last - self.first_dead[subject]) / self.config.probe_interval)
        return sorted(out), missing

    def messages_per_member_per_period(self) -> float:
        """Messages sent per live member per probe period over the whole run."""
        live = self.net.live()
        sent = sum(self.net.sent[i] for i in live)
        return round(sent / len(live) / (self.t / self.config.probe_interval), 6)

    def bytes_per_member_per_period(self) -> float:
        live = self.net.live()
        sent = sum(self.net.bytes_sent[i] for i in live)
        return round(sent / len(live) / (self.t / self.config.probe_interval), 3)

    def metrics(self) -> dict[str, MetricValue]:
        """Flat metrics of this run (keys without an arm suffix)."""
        det, dead = self.detection_times(), self.dead_times()
        dis, missing = self.dissemination_periods()
        # One incident per (member, incarnation) declared dead (or suspected): a declaration
        # spreads to every member, so the events count N times over.
        fd = {(r[2], r[3]) for r in self.false_deaths}
        fs = {(r[2], r[3]) for r in self.false_suspicions}
        return {
            "crashed_members": len(self.to_crash),
            "starved_members": len(self.starved),
            "detected": len(det),
            "declared_dead": len(dead),
            "detection_time_p50_s": pct(det, 0.5),
            "detection_time_p99_s": pct(det, 0.99),
            "detection_time_mean_s": round(sum(det) / len(det), 6) if det else None,
            "detection_periods_mean": round(sum(det) / len(det) / self.config.probe_interval, 6)
            if det
            else None,
            "dead_declared_time_p50_s": pct(dead, 0.5),
            "dead_declared_time_p99_s": pct(dead, 0.99),
            "full_dissemination_periods_p50": pct(dis, 0.5),
            "full_dissemination_periods_p99": pct(dis, 0.99),
            "deaths_not_fully_disseminated": missing,
            "false_positives": len(fd),
            "false_positives_healthy": sum(1 for m, _ in fd if m not in self.starved),
            "false_positive_members": len({m for m, _ in fd}),
            "false_dead_declarations": len(self.false_deaths),
            # Lifeguard's paper counts where a false positive happens: declarations made by
            # healthy (not starved) members, one per declaring member.
            "false_positive_events_at_healthy": sum(
                1 for r in self.false_deaths if r[1] not in self.starved
            ),
            "false_positive_events_healthy_about_healthy": sum(
                1
                for r in self.false_deaths
                if r[1] not in self.starved and r[2] not in self.starved
            ),
            "false_suspicions": len(fs),
            "false_suspicions_healthy": sum(1 for m, _ in fs if m not in self.starved),
            "false_suspicion_declarations": len(self.false_suspicions),
            "messages_per_member_per_period": self.messages_per_member_per_period(),
            "bytes_per_member_per_period": self.bytes_per_member_per_period(),
            "connections_per_member_max": max((v.conns_max for v in self.views), default=0),
            "connections_per_member_mean": round(
                sum(v.conns_mean for v in self.views) / len(self.views), 3
            )
            if self.views
            else None,
            "connections_opened_per_member_per_second": round(self.net.opened / self.n / self.t, 3)
            if self.t
            else None,
            "view_min_end": self.views[-1].view_min if self.views else None,
            "protocol_errors": self.net.errors,
        }

    def reference(self) -> dict[str, MetricValue]:
        """The figures the measurements are compared with."""
        n = self.n
        return {
            "members": n,
            "expected_detection_periods": round(EXPECTED_DETECTION_PERIODS, 6),
            "suspicion_timeout_min_s": round(
                suspicion_timeout(self.config.suspicion_mult, n, self.config.probe_interval), 6
            ),
            "retransmit_limit": retransmit_limit(self.config.retransmit_mult, n),
            "log2_n": round(math.log2(n), 6),
        }
