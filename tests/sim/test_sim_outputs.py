"""Simulation workloads and outputs: a workload added without touching the runner, the flat
metrics.json, readable plot axes, and runs interrupted with Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import attrs
import pytest

from p2pstack.interfaces import Service
from p2pstack.roots.scenarios import (
    WORKLOADS,
    BootstrapConfig,
    MetricValue,
    NodeInfo,
    PingWorkload,
    Scenario,
    ScenarioError,
    SimContext,
    WorkloadType,
    parse_scenario,
    register_workload,
    run_scenario,
)
from p2pstack.roots.scenarios._plots import new_plot, sensible_y
from p2pstack.roots.scenarios._report import metrics_values

EXAMPLES = Path(__file__).parents[2] / "examples" / "sim"
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


@attrs.frozen(kw_only=True)
class CounterConfig:
    every: float = 5.0


class CounterWorkload:
    """A third-party style workload: counts, every ``every`` seconds, the nodes that are up."""

    def __init__(self, config: CounterConfig, sim: SimContext) -> None:
        self.config = config
        self.sim = sim
        self.ticks: list[int] = []

    def services(self, node: NodeInfo) -> Sequence[Service]:
        return []

    async def run_node(self, index: int) -> None:
        if index != 1:
            return
        while True:
            await anyio.sleep(self.config.every)
            self.ticks.append(sum(1 for i in self.sim.node_indexes if self.sim.host(i)))

    def on_event(self, index: int, event: object) -> None:
        return

    def metrics(self) -> Mapping[str, MetricValue]:
        return {"counter_ticks": len(self.ticks), "counter_last_up": self.ticks[-1]}

    def summary_rows(self) -> Sequence[tuple[str, str]]:
        return [("counter ticks", str(len(self.ticks)))]

    def plot(self, out_dir: Path, title: str) -> Sequence[Path]:
        return []


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        WORKLOADS, "counter", WorkloadType("counter", CounterConfig, CounterWorkload)
    )


def test_a_registered_workload_runs_from_its_toml_table(counter: None) -> None:
    sc = parse_scenario(
        {"nodes": 3, "duration": 21.0, "services": ["counter"], "counter": {"every": 4.0}}
    )
    assert sc.workload_settings("counter") == CounterConfig(every=4.0)
    result = run_scenario(sc, seed=1)
    workload = result.workload(CounterWorkload)
    assert workload.ticks == [3, 3, 3, 3, 3]
    values = metrics_values(result)
    assert (values["counter_ticks"], values["counter_last_up"]) == (5, 3)
    assert "pings_ok" not in values  # ping is not among this scenario's services


def test_workload_tables_are_checked(counter: None) -> None:
    with pytest.raises(ScenarioError, match=r"counter: unknown key 'evry'"):
        parse_scenario({"services": ["counter"], "counter": {"evry": 1.0}})
    with pytest.raises(ScenarioError, match=r"counter.every: expected a number"):
        parse_scenario({"services": ["counter"], "counter": {"every": "often"}})
    with pytest.raises(ScenarioError, match="unknown services"):
        parse_scenario({"services": ["gossip"]})


def test_a_workload_name_cannot_be_taken_twice() -> None:
    with pytest.raises(ValueError, match="ping"):
        register_workload(WorkloadType("ping", CounterConfig, CounterWorkload))
    with pytest.raises(ValueError, match="network"):
        register_workload(WorkloadType("network", CounterConfig, CounterWorkload))


QUICK = Scenario(
    name="quick",
    nodes=4,
    duration=40.0,
    security="plaintext",
    bootstrap=BootstrapConfig(peers=2),
)


def test_metrics_are_flat_snake_case_and_numbers_are_numbers() -> None:
    result = run_scenario(QUICK, seed=2)
    values = metrics_values(result)
    assert all(SNAKE.match(k) for k in values), list(values)
    assert all(isinstance(v, int | float | str | bool) or v is None for v in values.values())
    for key in ("seed", "nodes", "connections_final", "pings_ok", "identify_completions"):
        assert isinstance(values[key], int) and not isinstance(values[key], bool), key
    assert isinstance(values["ping_rtt_p50_ms"], float)
    assert values["pings_ok"] == len(result.workload(PingWorkload).pings)
    assert values["interrupted"] is False
    assert json.loads(json.dumps(values)) == values


def test_a_flat_series_gets_a_readable_axis() -> None:
    values = [40.0 + i * 1e-12 for i in range(20)]  # a constant 40 ms RTT, to float noise
    fig, ax = new_plot()
    ax.scatter(range(20), values)
    fig.canvas.draw()
    # What matplotlib does by itself: a band of about 1e-11 with an offset label.
    assert ax.get_ylim()[1] - ax.get_ylim()[0] < 1e-9
    assert ax.yaxis.get_major_formatter().get_offset() != ""
    bottom, top = sensible_y(ax, values, min_span=1.0)
    assert bottom == 0.0 and top == pytest.approx(44.0)
    fig.canvas.draw()
    assert ax.yaxis.get_major_formatter().get_offset() == ""
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "40" in labels and all("e" not in label for label in labels), labels


def test_an_interrupted_run_keeps_what_it_measured() -> None:
    def interrupt(now: float) -> None:
        if now >= 28.0:
            raise KeyboardInterrupt

    result = run_scenario(QUICK, seed=2, on_advance=interrupt, keep_trace=100_000)
    assert result.interrupted
    assert 28.0 <= result.virtual_seconds < QUICK.duration
    assert result.workload(PingWorkload).pings
    assert json.loads(result.trace_lines[-1])["ev"] == "interrupted"
    assert metrics_values(result)["interrupted"] is True


def test_ctrl_c_on_the_cli_writes_partial_results(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "p2pstack.roots.cli", "sim"),
            *(str(EXAMPLES / "scale-1000.toml"), "--out", str(tmp_path)),
            *("-q", "--no-plots", "--plaintext"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        trace = tmp_path / "trace.jsonl"
        deadline = time.monotonic() + 60
        while not (trace.exists() and trace.stat().st_size > 10_000):
            assert proc.poll() is None and time.monotonic() < deadline, proc.poll()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    assert "interrupted at virtual" in err and str(tmp_path) in err
    assert "Traceback" not in err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["interrupted"] is True
    assert metrics["virtual_seconds"] < metrics["duration_seconds"]
    assert "INTERRUPTED" in (tmp_path / "summary.txt").read_text()
    assert f"trace sha256 {metrics['trace_sha256']}" in out
