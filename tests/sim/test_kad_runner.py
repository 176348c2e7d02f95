"""Runner features the DHT scenarios rely on: the ``replace`` timeline action (nodes come back
as new peers), the ``NodeStarted`` / ``NodeStopped`` workload events, ``dial_address`` and
connection trimming by watermarks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import pytest

from p2pstack.interfaces import Service
from p2pstack.roots.scenarios import (
    WORKLOADS,
    MetricValue,
    NodeInfo,
    NodeStarted,
    NodeStopped,
    ScenarioError,
    SimContext,
    WorkloadType,
    parse_scenario,
    run_scenario,
)


@attrs.frozen(kw_only=True)
class WatchConfig:
    pass


class WatchWorkload:
    """Records every start and stop and the dial address at each start."""

    def __init__(self, config: WatchConfig, sim: SimContext) -> None:
        self.sim = sim
        self.events: list[tuple[str, int, int]] = []
        self.addresses: dict[tuple[int, int], str | None] = {}

    def services(self, node: NodeInfo) -> Sequence[Service]:
        return []

    async def run_node(self, index: int) -> None:
        return

    def on_event(self, index: int, event: object) -> None:
        match event:
            case NodeStarted(index=i, generation=g, host=host):
                assert host is self.sim.host(i)
                self.events.append(("start", i, g))
                self.addresses[(i, g)] = self.sim.dial_address(i)
            case NodeStopped(index=i, generation=g):
                assert self.sim.host(i) is None
                self.events.append(("stop", i, g))
            case _:
                pass

    def metrics(self) -> Mapping[str, MetricValue]:
        return {}

    def summary_rows(self) -> Sequence[tuple[str, str]]:
        return []

    def plot(self, out_dir: Path, title: str) -> Sequence[Path]:
        return []


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(WORKLOADS, "watch", WorkloadType("watch", WatchConfig, WatchWorkload))


def test_replace_brings_nodes_back_as_new_peers_in_turn(watch: None) -> None:
    sc = parse_scenario(
        {
            "nodes": 6,
            "duration": 12.0,
            "security": "plaintext",
            "services": ["watch"],
            "bootstrap": {"peers": 2, "redial_interval": 1.0},
            "timeline": [{"at": 5.0, "action": "replace", "nodes": ["2-4"], "over": 3.0}],
        }
    )
    result = run_scenario(sc, seed=3, keep_trace=100_000)
    w = result.workload(WatchWorkload)
    starts = [(i, g) for kind, i, g in w.events if kind == "start"]
    stops = [(i, g) for kind, i, g in w.events if kind == "stop"]
    assert sorted(starts) == sorted([(i, 0) for i in range(1, 7)] + [(2, 1), (3, 1), (4, 1)])
    assert sorted(stops) == [(2, 0), (3, 0), (4, 0)]
    for i in (2, 3, 4):
        old, new = w.addresses[(i, 0)], w.addresses[(i, 1)]
        assert old and new and old != new  # same address, new peer ID
        assert old.split("/p2p/")[0] == new.split("/p2p/")[0]
    replaced = [line for line in result.trace_lines if '"ev":"replaced"' in line]
    times = [float(line.split('"t":')[1].split(",")[0].rstrip("}")) for line in replaced]
    assert len(replaced) == 3 and times == pytest.approx([5.0, 6.0, 7.0])
    assert result.metrics.values()["faults_applied"] == 1
    # The newcomers reconnect through the runner's redial: the network is whole again.
    assert result.metrics.values()["nodes_up_final"] == 6


def test_replace_is_validated() -> None:
    with pytest.raises(ScenarioError, match=r"nodes must be in 1\.\.4"):
        parse_scenario({"nodes": 4, "timeline": [{"at": 1.0, "action": "replace", "nodes": [5]}]})


def test_connection_watermarks_trim_and_are_validated() -> None:
    base = {
        "nodes": 10,
        "duration": 40.0,
        "security": "plaintext",
        "services": [],
        "bootstrap": {"peers": 9, "redial_interval": 0.0},
    }
    untrimmed = run_scenario(parse_scenario(base), seed=1).metrics.values()
    trimmed_sc = parse_scenario(
        {**base, "network": {"conn_low_water": 2, "conn_high_water": 4, "conn_grace": 5.0}}
    )
    trimmed = run_scenario(trimmed_sc, seed=1).metrics.values()
    assert untrimmed["connections_final"] == 45  # every pair, once
    assert (final := trimmed["connections_final"]) is not None and final < 25
    with pytest.raises(ScenarioError, match="conn_low_water"):
        parse_scenario({"network": {"conn_low_water": 5, "conn_high_water": 4}})
