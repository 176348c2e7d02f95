"""What the client side adds to the circuit relay v2 messages of :mod:`protocols.relay._wire`:
refusal statuses as typed errors, a relay's ``Limit`` as the host's ``ConnectionLimits`` and the
reservation we hold (https://github.com/libp2p/specs/blob/master/relay/circuit-v2.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from p2pstack.errors import RemoteProtocolError, TransportError
from p2pstack.interfaces import ConnectionLimits
from protocols.relay._wire import HopMessage, HopType, Limit, Status

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.identity import PeerId

__all__ = [
    "HeldReservation",
    "RelayStatusError",
    "expect_ok",
    "limits_of",
    "reservation_of",
    "status_name",
]


def status_name(status: int) -> str:
    """The spec's name of a status code (``NO_RESERVATION``), or ``STATUS_<n>`` if unknown."""
    try:
        return Status(status).name
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


def expect_ok(answer: HopMessage, what: str) -> None:
    """Check that ``answer`` is the relay's ``STATUS`` ``OK`` to the request ``what``.

    Raises:
        RemoteProtocolError: the answer is not a ``STATUS`` message.
        RelayStatusError: the relay refused.
    """
    if answer.type is not HopType.STATUS:
        raise RemoteProtocolError(f"{what} was answered with a message other than STATUS")
    assert answer.status is not None  # decode_hop: a STATUS carries a status
    if answer.status is not Status.OK:
        raise RelayStatusError(answer.status, f"{what} refused")


def limits_of(limit: Limit | None) -> ConnectionLimits | None:
    """The connection limits a ``Limit`` sets (``None`` if it sets none; ``0`` means none)."""
    if limit is None:
        return None
    duration = float(limit.duration) if limit.duration else None
    data = limit.data or None
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


def reservation_of(relay: PeerId, message: HopMessage) -> HeldReservation:
    """Read the reservation of an ``OK`` answer to RESERVE; relayed relay addresses are dropped.

    Raises:
        RemoteProtocolError: the answer has no reservation.
    """
    if message.reservation is None:
        raise RemoteProtocolError("RESERVE answered OK without a reservation expiry")
    rsvp = message.reservation
    return HeldReservation(
        relay=relay,
        expire=rsvp.expire,
        addrs=tuple(a for a in rsvp.addrs if "p2p-circuit" not in str(a)),
        voucher=rsvp.voucher or b"",
        limits=limits_of(message.limit),
    )
