"""A simulated network transport for deterministic simulations: IPv4/IPv6 addresses, TCP-like
connections and UDP-like datagrams, latency, bandwidth, loss, partitions, NAT and firewall
boxes, crashes and drops (docs/simulation.md)."""

from transports.simnet._addresses import (
    AddressPlan,
    Endpoint,
    IPAddress,
    format_endpoint,
    parse_endpoint,
)
from transports.simnet._datagram import MAX_DATAGRAM, DatagramStatistics, SimDatagramSocket
from transports.simnet._link import Latency, LinkDirection, LinkSpec
from transports.simnet._nat import BEHAVIOURS, PORT_ALLOCATIONS, NatBox, NatMapping, NatSpec
from transports.simnet._network import DEFAULT_BACKLOG, DEFAULT_WINDOW, SimNetwork
from transports.simnet._stream import SimConnection
from transports.simnet._transport import SimListener, SimTransport, node_of

__all__ = [
    "BEHAVIOURS",
    "DEFAULT_BACKLOG",
    "DEFAULT_WINDOW",
    "MAX_DATAGRAM",
    "PORT_ALLOCATIONS",
    "AddressPlan",
    "DatagramStatistics",
    "Endpoint",
    "IPAddress",
    "Latency",
    "LinkDirection",
    "LinkSpec",
    "NatBox",
    "NatMapping",
    "NatSpec",
    "SimConnection",
    "SimDatagramSocket",
    "SimListener",
    "SimNetwork",
    "SimTransport",
    "format_endpoint",
    "node_of",
    "parse_endpoint",
]
