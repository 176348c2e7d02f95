"""``p2pstack node --dcutr``: the DCUtR service with the transports hole punching needs (TCP
with port reuse, QUIC whose sockets can send punch packets), and its JSON ``holepunch``
events (docs/nat.md, "Hole punching (DCUtR)")."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from protocols.dcutr import Dcutr, HolePunchFinished, PunchSockets
from transports.memory import MemoryTransport
from transports.quic import QuicTransport, open_udp_socket
from transports.tcp import TcpTransport

if TYPE_CHECKING:
    from p2pstack.interfaces import Transport, UpgradedTransport

__all__ = ["dcutr_setup", "holepunch_event"]


def dcutr_setup(
    args: argparse.Namespace,
) -> tuple[list[Transport | UpgradedTransport], Dcutr]:
    """The node's transports and DCUtR service for ``--dcutr``.

    Args:
        args: ``dcutr_allow_private``.

    Returns:
        The transports (QUIC with punch sockets, TCP with port reuse, memory) and the service.
    """
    sockets = PunchSockets(open_udp_socket)
    transports: list[Transport | UpgradedTransport] = [
        QuicTransport(socket_factory=sockets),
        TcpTransport(port_reuse=True),
        MemoryTransport(),
    ]
    service = Dcutr(allow_private_addresses=args.dcutr_allow_private, udp_punch=sockets.punch)
    return transports, service


def holepunch_event(event: object) -> tuple[str, str, dict[str, object]] | None:
    """The ``holepunch`` event of a ``HolePunchFinished`` (``None`` for other events)."""
    if not isinstance(event, HolePunchFinished):
        return None
    rtt_ms = None if event.rtt is None else round(event.rtt * 1000, 3)
    fields: dict[str, object] = {
        "peer_id": str(event.peer_id),
        "outcome": event.outcome,
        "role": event.role,
        "attempts": event.attempts,
        "rtt_ms": rtt_ms,
        "transport": event.transport,
    }
    if event.connection is not None:
        fields["addr"] = str(event.connection.remote_multiaddr)
    if event.reason:
        fields["reason"] = event.reason
    text = f"hole punch with {event.peer_id}: {event.outcome} after {event.attempts} attempt(s)"
    if event.outcome == "direct":
        text += f" over {event.transport}"
    elif event.reason:
        text += f" ({event.reason})"
    return "holepunch", text, fields
