"""Rendezvous wire format: typed messages, their protobuf encoding and the registration records
(https://github.com/libp2p/specs/blob/master/rendezvous/README.md#protobuf).

No I/O. Each message travels with an unsigned-varint length prefix (the framing is the
drivers'). ``decode_message`` turns bytes into one of the typed messages below or raises
``RemoteProtocolError``; ``encode_message`` is its inverse.

The spec's ``Register.signedPeerRecord`` (field 2) is a signed envelope holding a peer record.
py-libp2p 0.8.1 sends an unsigned ``PeerInfo {id, addrs}`` message in the same field instead;
``open_record`` reads either, and says which it was.
"""

from __future__ import annotations

import enum

import attrs
from google.protobuf.message import DecodeError
from multiaddr import Multiaddr
from multiaddr.exceptions import Error as MultiaddrError

from p2pstack.errors import (
    IdentityError,
    InvalidPeerIdError,
    InvalidSignatureError,
    P2PError,
    RemoteProtocolError,
)
from p2pstack.identity import PeerId, PeerRecord
from protocols.discovery.rendezvous import rendezvous_pb2 as pb

__all__ = [
    "DEFAULT_TTL",
    "MAX_NAMESPACE_LENGTH",
    "MAX_RECORD_SIZE",
    "MAX_REQUEST_SIZE",
    "MAX_RESPONSE_SIZE",
    "PROTOCOL_ID",
    "Discover",
    "DiscoverResponse",
    "Message",
    "OpenedRecord",
    "Register",
    "RegisterResponse",
    "RendezvousError",
    "RendezvousRefused",
    "Status",
    "Unregister",
    "decode_message",
    "encode_message",
    "encode_peer_info",
    "open_record",
]

PROTOCOL_ID = "/rendezvous/1.0.0"

#: TTL of a registration that names none (spec: "a default of 2hrs is implied").
DEFAULT_TTL = 2 * 3600
#: Longest namespace, in UTF-8 bytes (spec recommendation: 255).
MAX_NAMESPACE_LENGTH = 255
#: Largest registration record accepted (a signed envelope of a few addresses is ~200 bytes).
MAX_RECORD_SIZE = 8 * 1024
#: Largest request accepted by a point: a record, a namespace and a cookie fit with room.
MAX_REQUEST_SIZE = 16 * 1024
#: Largest response accepted by a client (py-libp2p's limit on any rendezvous message).
MAX_RESPONSE_SIZE = 4 * 1024 * 1024
_U64_MAX = (1 << 64) - 1
_MULTIADDR_ERRORS = (MultiaddrError, ValueError, LookupError, TypeError)


class Status(enum.IntEnum):
    """``Message.ResponseStatus``."""

    OK = 0
    E_INVALID_NAMESPACE = 100
    E_INVALID_SIGNED_PEER_RECORD = 101
    E_INVALID_TTL = 102
    E_INVALID_COOKIE = 103
    E_NOT_AUTHORIZED = 200
    E_INTERNAL_ERROR = 300
    E_UNAVAILABLE = 400


class RendezvousError(P2PError):
    """A rendezvous exchange failed."""


class RendezvousRefused(RendezvousError):
    """The point answered with a status other than ``OK``.

    Attributes:
        status: the point's status code.
        text: the point's ``statusText``.
    """

    def __init__(self, status: Status, text: str) -> None:
        super().__init__(f"rendezvous point refused: {status.name} ({text})")
        self.status = status
        self.text = text


@attrs.frozen(kw_only=True)
class Register:
    """REGISTER (and each entry of a DISCOVER_RESPONSE).

    Attributes:
        ns: the namespace.
        record: field 2: a signed peer record envelope, or py-libp2p's ``PeerInfo``.
        ttl: seconds; ``None`` when absent (the point's default applies).
    """

    ns: str
    record: bytes
    ttl: int | None = None


@attrs.frozen(kw_only=True)
class RegisterResponse:
    status: Status
    text: str = ""
    ttl: int = 0


@attrs.frozen(kw_only=True)
class Unregister:
    """UNREGISTER. ``peer_id`` is the field the spec deprecates and py-libp2p still sends."""

    ns: str
    peer_id: bytes = b""


@attrs.frozen(kw_only=True)
class Discover:
    """DISCOVER. ``ns == ""`` asks for every namespace; ``limit == 0`` for the point's default."""

    ns: str = ""
    limit: int = 0
    cookie: bytes = b""


@attrs.frozen(kw_only=True)
class DiscoverResponse:
    status: Status
    registrations: tuple[Register, ...] = ()
    cookie: bytes = b""
    text: str = ""


Message = Register | RegisterResponse | Unregister | Discover | DiscoverResponse


def _status(value: int) -> Status:
    try:
        return Status(value)
    except ValueError:
        return Status.E_INTERNAL_ERROR


