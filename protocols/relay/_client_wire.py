"""The circuit relay v2 messages as the client side uses them: protocol IDs, status codes mapped
to typed errors, limits and reservations read from the generated protobuf classes
(https://github.com/libp2p/specs/blob/master/relay/circuit-v2.md#wire-format).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
from multiaddr import Multiaddr
from multiaddr.exceptions import Error as MultiaddrError

from p2pstack.errors import RemoteProtocolError, TransportError
from p2pstack.interfaces import ConnectionLimits
from protocols.relay._wire import HOP_PROTOCOL_ID, MAX_MESSAGE_SIZE, STOP_PROTOCOL_ID
from protocols.relay.pb import circuit_pb2 as pb

if TYPE_CHECKING:
    from p2pstack.identity import PeerId

__all__ = [
    "HOP_PROTOCOL_ID",
    "MAX_MESSAGE_SIZE",
    "STOP_PROTOCOL_ID",
    "HeldReservation",
    "RelayStatusError",
    "limits_of",
    "reservation_of",
    "status_error",
    "status_name",
]

#: Most relay addresses kept from one reservation.
MAX_RESERVATION_ADDRS = 32


def status_name(status: int) -> str:
    """The spec's name of a status code (``NO_RESERVATION``), or ``STATUS_<n>`` if unknown."""
    try:
        return pb.Status.Name(status)  # type: ignore[arg-type]  # any int may come off the wire
    except ValueError:
        return f"STATUS_{status}"


class RelayStatusError(TransportError):
    """The relay (or the target, through ``/stop``) answered with a status other than ``OK``.

    Attributes:
        status: the status code (``204`` for ``NO_RESERVATION``, ...).
        name: its name in the spec.
    """

    def __init__(self, status: int, what: str) -> None:
        self.status = status
        self.name = status_name(status)
        super().__init__(f"{what}: relay answered {self.name} ({status})")


def status_error(status: int, what: str) -> RelayStatusError:
    """The typed error for a refusal ``status`` of the action ``what``."""
    return RelayStatusError(status, what)


def limits_of(limit: pb.Limit | None) -> ConnectionLimits | None:
    """The connection limits a ``Limit`` message sets (``None`` if it sets none)."""
    if limit is None:
        return None
    duration = float(limit.duration) if limit.HasField("duration") and limit.duration else None
    data = int(limit.data) if limit.HasField("data") and limit.data else None
    if duration is None and data is None:
        return None
    return ConnectionLimits(duration=duration, data=data)


@attrs.frozen(kw_only=True)
class HeldReservation:
    """A slot the relay keeps for us (``HopMessage.reservation`` of a RESERVE answer).

    Attributes:
        relay: the relay's peer ID.
        expire: Unix time (seconds) at which the reservation ends.
        addrs: the relay's addresses, as it gave them (without ``/p2p-circuit``).
        voucher: the signed reservation voucher, as received (empty if none was sent).
        limits: the limits each relayed connection will have.
    """

    relay: PeerId
    expire: int
    addrs: tuple[Multiaddr, ...]
    voucher: bytes
    limits: ConnectionLimits | None


def reservation_of(relay: PeerId, message: pb.HopMessage) -> HeldReservation:
    """Read the reservation of an ``OK`` answer to RESERVE.

    Raises:
        RemoteProtocolError: the answer has no reservation or no expiry.
    """
    if not message.HasField("reservation") or not message.reservation.HasField("expire"):
        raise RemoteProtocolError("RESERVE answered OK without a reservation expiry")
    addrs: list[Multiaddr] = []
    for raw in message.reservation.addrs[:MAX_RESERVATION_ADDRS]:
        try:
            addr = Multiaddr(raw)
            names = [p.name for p in addr.protocols()]  # the bytes are decoded lazily
            str(addr)
        except (MultiaddrError, ValueError, TypeError, LookupError):
            continue  # an address we cannot read is not advertised
        if "p2p-circuit" not in names:
            addrs.append(addr)
    return HeldReservation(
        relay=relay,
        expire=int(message.reservation.expire),
        addrs=tuple(addrs),
        voucher=bytes(message.reservation.voucher),
        limits=limits_of(message.limit if message.HasField("limit") else None),
    )
