"""A simulated network transport for deterministic simulations: latency, bandwidth, loss,
partitions, NAT-like reachability, crashes and drops (docs/simulation.md)."""

from transports.simnet._link import Latency, LinkDirection, LinkSpec
from transports.simnet._network import (
    DEFAULT_BACKLOG,
    DEFAULT_WINDOW,
    SimConnection,
    SimListener,
    SimNetwork,
    SimTransport,
    node_of,
)

__all__ = [
    "DEFAULT_BACKLOG",
    "DEFAULT_WINDOW",
    "Latency",
    "LinkDirection",
    "LinkSpec",
    "SimConnection",
    "SimListener",
    "SimNetwork",
    "SimTransport",
    "node_of",
]