def _ns(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise RemoteProtocolError("rendezvous namespace is not UTF-8") from None


def _text(raw: bytes) -> str:
    return raw.decode(errors="replace")


def _register_from_pb(m: pb.Message.Register) -> Register:
    ttl = m.ttl if m.HasField("ttl") else None
    return Register(ns=_ns(m.ns), record=m.signedPeerRecord, ttl=ttl)


def decode_message(data: bytes) -> Message:
    """Parse one rendezvous message (without its length prefix).

    Raises:
        RemoteProtocolError: not a protobuf ``Message``, or its type's body is missing.
    """
    m = pb.Message()
    try:
        m.ParseFromString(bytes(data))
    except DecodeError as exc:
        raise RemoteProtocolError(f"malformed rendezvous message: {exc}") from exc
    t = m.type  # absent: 0, REGISTER (proto3 encoders leave zeros out)
    if t == pb.Message.REGISTER and m.HasField("register"):
        return _register_from_pb(m.register)
    if t == pb.Message.REGISTER_RESPONSE and m.HasField("registerResponse"):
        r = m.registerResponse
        return RegisterResponse(status=_status(r.status), text=_text(r.statusText), ttl=r.ttl)
    if t == pb.Message.UNREGISTER and m.HasField("unregister"):
        return Unregister(ns=_ns(m.unregister.ns), peer_id=m.unregister.id)
    if t == pb.Message.DISCOVER and m.HasField("discover"):
        d = m.discover
        return Discover(ns=_ns(d.ns), limit=d.limit, cookie=d.cookie)
    if t == pb.Message.DISCOVER_RESPONSE and m.HasField("discoverResponse"):
        dr = m.discoverResponse
        return DiscoverResponse(
            status=_status(dr.status),
            registrations=tuple(_register_from_pb(r) for r in dr.registrations),
            cookie=dr.cookie,
            text=_text(dr.statusText),
        )
    raise RemoteProtocolError(f"rendezvous message of type {t} without its body")


def _fill_register(target: pb.Message.Register, msg: Register) -> None:
    target.ns = msg.ns.encode()
    target.signedPeerRecord = msg.record
    if msg.ttl is not None:
        target.ttl = msg.ttl


def encode_message(msg: Message) -> bytes:
    """Serialize a message (without its length prefix)."""
    m = pb.Message()
    match msg:
        case Register():
            m.type = pb.Message.REGISTER
            _fill_register(m.register, msg)
        case RegisterResponse():
            m.type = pb.Message.REGISTER_RESPONSE
            m.registerResponse.status = msg.status
            m.registerResponse.statusText = msg.text.encode()
            m.registerResponse.ttl = msg.ttl
        case Unregister():
            m.type = pb.Message.UNREGISTER
            m.unregister.ns = msg.ns.encode()
            if msg.peer_id:
                m.unregister.id = msg.peer_id
        case Discover():
            m.type = pb.Message.DISCOVER
            m.discover.ns = msg.ns.encode()
            m.discover.limit = msg.limit
            if msg.cookie:
                m.discover.cookie = msg.cookie
        case DiscoverResponse():
            m.type = pb.Message.DISCOVER_RESPONSE
            dr = m.discoverResponse
            dr.status = msg.status
            dr.statusText = msg.text.encode()
            dr.cookie = msg.cookie
            for reg in msg.registrations:
                _fill_register(dr.registrations.add(), reg)
    return m.SerializeToString(deterministic=True)


@attrs.frozen(kw_only=True)
class OpenedRecord:
    """What a registration's record says.

    Attributes:
        peer_id: the registered peer.
        addrs: its addresses.
        signed: True for a verified signed peer record, False for py-libp2p's unsigned
            ``PeerInfo`` (only as trustworthy as the point that relays it).
    """

    peer_id: PeerId
    addrs: tuple[Multiaddr, ...]
    signed: bool


def encode_peer_info(peer_id: PeerId, addrs: tuple[Multiaddr, ...]) -> bytes:
    """py-libp2p's unsigned registration record."""
    info = pb.PeerInfo(id=peer_id.to_bytes(), addrs=[a.to_bytes() for a in addrs])
    return info.SerializeToString(deterministic=True)


def _open_peer_info(data: bytes) -> OpenedRecord:
    info = pb.PeerInfo()
    try:
        info.ParseFromString(data)
        peer_id = PeerId.from_bytes(info.id)
    except (DecodeError, InvalidPeerIdError) as exc:
        raise IdentityError(f"neither a signed peer record nor a PeerInfo: {exc}") from exc
    addrs = []
    for raw in info.addrs:
        try:
            addr = Multiaddr(raw)
            if Multiaddr(str(addr)).to_bytes() != raw:
                raise ValueError("not canonical")
        except _MULTIADDR_ERRORS as exc:
            raise IdentityError(f"PeerInfo has an invalid address: {exc}") from exc
        addrs.append(addr)
    return OpenedRecord(peer_id=peer_id, addrs=tuple(addrs), signed=False)


def open_record(data: bytes, *, allow_unsigned: bool) -> OpenedRecord:
    """Verify and read a registration record.

    Args:
        data: ``Register.signedPeerRecord``.
        allow_unsigned: accept py-libp2p's unsigned ``PeerInfo`` when ``data`` is no envelope.

    Raises:
        InvalidSignatureError: an envelope with a bad signature (never read as ``PeerInfo``).
        IdentityError: malformed, oversized, or unsigned while ``allow_unsigned`` is False.
    """
    if len(data) > MAX_RECORD_SIZE:
        raise IdentityError(f"registration record over {MAX_RECORD_SIZE} bytes")
    try:
        record, _ = PeerRecord.from_envelope_bytes(data)
    except InvalidSignatureError:
        raise
    except IdentityError:
        if not allow_unsigned:
            raise
        return _open_peer_info(data)
    return OpenedRecord(peer_id=record.peer_id, addrs=record.addrs, signed=True)


def check_u64(value: int) -> int:
    """``value`` if it fits a uint64 (protobuf fields here), else ValueError."""
    if not 0 <= value <= _U64_MAX:
        raise ValueError(f"{value} does not fit in a uint64")
    return value
