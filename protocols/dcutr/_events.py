"""Events of the DCUtR service, published on the host's event bus."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import attrs

if TYPE_CHECKING:
    from p2pstack.connection import Connection
    from p2pstack.identity import PeerId

__all__ = ["HolePunchFinished"]


@attrs.frozen(kw_only=True)
class HolePunchFinished:
    """A DCUtR upgrade ended, on either side.

    Attributes:
        peer_id: the other peer.
        outcome: ``"direct"`` (a direct connection opened) or ``"failed"``.
        role: ``"initiator"`` (we opened the stream: the spec's B) or ``"responder"``.
        attempts: CONNECT/SYNC rounds made.
        rtt: the relayed round trip the initiator measured in the last round, in seconds.
        transport: the direct connection's transport (``"tcp"``, ``"quic-v1"``).
        connection: the direct connection.
        reason: why it failed.
    """

    peer_id: PeerId
    outcome: Literal["direct", "failed"]
    role: Literal["initiator", "responder"]
    attempts: int
    rtt: float | None = None
    transport: str | None = None
    connection: Connection | None = None
    reason: str = ""
