"""One RESERVE exchange with a relay, and the reservation events
(https://github.com/libp2p/specs/blob/master/relay/circuit-v2.md#reservation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import attrs

from p2pstack.errors import P2PTimeoutError
from protocols.relay._client_wire import HeldReservation, expect_ok, reservation_of
from protocols.relay._wire import HOP_PROTOCOL_ID, HopMessage, HopType, read_hop, write_hop

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.connection import Connection
    from p2pstack.identity import PeerId

__all__ = ["ReservationLost", "ReservationMade", "ReservationRefreshed", "reserve"]


@attrs.frozen(kw_only=True)
class ReservationMade:
    """A relay gave us a slot; we are reachable at ``addrs`` (``.../p2p-circuit``)."""

    relay: PeerId
    addrs: tuple[Multiaddr, ...]
    expire: int


@attrs.frozen(kw_only=True)
class ReservationRefreshed:
    """A reservation was renewed before it expired."""

    relay: PeerId
    addrs: tuple[Multiaddr, ...]
    expire: int


@attrs.frozen(kw_only=True)
class ReservationLost:
    """A reservation ended (refused on refresh, relay gone, expired); it is retried."""

    relay: PeerId
    reason: str


async def reserve(conn: Connection, *, timeout: float) -> HeldReservation:
    """Ask the relay at the other end of ``conn`` for a reservation.

    Raises:
        RelayStatusError: the relay refused (``RESERVATION_REFUSED``, ...).
        RemoteProtocolError: the answer is malformed.
        P2PTimeoutError: no answer within ``timeout``.
        P2PError, anyio.EndOfStream, anyio.BrokenResourceError: the stream failed.
    """
    try:
        with anyio.fail_after(timeout):
            stream = await conn.new_stream([HOP_PROTOCOL_ID])
            async with stream:
                await write_hop(stream, HopMessage(type=HopType.RESERVE))
                answer = await read_hop(stream)
    except TimeoutError as exc:
        if isinstance(exc, P2PTimeoutError):
            raise
        raise P2PTimeoutError(f"RESERVE: no answer within {timeout:g} s") from None
    expect_ok(answer, f"RESERVE at {conn.remote_peer}")
    return reservation_of(conn.remote_peer, answer)
