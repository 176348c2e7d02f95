"""The ``kad`` workload on small networks: lookups with the real DHT find the live server
closest to a random key, a partition makes them miss it (so the success rate can fail), nodes
that join by bootstrap are found too, the outputs hold the issue's keys, and the same seed
gives a byte-identical metrics.json."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from p2pstack.roots.scenarios import (
    KadLookupsWorkload,
    Scenario,
    SimResult,
    parse_scenario,
    run_scenario,
)
from p2pstack.roots.scenarios._report import metrics_values, write_plots, write_summary
from p2pstack.roots.scenarios.testing import run_checked

NODES = 40


def scenario(**kad: Any) -> dict[str, Any]:
    return {
        "name": "kad-small",
        "nodes": NODES,
        "duration": 30.0,
        "security": "plaintext",
        "services": ["kad"],
        "bootstrap": {"peers": 0},
        "network": {"latency": 0.005, "latency_dist": "uniform", "latency_b": 0.05},
        "kad": {
            "join": "oracle",
            "join_at": 1.0,
            "lookups": 20,
            "lookup_at": 3.0,
            "lookup_spread": 12.0,
            "request_timeout": 2.0,
            "query_timeout": 10.0,
            **kad,
        },
    }


def run(sc: Scenario, request: pytest.FixtureRequest, check: Any) -> SimResult:
    return run_checked(sc, seed=5, check=check, test_id=request.node.nodeid)


def _healthy(result: SimResult) -> None:
    m = metrics_values(result)
    assert m["lookups"] == 20 and m["lookups_failed"] == 0
    assert m["lookup_success_rate"] == 1.0
    assert isinstance(m["lookup_k_closest_recall"], float) and m["lookup_k_closest_recall"] >= 0.95
    p50, p90 = m["lookup_hops_p50"], m["lookup_hops_p90"]
    assert isinstance(p50, int) and isinstance(p90, int)
    assert 1 <= p50 <= p90 <= math.ceil(math.log2(NODES))
    assert isinstance(m["messages_per_lookup"], float) and m["messages_per_lookup"] >= 20
    hops = {k: v for k, v in m.items() if k.startswith("lookup_hops_count_")}
    assert sum(v for v in hops.values() if isinstance(v, int)) == 20


def test_lookups_on_a_converged_dht_find_the_closest_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    result = run(parse_scenario(scenario()), request, _healthy)
    write_summary(result, tmp_path)
    assert {p.name for p in write_plots(result, tmp_path)} >= {"kad-hops.png"}
    values = json.loads((tmp_path / "metrics.json").read_text())
    assert values["lookup_hops_log2_n"] == 6
    assert "ceil(log2 N) = 6" in (tmp_path / "summary.txt").read_text()


def _missing(result: SimResult) -> None:
    m = metrics_values(result)
    rate = m["lookup_success_rate"]
    # From each half, the closest server is on the other side about half the time.
    assert isinstance(rate, float) and 0.2 <= rate <= 0.8
    assert result.workload(KadLookupsWorkload).errors == {}


def test_a_partition_makes_lookups_miss_the_closest_server(
    request: pytest.FixtureRequest,
) -> None:
    data = scenario()
    data["network"] |= {"dial_timeout": 2.0}
    data["timeline"] = [{"at": 2.0, "action": "partition", "groups": ["1-20", "21-40"]}]
    run(parse_scenario(data), request, _missing)


def _joined(result: SimResult) -> None:
    m = metrics_values(result)
    assert m["kad_joins"] == 20 and m["kad_errors"] == 0
    assert m["lookup_success_rate"] == 1.0


def test_nodes_that_bootstrap_one_by_one_are_found(request: pytest.FixtureRequest) -> None:
    data = scenario(join="bootstrap", join_spread=10.0, lookups=10, lookup_at=14.0)
    data |= {"nodes": 20, "services": ["identify", "kad"]}
    run(parse_scenario(data), request, _joined)


def test_the_same_seed_gives_an_identical_metrics_json(tmp_path: Path) -> None:
    sc = parse_scenario(scenario(lookups=10))
    first, again = tmp_path / "first", tmp_path / "again"
    for out in (first, again):
        out.mkdir()
        write_summary(run_scenario(sc, seed=9), out)
    assert (first / "metrics.json").read_bytes() == (again / "metrics.json").read_bytes()
