"""The ``pubsub_sybil`` workload on a small network: with scoring, spammers are graylisted,
Sybils leave the honest meshes and honest messages arrive; without, Sybils stay in the meshes
and every invalid message is validated; the same seed gives the same metrics."""

from __future__ import annotations

from pathlib import Path

from p2pstack.roots.scenarios import PubsubSybilConfig, SimResult, load_scenario, parse_scenario
from p2pstack.roots.scenarios._pubsub_sybil import run_metrics
from p2pstack.roots.scenarios._pubsub_sybil_run import SybilRun
from p2pstack.roots.scenarios._report import metrics_values
from p2pstack.roots.scenarios.testing import run_checked

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sim"

SMALL = {
    "honest": 20,
    "honest_peers": 4,
    "sybils": 12,
    "sybil_peers": 16,
    "sybils_at": 5.0,
    "flash_at": 20.0,
    "run_for": 50.0,
    "publish_from": 3.0,
}


def _run(scoring: bool) -> SybilRun:
    # mypy: SMALL is a dict of mixed values, as read from a scenario file.
    run = SybilRun(PubsubSybilConfig(**SMALL), 3, scoring=scoring)  # type: ignore[arg-type]
    run.run_until(50.0)
    return run


def test_scoring_evicts_sybils_and_keeps_delivery() -> None:
    on, off = _run(True), _run(False)
    m_on, m_off = run_metrics(on), run_metrics(off)
    assert m_on["honest_within_deadline_rate"] == 1.0
    assert m_on["honest_mesh_sybil_peers_end"] == 0.0
    assert m_on["honest_mesh_ok_fraction_end"] == 1.0
    spam, honest = m_on["score_spam_mean_end"], m_on["score_honest_mean_end"]
    assert isinstance(spam, float) and isinstance(honest, float)
    # A spammer reaches only the nodes whose mesh it was in: the mean over every honest node's
    # view is below the gossip threshold, those nodes' views below the graylist.
    assert spam < -10.0 < 0.0 < honest
    assert isinstance(m_on["score_covert_mean_end"], float)
    assert m_on["score_covert_mean_end"] < 0.0  # found out after the flash
    # Without scoring the Sybils keep their mesh slots and every spam is validated.
    sybil_off = m_off["honest_mesh_sybil_peers_end"]
    assert isinstance(sybil_off, float) and sybil_off >= 2.0
    validated_on, validated_off = (
        m_on["invalid_messages_validated"],
        m_off["invalid_messages_validated"],
    )
    assert isinstance(validated_on, int) and isinstance(validated_off, int)
    assert validated_off > 3 * validated_on
    assert m_off["score_spam_mean_end"] == 0.0
    # Both runs see the same network and the same publishers.
    assert [n for _, n in on.published.values()] == [n for _, n in off.published.values()]


def _scenario(seed: int) -> dict[str, object]:
    return {
        "name": "pubsub-sybil-small",
        "nodes": 1,
        "duration": 31.0,
        "seed": seed,
        "security": "plaintext",
        "services": ["pubsub_sybil"],
        "bootstrap": {"peers": 0},
        "pubsub_sybil": {**SMALL, "run_for": 30.0, "flash_at": 15.0},
    }


def _has_both(result: SimResult) -> None:
    m = metrics_values(result)
    for key in ("honest_delivery_rate", "honest_within_deadline_rate", "mesh_recovery_seconds"):
        assert key in m and key + "_scoring_off" in m
    assert m["sybil_to_honest_connection_ratio"] == round((12 * 16 / 20) / 8, 3)
    assert m["honest_within_deadline_rate"] == 1.0


def test_scenario_metrics_are_reproducible() -> None:
    scenario = parse_scenario(_scenario(4))
    first = run_checked(scenario, seed=4, check=_has_both)
    second = run_checked(scenario, seed=4, check=_has_both)
    assert metrics_values(first) == metrics_values(second)
    assert first.trace_hash == second.trace_hash
    assert first.events >= 2 * 6  # the workload's state every 5 s, for both runs
    other = run_checked(scenario, seed=5, check=_has_both)
    assert other.trace_hash != first.trace_hash
    assert (
        metrics_values(other)["honest_latency_p50_ms"]
        != metrics_values(first)["honest_latency_p50_ms"]
    )


def test_example_files_state_the_setting() -> None:
    files = (
        ("", 100, 0.5, 5.0),
        ("-10x", 200, 0.5, 10.0),
        ("-20x", 400, 0.5, 20.0),
        ("-warm", 200, 10.0, 10.0),
    )
    for suffix, sybils, start, ratio in files:
        scenario = load_scenario(EXAMPLES / f"gossipsub-sybil{suffix}.toml")
        cfg = scenario.workload_settings("pubsub_sybil")
        assert isinstance(cfg, PubsubSybilConfig)
        assert (cfg.honest, cfg.honest_peers, cfg.sybils, cfg.sybils_at) == (100, 8, sybils, start)
        assert cfg.sybils * cfg.sybil_peers / (cfg.honest * 2 * cfg.honest_peers) == ratio
        assert cfg.run_for - cfg.flash_at >= 120.0  # two virtual minutes after the flash
        assert scenario.duration > cfg.run_for and scenario.nodes == 1
