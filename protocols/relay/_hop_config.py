"""The relay (hop) service's configuration and events
(https://github.com/libp2p/specs/blob/master/relay/circuit-v2.md).

Defaults follow go-libp2p's and rust-libp2p's relays: reservations last an hour; a circuit
carries at most 128 KiB each way for at most 2 minutes (js-libp2p's defaults too); 128
reservations in all, 4 per peer (one per connection it reserves on), 8 per IP address; 16
circuits in all, 4 per peer.
"""

from __future__ import annotations

from typing import Any

import attrs

from p2pstack.identity import PeerId
from protocols.relay._wire import Status

__all__ = [
    "CircuitClosed",
    "CircuitOpened",
    "CircuitRefused",
    "RelayConfig",
    "RelayEvent",
    "ReservationAccepted",
    "ReservationRefused",
]


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not (isinstance(value, int | float) and value > 0):
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _fits(bits: int) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
        _positive(instance, attribute, value)
        if value is not None and value >= 1 << bits:
            raise ValueError(f"{attribute.name} must fit in a uint{bits}, got {value}")

    return check


@attrs.frozen(kw_only=True)
class RelayConfig:
    """Limits of a relay.

    Attributes:
        reservation_ttl: seconds a reservation lasts (the client refreshes it before then).
        limit_duration: seconds a circuit may stay open (``None``: unlimited; sent to both ends
            as ``Limit.duration``).
        limit_data: bytes a circuit may carry in each direction before both of its streams are
            reset (``None``: unlimited; ``Limit.data``).
        max_reservations: reservations held at once, all peers together.
        max_reservations_per_peer: reservations one peer holds at once (one per connection).
        max_reservations_per_ip: reservations held at once by peers connected from one IP
            address.
        max_circuits: circuits open at once.
        max_circuits_per_peer: circuits one peer takes part in at once (as source or target).
        buffer_size: most bytes read from one side of a circuit before they are written to the
            other (each circuit holds at most two such buffers).
        stream_timeout: seconds to wait for a request, or for the peer to take an answer.
        connect_timeout: seconds for the target to accept a circuit (``/stop`` stream opened
            and answered).
        max_hop_streams: hop streams served at once (reservations and circuits).
        max_hop_streams_per_peer: hop streams one peer may have open at once.

    Raises:
        ValueError: a limit is not positive (or a circuit limit does not fit its wire field).
    """

    reservation_ttl: float = attrs.field(default=3600.0, validator=_positive)
    limit_duration: int | None = attrs.field(default=120, validator=_fits(32))
    limit_data: int | None = attrs.field(default=1 << 17, validator=_fits(64))
    max_reservations: int = attrs.field(default=128, validator=_positive)
    max_reservations_per_peer: int = attrs.field(default=4, validator=_positive)
    max_reservations_per_ip: int = attrs.field(default=8, validator=_positive)
    max_circuits: int = attrs.field(default=16, validator=_positive)
    max_circuits_per_peer: int = attrs.field(default=4, validator=_positive)
    buffer_size: int = attrs.field(default=16 * 1024, validator=_positive)
    stream_timeout: float = attrs.field(default=30.0, validator=_positive)
    connect_timeout: float = attrs.field(default=30.0, validator=_positive)
    max_hop_streams: int = attrs.field(default=256, validator=_positive)
    max_hop_streams_per_peer: int = attrs.field(default=8, validator=_positive)


@attrs.frozen(kw_only=True)
class ReservationAccepted:
    """A peer reserved (or renewed its reservation) at this relay.

    Attributes:
        peer: the reserving peer.
        expire: Unix time (seconds) the reservation ends.
        renewed: it refreshed a reservation it held on the same connection.
    """

    peer: PeerId
    expire: int
    renewed: bool


@attrs.frozen(kw_only=True)
class ReservationRefused:
    """A RESERVE was refused with ``status`` (``reason`` says which limit or rule)."""

    peer: PeerId
    status: Status
    reason: str


@attrs.frozen(kw_only=True)
class CircuitOpened:
    """A circuit from ``source`` to ``target`` was accepted by both and is being relayed."""

    source: PeerId
    target: PeerId


@attrs.frozen(kw_only=True)
class CircuitRefused:
    """A CONNECT was refused with ``status`` (``NO_RESERVATION``, limits, loops, target
    failures)."""

    source: PeerId
    target: PeerId
    status: Status
    reason: str


@attrs.frozen(kw_only=True)
class CircuitClosed:
    """A relayed circuit ended.

    Attributes:
        reason: ``"closed"`` (both sides ended their writes), ``"data limit"``, ``"duration
            limit"``, ``"reset"`` (a side reset or failed) or ``"stopped"`` (the relay
            closed).
        bytes_relayed: (source to target, target to source) bytes forwarded.
    """

    source: PeerId
    target: PeerId
    reason: str
    bytes_relayed: tuple[int, int]


RelayEvent = (
    ReservationAccepted | ReservationRefused | CircuitOpened | CircuitRefused | CircuitClosed
)
