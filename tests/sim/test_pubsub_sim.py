"""The ``pubsub`` workload on small networks: gossipsub and floodsub (the real router cores)
deliver every message to every node, gossipsub with fewer duplicates; loss slows deliveries
without losing them; the outputs hold the issue's keys; the same seed gives a byte-identical
metrics.json and another seed a different one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from p2pstack.roots.scenarios import PubsubWorkload, Scenario, SimResult, parse_scenario
from p2pstack.roots.scenarios._report import metrics_values, write_plots, write_summary
from p2pstack.roots.scenarios.testing import run_checked

NODES = 60
MESSAGES = 12


def scenario(**pubsub: Any) -> Scenario:
    return parse_scenario(
        {
            "name": "pubsub-small",
            "nodes": NODES,
            "duration": 30.0,
            "security": "plaintext",
            "services": ["pubsub"],
            "bootstrap": {"peers": 0},
            "pubsub": {
                "messages": MESSAGES,
                "publish_at": 4.0,
                "publish_rate": 4.0,
                "drain": 4.0,
                **pubsub,
            },
        }
    )


def run(sc: Scenario, request: pytest.FixtureRequest, check: Any, seed: int = 3) -> SimResult:
    return run_checked(sc, seed=seed, check=check, test_id=request.node.nodeid)


def test_both_routers_deliver_everything(request: pytest.FixtureRequest) -> None:
    def check(result: SimResult) -> None:
        m = metrics_values(result)
        assert m["pubsub_finished"] is True
        for p in ("", "floodsub_"):
            assert m[f"{p}messages_published"] == MESSAGES
            assert m[f"{p}deliveries"] == MESSAGES * (NODES - 1)
            assert m[f"{p}delivery_rate"] == 1.0
            assert m[f"{p}protocol_errors"] == 0
            hops = m[f"{p}hops_p50"]
            assert isinstance(hops, int) and 1 <= hops <= 5
        # Floodsub sends every message over every link; the gossipsub mesh (D = 6) far less.
        g, f = m["duplicates_per_delivery"], m["floodsub_duplicates_per_delivery"]
        assert isinstance(g, float) and isinstance(f, float) and g < f
        lo, hi = m["mesh_degree_min"], m["mesh_degree_max"]
        assert isinstance(lo, int) and isinstance(hi, int) and 4 <= lo <= hi <= 12

    result = run(scenario(), request, check)
    workload = result.workload(PubsubWorkload)
    rec = workload.recorders["gossipsub"]
    # Every delivery's hop count is one more than its sender's: never 0 (only the publisher).
    assert min(rec.hop_counts()) == 1
    assert rec.mesh and rec.mesh[0].mean < rec.mesh[-1].mean  # the mesh forms over time


def test_loss_delays_but_delivers(request: pytest.FixtureRequest) -> None:
    def check(result: SimResult) -> None:
        m = metrics_values(result)
        assert m["delivery_rate"] == 1.0
        assert m["floodsub_delivery_rate"] == 1.0

    clean = run(scenario(loss=0.0), request, check)
    lossy = run(scenario(loss=0.2), request, check)
    p99 = metrics_values(clean)["latency_p99_ms"]
    lossy_p99 = metrics_values(lossy)["latency_p99_ms"]
    assert isinstance(p99, float) and isinstance(lossy_p99, float)
    assert lossy_p99 > p99  # a lost write waits for its retransmission (200 ms and up)


def test_outputs_and_same_seed_same_metrics(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    def check(result: SimResult) -> None:
        assert metrics_values(result)["delivery_rate"] == 1.0

    sc = scenario(routers=["gossipsub"], messages=4)
    first = run(sc, request, check)
    again = run(sc, request, check)
    other = run(sc, request, check, seed=4)
    dumps = [json.dumps(metrics_values(r), sort_keys=True) for r in (first, again, other)]
    assert dumps[0] == dumps[1] and first.trace_hash == again.trace_hash
    assert dumps[0] != dumps[2]
    m = metrics_values(first)
    for key in (
        "delivery_rate",
        "latency_p50_ms",
        "latency_p99_ms",
        "hops_p50",
        "hops_p99",
        "duplicates_per_delivery",
        "bytes_per_node",
    ):
        assert isinstance(m[key], int | float) and not isinstance(m[key], bool), key
    assert not any(k.startswith("floodsub_") for k in m)
    plots = write_plots(first, tmp_path)
    names = {p.name for p in plots}
    assert {
        "pubsub-latency-cdf.png",
        "pubsub-mesh-degree-gossipsub.png",
        "pubsub-hops.png",
    } <= names
    assert all(p.stat().st_size > 1000 for p in plots)
    write_summary(first, tmp_path)
    summary = (tmp_path / "summary.txt").read_text()
    assert "duplicates per delivery" in summary and "log_5 N" in summary


def test_bad_settings_are_refused() -> None:
    with pytest.raises(Exception, match="unknown routers"):
        scenario(routers=["randomsub"])
    with pytest.raises(Exception, match="publish_rate"):
        scenario(publish_rate=0.0)
