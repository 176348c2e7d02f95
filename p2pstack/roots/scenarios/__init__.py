"""Simulation scenarios (a composition root): the TOML/Python scenario model, the runner on the
virtual network and clock, the workload registry with the built-in ``identify``, ``ping``,
``kad``, ``kad_churn``, ``pubsub``, ``pubsub_sybil``, ``membership``, ``load_balance`` and
``nat_traversal`` workloads, metrics, summary and plots, and QUIC over the simulated network's
datagrams (docs/simulation.md)."""

from p2pstack.roots.scenarios._builtin import (
    IdentifyConfig,
    IdentifyWorkload,
    PingConfig,
    PingWorkload,
)
from p2pstack.roots.scenarios._kad import KadLookupsConfig
from p2pstack.roots.scenarios._kad_churn import KadChurnConfig, KadChurnWorkload
from p2pstack.roots.scenarios._kad_lookups import KadLookupsWorkload
from p2pstack.roots.scenarios._load_balance import LoadBalanceConfig, LoadBalanceWorkload
from p2pstack.roots.scenarios._membership import MembershipWorkload
from p2pstack.roots.scenarios._membership_run import MembershipSimConfig
from p2pstack.roots.scenarios._metrics import Metrics
from p2pstack.roots.scenarios._model import (
    ACTIONS,
    Action,
    BootstrapConfig,
    NatBoxConfig,
    NetworkConfig,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_scenario,
)
from p2pstack.roots.scenarios._nat_traversal import NatTraversalConfig, NatTraversalWorkload
from p2pstack.roots.scenarios._pubsub import PubsubWorkload
from p2pstack.roots.scenarios._pubsub_base import PubsubNodes, PubsubSimConfig
from p2pstack.roots.scenarios._pubsub_sybil import PubsubSybilWorkload
from p2pstack.roots.scenarios._pubsub_sybil_config import PubsubSybilConfig
from p2pstack.roots.scenarios._quic import SimQuicSocket, sim_quic_sockets, sim_quic_transport
from p2pstack.roots.scenarios._runner import SimResult, run_scenario
from p2pstack.roots.scenarios._workload import (
    NET_ERRORS,
    WORKLOADS,
    MetricValue,
    NodeInfo,
    NodeStarted,
    NodeStopped,
    SimContext,
    Workload,
    WorkloadType,
    error_name,
    register_workload,
)

__all__ = [
    "ACTIONS",
    "NET_ERRORS",
    "WORKLOADS",
    "Action",
    "BootstrapConfig",
    "IdentifyConfig",
    "IdentifyWorkload",
    "KadChurnConfig",
    "KadChurnWorkload",
    "KadLookupsConfig",
    "KadLookupsWorkload",
    "LoadBalanceConfig",
    "LoadBalanceWorkload",
    "MembershipSimConfig",
    "MembershipWorkload",
    "MetricValue",
    "Metrics",
    "NatBoxConfig",
    "NatTraversalConfig",
    "NatTraversalWorkload",
    "NetworkConfig",
    "NodeInfo",
    "NodeStarted",
    "NodeStopped",
    "PingConfig",
    "PingWorkload",
    "PubsubNodes",
    "PubsubSimConfig",
    "PubsubSybilConfig",
    "PubsubSybilWorkload",
    "PubsubWorkload",
    "Scenario",
    "ScenarioError",
    "SimContext",
    "SimQuicSocket",
    "SimResult",
    "Workload",
    "WorkloadType",
    "error_name",
    "load_scenario",
    "parse_scenario",
    "register_workload",
    "run_scenario",
    "sim_quic_sockets",
    "sim_quic_transport",
]
