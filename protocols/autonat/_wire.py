"""AutoNAT wire formats: typed v1 and v2 messages over the generated protobufs, with tolerant
decoders that raise ``RemoteProtocolError`` on anything that is not the message expected
(https://github.com/libp2p/specs/blob/master/autonat/autonat-v1.md#rpc-messages,
https://github.com/libp2p/specs/blob/master/autonat/autonat-v2.md#rpc-messages).

No I/O: messages are bodies without their uvarint length prefix (``p2pstack.framing``).
"""

from __future__ import annotations

import enum

import attrs
from google.protobuf.message import DecodeError
from multiaddr import Multiaddr

from p2pstack.errors import RemoteProtocolError
from p2pstack.multiaddrs import decode_multiaddr
from protocols.autonat.pb import autonat_v1_pb2 as v1pb
from protocols.autonat.pb import autonat_v2_pb2 as v2pb

__all__ = [
    "DIAL_BACK_PROTOCOL_ID",
    "DIAL_REQUEST_PROTOCOL_ID",
    "MAX_DIAL_DATA_CHUNK",
    "MAX_MESSAGE_SIZE",
    "PROTOCOL_ID",
    "DialDataRequest",
    "DialDataResponse",
    "DialRequest",
    "DialResponse",
    "DialStatus",
    "ResponseStatus",
    "V1Dial",
    "V1DialResponse",
    "V1Status",
    "V2Message",
    "decode_dial_back",
    "decode_dial_back_response",
    "decode_v1",
    "decode_v2",
    "encode_dial_back",
    "encode_dial_back_response",
    "encode_v1",
    "encode_v2",
]

PROTOCOL_ID = "/libp2p/autonat/1.0.0"
DIAL_REQUEST_PROTOCOL_ID = "/libp2p/autonat/2/dial-request"
DIAL_BACK_PROTOCOL_ID = "/libp2p/autonat/2/dial-back"

#: Largest message read on any AutoNAT stream (go-libp2p reads at most 8 KiB as well).
MAX_MESSAGE_SIZE = 8192
#: "the data field in each individual protobuf is limited to 4096 bytes" (v2 spec).
MAX_DIAL_DATA_CHUNK = 4096


class V1Status(enum.IntEnum):
    """AutoNAT v1 ``ResponseStatus``."""

    OK = 0
    E_DIAL_ERROR = 100
    E_DIAL_REFUSED = 101
    E_BAD_REQUEST = 200
    E_INTERNAL_ERROR = 300


class ResponseStatus(enum.IntEnum):
    """AutoNAT v2 ``DialResponse.ResponseStatus``."""

    E_INTERNAL_ERROR = 0
    E_REQUEST_REJECTED = 100
    E_DIAL_REFUSED = 101
    OK = 200


class DialStatus(enum.IntEnum):
    """AutoNAT v2 ``DialStatus``: the outcome of the dial back."""

    UNUSED = 0
    E_DIAL_ERROR = 100
    E_DIAL_BACK_ERROR = 101
    OK = 200


def _parse(pb: v1pb.Message | v2pb.Message, data: bytes, what: str) -> None:
    try:
        pb.ParseFromString(data)
    except (DecodeError, RecursionError) as exc:
        raise RemoteProtocolError(f"invalid {what} message: {exc}") from None


# -- v1 ------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class V1Dial:
    """A v1 ``DIAL`` request: the requester's peer ID bytes and addresses (unparsable ones are
    dropped, as the server would not dial them anyway)."""

    peer_id: bytes
    addrs: tuple[Multiaddr, ...]


@attrs.frozen(kw_only=True)
class V1DialResponse:
    """A v1 ``DIAL_RESPONSE``. ``status`` is an int when the code is not one we know."""

    status: V1Status | int
    text: str = ""
    addr: Multiaddr | None = None


def encode_v1(msg: V1Dial | V1DialResponse) -> bytes:
    """Serialise a v1 message (without its length prefix)."""
    pb = v1pb.Message()
    if isinstance(msg, V1Dial):
        pb.type = v1pb.Message.DIAL
        pb.dial.peer.id = msg.peer_id
        pb.dial.peer.addrs.extend(a.to_bytes() for a in msg.addrs)
    else:
        pb.type = v1pb.Message.DIAL_RESPONSE
        pb.dialResponse.status = msg.status  # type: ignore[assignment]  # an IntEnum member
        if msg.text:
            pb.dialResponse.statusText = msg.text
        if msg.addr is not None:
            pb.dialResponse.addr = msg.addr.to_bytes()
    return pb.SerializeToString()


def decode_v1(data: bytes) -> V1Dial | V1DialResponse:
    """Decode a v1 message.

    Raises:
        RemoteProtocolError: not a protobuf, an unknown type, or a type without its body.
    """
    pb = v1pb.Message()
    _parse(pb, data, "AutoNAT")
    if not pb.HasField("type"):
        raise RemoteProtocolError("AutoNAT message without a type")
    if pb.type == v1pb.Message.DIAL:
        if not pb.HasField("dial") or not pb.dial.HasField("peer"):
            raise RemoteProtocolError("AutoNAT DIAL without peer info")
        addrs = (decode_multiaddr(a) for a in pb.dial.peer.addrs)
        return V1Dial(peer_id=pb.dial.peer.id, addrs=tuple(dict.fromkeys(a for a in addrs if a)))
    if pb.type == v1pb.Message.DIAL_RESPONSE:
        if not pb.HasField("dialResponse") or not pb.dialResponse.HasField("status"):
            raise RemoteProtocolError("AutoNAT DIAL_RESPONSE without a status")
        resp = pb.dialResponse
        code = int(resp.status)
        status: V1Status | int = V1Status(code) if code in V1Status._value2member_map_ else code
        return V1DialResponse(
            status=status,
            text=_status_text(resp.statusText),
            addr=decode_multiaddr(resp.addr) if resp.HasField("addr") else None,
        )
    raise RemoteProtocolError(f"unknown AutoNAT message type {pb.type}")


