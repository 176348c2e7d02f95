"""The pubsub example scenarios: ``gossipsub-1000.toml`` holds the issue's setting (1,000 nodes,
a steady publish rate, latency and loss, gossipsub and floodsub side by side) and, shrunk to
CI size, delivers everything with gossipsub hop counts near log_5 N and fewer duplicates than
floodsub; metrics.json is identical across processes with different hash seeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from p2pstack.roots.scenarios import PubsubSimConfig, SimResult, load_scenario
from p2pstack.roots.scenarios._report import metrics_values
from p2pstack.roots.scenarios.testing import run_checked

EXAMPLES = Path(__file__).parents[2] / "examples" / "sim"


def test_the_1000_node_file_is_the_issue_setting() -> None:
    sc = load_scenario(EXAMPLES / "gossipsub-1000.toml")
    cfg = sc.workload_settings("pubsub")
    assert isinstance(cfg, PubsubSimConfig)
    assert sc.nodes == 1000 and sc.services == ("pubsub",)
    assert cfg.routers == ("gossipsub", "floodsub")
    assert cfg.loss > 0 and cfg.latency_b > cfg.latency > 0
    assert cfg.messages >= 50 and cfg.publish_rate > 0
    assert sc.duration >= cfg.end  # the run is long enough for the workload to finish
    big = load_scenario(EXAMPLES / "gossipsub-10000.toml")
    assert big.nodes == 10_000 and big.duration >= big.workload_settings("pubsub").end


def test_the_1000_node_file_shrunk(request: pytest.FixtureRequest) -> None:
    sc = load_scenario(EXAMPLES / "gossipsub-1000.toml")
    cfg = attrs.evolve(sc.workload_settings("pubsub"), messages=8, publish_rate=4.0)
    sc = attrs.evolve(sc, nodes=150, settings={"pubsub": cfg})

    def check(result: SimResult) -> None:
        m = metrics_values(result)
        assert m["pubsub_finished"] is True
        assert m["delivery_rate"] == 1.0 and m["floodsub_delivery_rate"] == 1.0
        hops, log5n = m["hops_p50"], m["hops_log5_n"]
        assert isinstance(hops, int) and isinstance(log5n, float)
        assert abs(hops - log5n) <= 2  # mesh forwarding: about log_5 N hops
        g, f = m["duplicates_per_delivery"], m["floodsub_duplicates_per_delivery"]
        assert isinstance(g, float) and isinstance(f, float) and 1.0 < g < f
        g_bytes, f_bytes = m["bytes_per_node"], m["floodsub_bytes_per_node"]
        assert isinstance(g_bytes, float) and isinstance(f_bytes, float) and g_bytes > 0

    run_checked(sc, seed=1, check=check, test_id=request.node.nodeid)


def _cli(scenario: Path, out: Path, env_hash: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": env_hash}
    args = [str(scenario), "--out", str(out), "-q", "--no-plots"]
    return subprocess.run(
        [sys.executable, "-m", "p2pstack.roots.cli", "sim", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_metrics_are_identical_across_processes(tmp_path: Path) -> None:
    text = (EXAMPLES / "gossipsub-1000.toml").read_text()
    small = text.replace("nodes = 1000", "nodes = 40").replace("messages = 60", "messages = 4")
    assert small != text
    scenario = tmp_path / "gossipsub-1000.toml"
    scenario.write_text(small)
    one = _cli(scenario, tmp_path / "a", "1")
    two = _cli(scenario, tmp_path / "b", "2")
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    first = (tmp_path / "a" / "metrics.json").read_bytes()
    assert first == (tmp_path / "b" / "metrics.json").read_bytes()
    assert json.loads(first)["deliveries"] == 4 * 39
