"""Simulation scenarios (a composition root): the TOML/Python scenario model, the runner on the
virtual network and clock, metrics, summary and plots (docs/simulation.md)."""

from p2pstack.roots.scenarios._metrics import Metrics
from p2pstack.roots.scenarios._model import (
    ACTIONS,
    Action,
    BootstrapConfig,
    NatBoxConfig,
    NetworkConfig,
    PingConfig,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_scenario,
)
from p2pstack.roots.scenarios._runner import SimResult, run_scenario

__all__ = [
    "ACTIONS",
    "Action",
    "BootstrapConfig",
    "Metrics",
    "NatBoxConfig",
    "NetworkConfig",
    "PingConfig",
    "Scenario",
    "ScenarioError",
    "SimResult",
    "load_scenario",
    "parse_scenario",
    "run_scenario",
]
