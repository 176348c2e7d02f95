"""The ``membership`` and ``load_balance`` workloads at small scale (the full runs are
examples/sim/membership-*.toml and load-balance.toml): crashed members are detected and
declared dead by everyone with no false positive, Lifeguard cuts false positives, the message
load per member does not grow with N, power of two choices over gossiped load beats random
placement, and the same seed gives the same metrics.json."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pstack.roots.scenarios import (
    LoadBalanceConfig,
    MembershipSimConfig,
    MembershipWorkload,
    ScenarioError,
    SimResult,
    load_scenario,
    parse_scenario,
)
from p2pstack.roots.scenarios._membership_net import Starvation
from p2pstack.roots.scenarios._membership_run import MembershipRun
from p2pstack.roots.scenarios._report import metrics_values
from p2pstack.roots.scenarios.testing import run_checked

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sim"


def test_crashed_members_detected_declared_dead_and_known_to_all() -> None:
    cfg = MembershipSimConfig(members=100, run_for=25.0, crash_fraction=0.05, crash_at=3.0)
    run = MembershipRun(cfg, 7, lifeguard=True)
    run.run_until(cfg.run_for)
    m = run.metrics()
    assert m["detected"] == m["declared_dead"] == 5
    det, dead = m["detection_time_p99_s"], m["dead_declared_time_p99_s"]
    assert isinstance(det, float) and isinstance(dead, float)
    assert det < 8.0
    # At least the minimum suspicion timeout (4 * log10(100) = 8 s) after the first suspicion.
    assert m["detection_time_p50_s"] is not None
    assert 8.0 <= dead <= det + 8.0 * 6
    assert m["deaths_not_fully_disseminated"] == 0
    dis = m["full_dissemination_periods_p99"]
    assert isinstance(dis, float) and dis < 5.0
    assert m["false_positives"] == 0 and m["false_suspicions"] == 0
    assert m["protocol_errors"] == 0
    conns = m["connections_per_member_max"]
    assert isinstance(conns, int) and 3 <= conns <= 2 * cfg.max_connections
    assert run.views[-1].view_max == 95  # every live member's view shrank to the truth
    assert run.views[-1].view_min == 95


def test_lifeguard_cuts_false_positives_and_still_detects() -> None:
    cfg = MembershipSimConfig(
        members=60,
        run_for=40.0,
        crash_fraction=0.05,
        crash_at=3.0,
        starved_fraction=0.1,
        loss=0.1,
        lifeguard=("on", "off"),
    )
    runs = {lg: MembershipRun(cfg, 3, lifeguard=lg) for lg in (True, False)}
    metrics = {}
    for lg, run in runs.items():
        run.run_until(cfg.run_for)
        metrics[lg] = run.metrics()
        assert metrics[lg]["declared_dead"] == metrics[lg]["crashed_members"] == 3
    on, off = metrics[True], metrics[False]
    assert isinstance(on["false_suspicions"], int) and isinstance(off["false_suspicions"], int)
    assert on["false_suspicions"] * 2 < off["false_suspicions"]
    assert isinstance(on["false_positives"], int) and isinstance(off["false_positives"], int)
    assert on["false_positives"] * 2 < off["false_positives"]


def test_message_load_per_member_does_not_grow_with_n() -> None:
    cfg = MembershipSimConfig(members=50, crash_fraction=0.0)
    loads = []
    for n in (50, 400):
        run = MembershipRun(cfg, 1, lifeguard=True, members=n, faults=False)
        run.run_until(8.0)
        loads.append(run.messages_per_member_per_period())
    # A probe and an ack per member per period (and the odd push-pull), whatever N.
    assert 1.5 < loads[0] < 3.0 and 1.5 < loads[1] < 3.0
    assert abs(loads[1] - loads[0]) < 0.15 * loads[0], loads


def test_shared_view_gives_the_same_load_with_less_memory() -> None:
    loads = {}
    for shared in (False, True):
        cfg = MembershipSimConfig(members=100, crash_fraction=0.0, shared_view=shared)
        run = MembershipRun(cfg, 1, lifeguard=True, faults=False)
        run.run_until(6.0)
        loads[shared] = run.messages_per_member_per_period()
        assert run.views[-1].view_min == 100 and run.metrics()["false_suspicions"] == 0
        records = sum(len(dict.keys(c._members)) for c in run.net.cores)
        # A full table per core, or only the records each core touched.
        assert (records == 100 * 99) is not shared
        if shared:
            assert records < 100 * 25
    assert abs(loads[True] - loads[False]) < 0.1 * loads[False], loads
    cfg = MembershipSimConfig(members=100, crash_fraction=0.0, shared_view=True)
    again = MembershipRun(cfg, 1, lifeguard=True, faults=False)
    again.run_until(6.0)
    assert again.messages_per_member_per_period() == loads[True]  # same seed, same run


def test_paused_members_run_late_then_catch_up() -> None:
    pause = Starvation(pause=4.0, every=10.0, phase=1.0)
    assert pause.frozen(1.0) and pause.frozen(4.9) and not pause.frozen(5.0)
    assert pause.frozen(11.5) and not pause.frozen(0.5)
    assert pause.resume_at(2.0) == 5.0 and pause.resume_at(6.0) == 6.0
    assert pause.resume_at(12.0) == 15.0
    assert Starvation(tick=1.5).resume_at(2.0) == 3.0 and Starvation(tick=1.5).frozen(0.1)
    reads = Starvation(tick=1.5, slow_reads=True)  # slow message processing, timers on time
    assert reads.resume_at(2.0) == 2.0 and reads.next_tick(2.0) == 3.0 and reads.frozen(2.0)
    cfg = MembershipSimConfig(
        members=40,
        run_for=20.0,
        crash_fraction=0.0,
        starved_fraction=0.1,
        starved_pause=6.0,
        starved_every=10.0,
    )
    run = MembershipRun(cfg, 1, lifeguard=True)
    run.run_until(cfg.run_for)
    assert len(run.starved) == 4
    # Paused for 6 s, longer than a probe period: the paused members are suspected, and refute
    # once they run again (6 s is below the 6.4 s minimum suspicion timeout at N = 40).
    suspected = {r[2] for r in run.false_suspicions}
    assert run.starved <= suspected
    assert run.views[-1].view_min == 40


def test_slow_readers_accuse_on_time_without_lifeguard() -> None:
    # Members that read their messages only every 2 s but whose timers run on time miss the
    # acks of their probes and suspect healthy members every period.
    cfg = MembershipSimConfig(
        members=40,
        run_for=10.0,
        crash_fraction=0.0,
        starved_fraction=0.1,
        starved_tick=2.0,
        starved_reads_only=True,
    )
    run = MembershipRun(cfg, 1, lifeguard=False)
    run.run_until(cfg.run_for)
    by_slow = [r for r in run.false_suspicions if r[1] in run.starved and r[2] not in run.starved]
    assert len(by_slow) >= 4 * 5  # about one a second each, after the first
    # Their own timers raised them between reading ticks (a ticking member's come on ticks).
    assert any(abs(t / 2.0 - round(t / 2.0)) > 1e-6 for t, *_ in by_slow)
    assert run.net.errors == 0


def _scenario(seed: int) -> dict[str, object]:
    return {
        "name": "membership-small",
        "nodes": 1,
        "duration": 16.0,
        "seed": seed,
        "security": "plaintext",
        "services": ["membership"],
        "bootstrap": {"peers": 0},
        "membership": {
            "members": 60,
            "run_for": 15.0,
            "crash_at": 2.0,
            "crash_fraction": 0.05,
            "lifeguard": ["on"],
            "load_sizes": [30],
            "load_run_for": 5.0,
        },
    }


def _has_metrics(result: SimResult) -> None:
    m = metrics_values(result)
    for key in (
        "detection_time_p50_s",
        "detection_time_p99_s",
        "dead_declared_time_p99_s",
        "false_positives",
        "full_dissemination_periods_p99",
        "connections_per_member_max",
        "messages_per_member_per_period_n30",
    ):
        assert isinstance(m[key], (int, float)), key
    assert m["false_positives"] == 0


def test_scenario_metrics_are_reproducible(tmp_path: Path) -> None:
    scenario = parse_scenario(_scenario(2))
    first = run_checked(scenario, seed=2, check=_has_metrics)
    plots = first.workload(MembershipWorkload).plot(tmp_path, "small")
    assert [p.name for p in plots] == ["membership-detection.png", "membership-views.png"]
    assert all(p.stat().st_size > 1000 for p in plots)
    second = run_checked(scenario, seed=2, check=_has_metrics)
    assert metrics_values(first) == metrics_values(second)
    assert first.trace_hash == second.trace_hash
    other = run_checked(scenario, seed=3, check=_has_metrics)
    assert other.trace_hash != first.trace_hash


def test_power_of_two_beats_random_placement() -> None:
    scenario = parse_scenario(
        {
            "name": "load-balance-small",
            "nodes": 1,
            "duration": 31.0,
            "seed": 1,
            "security": "plaintext",
            "services": ["load_balance"],
            "bootstrap": {"peers": 0},
            "load_balance": {"members": 20, "run_for": 30.0, "start": 3.0, "service_mean": 1.0},
        }
    )
    run_checked(scenario, seed=1, check=_placement_compared)


def _placement_compared(result: SimResult) -> None:
    m = metrics_values(result)
    for key in ("load_max", "task_latency_p99_ms", "load_max_mean_ratio"):
        two, rnd = m[key], m[key + "_random"]
        assert isinstance(two, (int, float)) and isinstance(rnd, (int, float)), key
        assert two < rnd, (key, two, rnd)
    done, done_random = m["tasks_completed"], m["tasks_completed_random"]
    assert isinstance(done, int) and isinstance(done_random, int)
    assert done > 400 and abs(done - done_random) < 0.1 * done  # the same arrivals


def test_example_files_state_the_setting() -> None:
    crash = load_scenario(EXAMPLES / "membership-crash.toml").workload_settings("membership")
    assert isinstance(crash, MembershipSimConfig)
    assert (crash.members, crash.crash_fraction, crash.loss) == (1000, 0.05, 0.01)
    assert crash.load_sizes == (100, 1000)
    lg = load_scenario(EXAMPLES / "membership-lifeguard.toml").workload_settings("membership")
    assert isinstance(lg, MembershipSimConfig)
    assert (lg.loss, lg.lifeguard) == (0.1, ("on", "off")) and lg.starved_fraction > 0
    harsh = load_scenario(EXAMPLES / "membership-lifeguard-harsh.toml")
    hs = harsh.workload_settings("membership")
    assert isinstance(hs, MembershipSimConfig)
    assert (hs.loss, hs.lifeguard, hs.starved_fraction) == (0.1, ("on", "off"), 0.2)
    slow = load_scenario(EXAMPLES / "membership-lifeguard-slow-reads.toml")
    ss = slow.workload_settings("membership")
    assert isinstance(ss, MembershipSimConfig)
    assert ss.starved_reads_only and (ss.loss, ss.lifeguard) == (0.1, ("on", "off"))
    big = load_scenario(EXAMPLES / "membership-load-10000.toml").workload_settings("membership")
    assert isinstance(big, MembershipSimConfig)
    assert big.shared_view and big.load_sizes == (100, 1000, 10000)
    lb = load_scenario(EXAMPLES / "load-balance.toml").workload_settings("load_balance")
    assert isinstance(lb, LoadBalanceConfig)


def test_bad_settings_are_scenario_errors() -> None:
    for table, value, message in (
        ("membership", {"members": 1}, "members >= 2"),
        ("membership", {"lifeguard": ["maybe"]}, '"on" and/or "off"'),
        ("membership", {"load_sizes": ["many"]}, "load_sizes"),
        ("load_balance", {"utilization": 1.5}, "utilization"),
    ):
        with pytest.raises(ScenarioError, match=message):
            parse_scenario({"nodes": 1, "services": [table], table: value})