def _status_text(raw: str | bytes) -> str:
    # protobuf hands a proto2 string holding invalid UTF-8 over as bytes: made printable.
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return text[:256]


# -- v2 ------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class DialRequest:
    """``DialRequest``: addresses in priority order (``None`` where one does not parse: the
    index still counts) and the nonce the dial back must carry."""

    addrs: tuple[Multiaddr | None, ...]
    nonce: int


@attrs.frozen(kw_only=True)
class DialDataRequest:
    """``DialDataRequest``: send ``num_bytes`` of data before address ``addr_idx`` is dialed."""

    addr_idx: int
    num_bytes: int


@attrs.frozen(kw_only=True)
class DialDataResponse:
    """``DialDataResponse``: one chunk of dial data."""

    data: bytes


@attrs.frozen(kw_only=True)
class DialResponse:
    """``DialResponse``; codes we do not know are kept as ints (and must be discarded)."""

    status: ResponseStatus | int
    addr_idx: int = 0
    dial_status: DialStatus | int = DialStatus.UNUSED


V2Message = DialRequest | DialDataRequest | DialDataResponse | DialResponse


def _known(enum_type: type[ResponseStatus] | type[DialStatus], code: int) -> int:
    return enum_type(code) if code in enum_type._value2member_map_ else code


def encode_v2(msg: V2Message) -> bytes:
    """Serialise a v2 ``Message`` (without its length prefix)."""
    pb = v2pb.Message()
    match msg:
        case DialRequest():
            pb.dialRequest.addrs.extend(a.to_bytes() if a else b"" for a in msg.addrs)
            pb.dialRequest.nonce = msg.nonce
        case DialDataRequest():
            pb.dialDataRequest.addrIdx = msg.addr_idx
            pb.dialDataRequest.numBytes = msg.num_bytes
        case DialDataResponse():
            pb.dialDataResponse.data = msg.data
        case DialResponse():
            pb.dialResponse.status = msg.status  # type: ignore[assignment]  # IntEnum member
            pb.dialResponse.addrIdx = msg.addr_idx
            # (the ignore below: IntEnum member)
            pb.dialResponse.dialStatus = msg.dial_status  # type: ignore[assignment]
    return pb.SerializeToString()


def decode_v2(data: bytes) -> V2Message:
    """Decode a v2 ``Message``.

    Raises:
        RemoteProtocolError: not a protobuf, or none of the four messages set.
    """
    pb = v2pb.Message()
    _parse(pb, data, "AutoNAT v2")
    which = pb.WhichOneof("msg")
    if which == "dialRequest":
        req = pb.dialRequest
        return DialRequest(addrs=tuple(decode_multiaddr(a) for a in req.addrs), nonce=req.nonce)
    if which == "dialDataRequest":
        ddr = pb.dialDataRequest
        return DialDataRequest(addr_idx=ddr.addrIdx, num_bytes=ddr.numBytes)
    if which == "dialDataResponse":
        return DialDataResponse(data=pb.dialDataResponse.data)
    if which == "dialResponse":
        resp = pb.dialResponse
        return DialResponse(
            status=_known(ResponseStatus, int(resp.status)),
            addr_idx=resp.addrIdx,
            dial_status=_known(DialStatus, int(resp.dialStatus)),
        )
    raise RemoteProtocolError("AutoNAT v2 message with no body")


def encode_dial_back(nonce: int) -> bytes:
    """A ``DialBack`` carrying ``nonce``."""
    return v2pb.DialBack(nonce=nonce).SerializeToString()


def decode_dial_back(data: bytes) -> int:
    """The nonce of a ``DialBack``.

    Raises:
        RemoteProtocolError: not a ``DialBack``.
    """
    pb = v2pb.DialBack()
    try:
        pb.ParseFromString(data)
    except (DecodeError, RecursionError) as exc:
        raise RemoteProtocolError(f"invalid DialBack: {exc}") from None
    return pb.nonce


def encode_dial_back_response() -> bytes:
    """A ``DialBackResponse`` with status ``OK`` (the only status)."""
    return v2pb.DialBackResponse(status=v2pb.DialBackResponse.OK).SerializeToString()


def decode_dial_back_response(data: bytes) -> int:
    """The status of a ``DialBackResponse`` (0 is OK).

    Raises:
        RemoteProtocolError: not a ``DialBackResponse``.
    """
    pb = v2pb.DialBackResponse()
    try:
        pb.ParseFromString(data)
    except (DecodeError, RecursionError) as exc:
        raise RemoteProtocolError(f"invalid DialBackResponse: {exc}") from None
    return int(pb.status)
