"""NAT traversal for the default stack (a composition root): the transports hole punching needs,
the circuit relay transport, and the services that make a private node reachable — AutoNAT
(reachability), auto-relay (reserves while private at relays from its configuration, connected
peers and the DHT; advertises its circuit addresses through ``host.addresses``) and DCUtR
(offers ``host.addresses``, upgrades inbound relayed connections). docs/nat.md, "Putting it
together"."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from p2pstack.interfaces import Service, Transport, UpgradedTransport
from p2pstack.roots.autonat import autonat_services
from p2pstack.roots.relay_discovery import dht_relay_candidates
from protocols.autonat import AutoNATConfig
from protocols.dcutr import Dcutr, PunchSockets
from protocols.relay import AutoRelay, AutoRelayConfig, CircuitRelayTransport, RelayCandidates
from transports.memory import MemoryTransport
from transports.quic import QuicTransport, open_udp_socket
from transports.tcp import TcpTransport

__all__ = ["NatTraversal", "nat_traversal"]


@attrs.frozen
class NatTraversal:
    """What ``open_default_host`` takes: ``transports=``, ``circuit=`` and extra services."""

    transports: list[Transport | UpgradedTransport]
    circuit: CircuitRelayTransport
    services: list[Service]


def nat_traversal(
    *,
    autonat: AutoNATConfig | None = None,
    auto_relay: AutoRelayConfig | None = None,
    candidates: RelayCandidates | None = dht_relay_candidates,
    allow_private: bool = False,
    security: Sequence[str] = (),
    muxers: Sequence[str] = (),
    dcutr_attempt_timeout: float = 5.0,
) -> NatTraversal:
    """The parts of a node that becomes reachable from behind a NAT.

    Args:
        autonat: AutoNAT's settings (its defaults if ``None``).
        auto_relay: auto-relay's settings (default: one reservation, only while private).
        candidates: auto-relay's discovery source of relays (default: a lookup in the host's
            DHT, nothing if it runs none; ``None``: configured relays and connected peers only).
        allow_private: DCUtR dials private and loopback addresses a peer sends (test networks).
        security: security channel names of AutoNAT's dial-back hosts.
        muxers: muxer names of AutoNAT's dial-back hosts.
        dcutr_attempt_timeout: seconds each hole-punch attempt may take.

    Returns:
        QUIC (with punch sockets), TCP (with port reuse) and memory transports, the circuit
        transport, and the AutoNAT, auto-relay and DCUtR services.
    """
    sockets = PunchSockets(open_udp_socket)
    circuit = CircuitRelayTransport()
    relay_config = auto_relay or AutoRelayConfig(reservations=1)
    services: list[Service] = [
        *autonat_services(autonat, security=security, muxers=muxers),
        AutoRelay(circuit, relay_config, candidates=candidates),
        Dcutr(
            allow_private_addresses=allow_private,
            udp_punch=sockets.punch,
            attempt_timeout=dcutr_attempt_timeout,
        ),
    ]
    transports: list[Transport | UpgradedTransport] = [
        QuicTransport(socket_factory=sockets),
        TcpTransport(port_reuse=True),
        MemoryTransport(),
    ]
    return NatTraversal(transports=transports, circuit=circuit, services=services)
