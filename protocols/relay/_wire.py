"""Circuit relay v2 wire format: typed hop and stop messages, their protobuf encoding and the
length-prefixed stream helpers (https://github.com/libp2p/specs/blob/master/relay/circuit-v2.md,
"Protobuf").

No state. ``decode_hop`` / ``decode_stop`` turn a message body into a typed message or raise
``MalformedMessage`` (a ``RemoteProtocolError`` carrying the spec's ``MALFORMED_MESSAGE``
status, which a server answers before closing the stream); ``encode_hop`` / ``encode_stop`` are
their inverses. Both directions and both protocols use this module: the relay (hop server, stop
client) and the relay client (hop client, stop server).

Checks made on decode: the ``type`` is present and known; a CONNECT carries a ``peer`` with a
valid peer ID; a STATUS carries a known ``status``; a ``reservation`` has its ``expire``; at most
``MAX_ADDRS`` addresses per list. Addresses that do not parse are dropped rather than refused:
a peer may know transports we do not (``/webrtc-direct/certhash/...``), and an address we cannot
use harms no one.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

import attrs
from google.protobuf.message import DecodeError
from multiaddr import Multiaddr
from multiaddr.exceptions import Error as MultiaddrError

from p2pstack.errors import InvalidPeerIdError, RemoteProtocolError
from p2pstack.framing import read_lp, write_lp
from p2pstack.identity import PeerId
from p2pstack.interfaces import ByteStream
from protocols.relay.pb import circuit_pb2 as pb

__all__ = [
    "HOP_PROTOCOL_ID",
    "MAX_ADDRS",
    "MAX_MESSAGE_SIZE",
    "STOP_PROTOCOL_ID",
    "HopMessage",
    "HopType",
    "Limit",
    "MalformedMessage",
    "Peer",
    "Reservation",
    "Status",
    "StopMessage",
    "StopType",
    "decode_hop",
    "decode_stop",
    "encode_hop",
    "encode_stop",
    "read_hop",
    "read_stop",
    "write_hop",
    "write_stop",
]

HOP_PROTOCOL_ID = "/libp2p/circuit/relay/0.2.0/hop"
STOP_PROTOCOL_ID = "/libp2p/circuit/relay/0.2.0/stop"
#: Largest hop or stop message accepted (go-libp2p's and js-libp2p's limit: 4 KiB).
MAX_MESSAGE_SIZE = 4096
#: Most addresses in one ``Peer`` or ``Reservation``.
MAX_ADDRS = 64
_U32_MAX = (1 << 32) - 1
_U64_MAX = (1 << 64) - 1
_MULTIADDR_ERRORS = (MultiaddrError, ValueError, LookupError, TypeError)


class Status(enum.IntEnum):
    """The ``Status`` codes of circuit-v2.md."""

    OK = 100
    RESERVATION_REFUSED = 200
    RESOURCE_LIMIT_EXCEEDED = 201
    PERMISSION_DENIED = 202
    CONNECTION_FAILED = 203
    NO_RESERVATION = 204
    MALFORMED_MESSAGE = 400
    UNEXPECTED_MESSAGE = 401


class HopType(enum.IntEnum):
    """``HopMessage.Type``."""

    RESERVE = 0
    CONNECT = 1
    STATUS = 2


class StopType(enum.IntEnum):
    """``StopMessage.Type``."""

    CONNECT = 0
    STATUS = 1


class MalformedMessage(RemoteProtocolError):
    """A hop or stop message that breaks the schema or the spec's rules (answer
    ``Status.MALFORMED_MESSAGE`` and close the stream)."""

    status = Status.MALFORMED_MESSAGE


def _addrs(value: Iterable[Multiaddr]) -> tuple[Multiaddr, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class Peer:
    """``Peer``: a peer ID and, optionally, addresses."""

    id: PeerId
    addrs: tuple[Multiaddr, ...] = attrs.field(default=(), converter=_addrs)


def _u32(_instance: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and not 0 <= value <= _U32_MAX:
        raise ValueError(f"{attribute.name} must fit in a uint32, got {value}")


def _u64(_instance: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and not 0 <= value <= _U64_MAX:
        raise ValueError(f"{attribute.name} must fit in a uint64, got {value}")


@attrs.frozen(kw_only=True)
class Limit:
    """``Limit``: the relayed connection's caps; ``None`` means no limit of that kind.

    Attributes:
        duration: seconds (uint32).
        data: bytes in each direction (uint64).

    Raises:
        ValueError: a value out of its integer range.
    """

    duration: int | None = attrs.field(default=None, validator=_u32)
    data: int | None = attrs.field(default=None, validator=_u64)


@attrs.frozen(kw_only=True)
class Reservation:
    """``Reservation``: what a relay grants.

    Attributes:
        expire: Unix time (seconds, UTC) the reservation ends.
        addrs: the relay's addresses, each ending in ``/p2p/<relay>``.
        voucher: a signed envelope holding a ``ReservationVoucher`` (``protocols.relay``
            ``open_voucher`` checks it), or ``None``.
    """

    expire: int = attrs.field(validator=_u64)
    addrs: tuple[Multiaddr, ...] = attrs.field(default=(), converter=_addrs)
    voucher: bytes | None = None


@attrs.frozen(kw_only=True)
class HopMessage:
    """``HopMessage`` on ``/libp2p/circuit/relay/0.2.0/hop``."""

    type: HopType
    peer: Peer | None = None
    reservation: Reservation | None = None
    limit: Limit | None = None
    status: Status | None = None


@attrs.frozen(kw_only=True)
class StopMessage:
    """``StopMessage`` on ``/libp2p/circuit/relay/0.2.0/stop``."""

    type: StopType
    peer: Peer | None = None
    limit: Limit | None = None
    status: Status | None = None


# -- encoding -----------------------------------------------------------------------------------


def _put_peer(out: pb.Peer, peer: Peer) -> None:
    out.id = peer.id.to_bytes()
    out.addrs.extend(addr.to_bytes() for addr in peer.addrs)


def _put_limit(out: pb.Limit, limit: Limit) -> None:
    out.SetInParent()
    if limit.duration is not None:
        out.duration = limit.duration
    if limit.data is not None:
        out.data = limit.data


def encode_hop(message: HopMessage) -> bytes:
    """Serialise a hop message (without its length prefix)."""
    out = pb.HopMessage(type=int(message.type))  # type: ignore[arg-type]  # an IntEnum value of the proto enum
    if message.peer is not None:
        _put_peer(out.peer, message.peer)
    if message.reservation is not None:
        rsvp = message.reservation
        out.reservation.expire = rsvp.expire
        out.reservation.addrs.extend(addr.to_bytes() for addr in rsvp.addrs)
        if rsvp.voucher is not None:
            out.reservation.voucher = rsvp.voucher
    if message.limit is not None:
        _put_limit(out.limit, message.limit)
    if message.status is not None:
        out.status = int(message.status)  # type: ignore[assignment]  # an IntEnum value of the proto enum
    return out.SerializeToString()


def encode_stop(message: StopMessage) -> bytes:
    """Serialise a stop message (without its length prefix)."""
    out = pb.StopMessage(type=int(message.type))  # type: ignore[arg-type]  # an IntEnum value of the proto enum
    if message.peer is not None:
        _put_peer(out.peer, message.peer)
    if message.limit is not None:
        _put_limit(out.limit, message.limit)
    if message.status is not None:
        out.status = int(message.status)  # type: ignore[assignment]  # an IntEnum value of the proto enum
    return out.SerializeToString()


# -- decoding -----------------------------------------------------------------------------------


def _get_addrs(raw: Iterable[bytes], what: str) -> tuple[Multiaddr, ...]:
    items = list(raw)
    if len(items) > MAX_ADDRS:
        raise MalformedMessage(f"{what} has {len(items)} addresses, more than {MAX_ADDRS}")
    out = []
    for item in items:
        try:
            addr = Multiaddr(bytes(item))
            str(addr)  # decode fully now: Multiaddr(bytes) is lazy
        except _MULTIADDR_ERRORS:
            continue
        out.append(addr)
    return tuple(out)


def _get_peer(message: pb.Peer) -> Peer:
    if not message.HasField("id"):
        raise MalformedMessage("peer without an id")
    try:
        peer_id = PeerId.from_bytes(message.id)
    except InvalidPeerIdError as exc:
        raise MalformedMessage(f"invalid peer id: {exc}") from None
    return Peer(id=peer_id, addrs=_get_addrs(message.addrs, "peer"))


def _get_limit(message: pb.Limit) -> Limit:
    return Limit(
        duration=message.duration if message.HasField("duration") else None,
        data=message.data if message.HasField("data") else None,
    )


def _get_status(message: pb.HopMessage | pb.StopMessage) -> Status | None:
    if not message.HasField("status"):
        return None
    try:
        return Status(message.status)
    except ValueError:
        raise MalformedMessage(f"unknown status {message.status}") from None


def _parse(message: pb.HopMessage | pb.StopMessage, data: bytes) -> None:
    if len(data) > MAX_MESSAGE_SIZE:
        raise MalformedMessage(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_SIZE}")
    try:
        message.ParseFromString(bytes(data))
    except DecodeError as exc:
        raise MalformedMessage(f"invalid {type(message).__name__}: {exc}") from None
    # proto2 keeps an unknown enum value among the unknown fields: ``type`` then reads as unset.
    if not message.HasField("type"):
        raise MalformedMessage(f"{type(message).__name__} without a (known) type")


def decode_hop(data: bytes) -> HopMessage:
    """Parse a hop message body.

    Raises:
        MalformedMessage: not a valid ``HopMessage``, or a rule of the module docstring broken.
    """
    message = pb.HopMessage()
    _parse(message, data)
    kind = HopType(message.type)
    peer = _get_peer(message.peer) if message.HasField("peer") else None
    if kind is HopType.CONNECT and peer is None:
        raise MalformedMessage("CONNECT without a peer")
    reservation = None
    if message.HasField("reservation"):
        rsvp = message.reservation
        if not rsvp.HasField("expire"):
            raise MalformedMessage("reservation without an expiry")
        reservation = Reservation(
            expire=rsvp.expire,
            addrs=_get_addrs(rsvp.addrs, "reservation"),
            voucher=rsvp.voucher if rsvp.HasField("voucher") else None,
        )
    status = _get_status(message)
    if kind is HopType.STATUS and status is None:
        raise MalformedMessage("STATUS without a status")
    return HopMessage(
        type=kind,
        peer=peer,
        reservation=reservation,
        limit=_get_limit(message.limit) if message.HasField("limit") else None,
        status=status,
    )


def decode_stop(data: bytes) -> StopMessage:
    """Parse a stop message body.

    Raises:
        MalformedMessage: not a valid ``StopMessage``, or a rule of the module docstring broken.
    """
    message = pb.StopMessage()
    _parse(message, data)
    kind = StopType(message.type)
    peer = _get_peer(message.peer) if message.HasField("peer") else None
    if kind is StopType.CONNECT and peer is None:
        raise MalformedMessage("CONNECT without a peer")
    status = _get_status(message)
    if kind is StopType.STATUS and status is None:
        raise MalformedMessage("STATUS without a status")
    return StopMessage(
        type=kind,
        peer=peer,
        limit=_get_limit(message.limit) if message.HasField("limit") else None,
        status=status,
    )


# -- streams ------------------------------------------------------------------------------------


async def read_hop(stream: ByteStream, *, max_size: int = MAX_MESSAGE_SIZE) -> HopMessage:
    """Read one length-prefixed hop message (and not a byte more).

    Raises:
        anyio.EndOfStream: the stream ended before the message.
        MalformedMessage: the body is not a valid hop message.
        RemoteProtocolError: bad framing or over ``max_size``.
    """
    return decode_hop(await read_lp(stream, max_size=max_size))


async def write_hop(stream: ByteStream, message: HopMessage) -> None:
    """Send one length-prefixed hop message."""
    await write_lp(stream, encode_hop(message))


async def read_stop(stream: ByteStream, *, max_size: int = MAX_MESSAGE_SIZE) -> StopMessage:
    """Read one length-prefixed stop message (and not a byte more).

    Raises:
        anyio.EndOfStream: the stream ended before the message.
        MalformedMessage: the body is not a valid stop message.
        RemoteProtocolError: bad framing or over ``max_size``.
    """
    return decode_stop(await read_lp(stream, max_size=max_size))


async def write_stop(stream: ByteStream, message: StopMessage) -> None:
    """Send one length-prefixed stop message."""
    await write_lp(stream, encode_stop(message))
