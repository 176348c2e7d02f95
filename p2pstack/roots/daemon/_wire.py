"""The p2pd control protocol without I/O: varint-length-prefixed ``Request`` messages parsed into
typed, validated commands, and the ``Response`` / ``DHTResponse`` / ``PSMessage`` frames the
daemon writes back (schema: ``p2pstack/p2pd/pb/p2pd.proto``, go-libp2p-daemon's ``p2pd.proto``
with js-libp2p's PEERSTORE request).

Everything here takes bytes and gives bytes or commands; a malformed or invalid request raises
:class:`ControlError`, whose message the server sends back in an ERROR response.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs
from google.protobuf.message import DecodeError
from multiaddr import Multiaddr

from p2pstack.errors import InvalidPeerIdError, RemoteProtocolError
from p2pstack.framing import LpDecoder, encode_lp
from p2pstack.identity import PeerId
from p2pstack.multiaddrs import decode_multiaddr
from p2pstack.p2pd.pb import p2pd_pb2 as pb

__all__ = [
    "MAX_MESSAGE_SIZE",
    "Command",
    "ConnManager",
    "Connect",
    "ControlError",
    "Dht",
    "Disconnect",
    "Identify",
    "ListPeers",
    "Peerstore",
    "PubsubCommand",
    "RequestDecoder",
    "StreamHandler",
    "StreamOpen",
    "dht_frame",
    "encode",
    "error_response",
    "ok_response",
    "parse_request",
    "peer_info",
    "ps_message",
]

#: Largest control message accepted, in bytes (go's network.MessageSizeMax is 4 MiB).
MAX_MESSAGE_SIZE = 4 << 20
#: Most protocols one STREAM_OPEN or STREAM_HANDLER may name, and most addresses per CONNECT.
MAX_LIST = 64


class ControlError(Exception):
    """A control request the daemon cannot serve: malformed, missing a field, or invalid."""


@attrs.frozen
class Identify:
    """IDENTIFY: who is this daemon."""


@attrs.frozen
class ListPeers:
    """LIST_PEERS: the connected peers."""


@attrs.frozen
class Connect:
    """CONNECT: dial ``peer`` at ``addrs`` (may be empty: known addresses), ``timeout`` s."""

    peer: PeerId
    addrs: tuple[Multiaddr, ...]
    timeout: float | None


@attrs.frozen
class Disconnect:
    """DISCONNECT: close every connection to ``peer``."""

    peer: PeerId


@attrs.frozen
class StreamOpen:
    """STREAM_OPEN: open a stream to ``peer`` with the first of ``protocols`` it speaks."""

    peer: PeerId
    protocols: tuple[str, ...]
    timeout: float | None


@attrs.frozen
class StreamHandler:
    """STREAM_HANDLER: forward inbound streams of ``protocols`` to the client at ``addr``."""

    addr: Multiaddr
    protocols: tuple[str, ...]


@attrs.frozen
class Dht:
    """DHT: one of the ``DHTRequest.Type`` names in ``op``, with the fields it needs."""

    op: str
    peer: PeerId | None = None
    key: bytes | None = None
    value: bytes | None = None
    count: int | None = None
    timeout: float | None = None


@attrs.frozen
class PubsubCommand:
    """PUBSUB: one of ``GET_TOPICS``, ``LIST_PEERS``, ``PUBLISH``, ``SUBSCRIBE``."""

    op: str
    topic: str | None = None
    data: bytes = b""


@attrs.frozen
class ConnManager:
    """CONNMANAGER: ``TAG_PEER``, ``UNTAG_PEER`` or ``TRIM``."""

    op: str
    peer: PeerId | None = None
    tag: str | None = None
    weight: int = 0


@attrs.frozen
class Peerstore:
    """PEERSTORE: ``GET_PROTOCOLS`` or ``GET_PEER_INFO`` of ``peer``."""

    op: str
    peer: PeerId


Command = (
    Identify
    | ListPeers
    | Connect
    | Disconnect
    | StreamOpen
    | StreamHandler
    | Dht
    | PubsubCommand
    | ConnManager
    | Peerstore
)


class RequestDecoder:
    """Cuts a control connection's bytes into requests (each at most ``MAX_MESSAGE_SIZE``)."""

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._lp = LpDecoder(max_size)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the complete request bodies.

        Raises:
            ControlError: a length prefix is malformed or announces more than the bound.
        """
        try:
            return self._lp.feed(data)
        except RemoteProtocolError as exc:
            raise ControlError(f"bad control message framing: {exc}") from None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete request."""
        return self._lp.buffered

    def take_remaining(self) -> bytes:
        """The bytes after the last complete request (a stream's first bytes)."""
        return self._lp.take_remaining()


def _peer(data: bytes, what: str = "peer") -> PeerId:
    if not data:
        raise ControlError(f"missing {what}")
    try:
        return PeerId.from_bytes(data)
    except InvalidPeerIdError as exc:
        raise ControlError(f"invalid {what}: {exc}") from None


def _addr(data: bytes) -> Multiaddr:
    addr = decode_multiaddr(data)
    if addr is None:
        raise ControlError(f"invalid multiaddr: {data.hex()}")
    return addr


def _text(value: object, what: str) -> str:
    """A string field's value: proto2 parsing hands one that is not UTF-8 over as bytes."""
    if not isinstance(value, str):
        raise ControlError(f"{what} is not UTF-8 text")
    return value


def _protocols(values: Sequence[str]) -> tuple[str, ...]:
    if not values:
        raise ControlError("missing protocol")
    if len(values) > MAX_LIST:
        raise ControlError(f"more than {MAX_LIST} protocols")
    for proto in values:
        if not _text(proto, "protocol id") or len(proto) > 1024 or "\n" in proto:
            raise ControlError(f"invalid protocol id {proto[:64]!r}")
    return tuple(values)


def _timeout(message: pb.ConnectRequest | pb.StreamOpenRequest | pb.DHTRequest) -> float | None:
    return float(message.timeout) if message.HasField("timeout") and message.timeout > 0 else None


def parse_request(body: bytes) -> Command:
    """Decode and validate one ``Request`` body (without its length prefix).

    Raises:
        ControlError: not a ``Request``, an unknown type, or a missing or invalid field.
    """
    request = pb.Request()
    try:
        request.ParseFromString(body)
    except (DecodeError, RecursionError) as exc:
        raise ControlError(f"malformed request: {exc}") from None
    if not request.HasField("type"):  # absent, or a value this schema does not know
        raise ControlError("missing or unknown request type")
    kind = request.type
    if kind == pb.Request.IDENTIFY:
        return Identify()
    if kind == pb.Request.LIST_PEERS:
        return ListPeers()
    if kind == pb.Request.CONNECT:
        return _connect(_need(request, "connect").connect)
    if kind == pb.Request.DISCONNECT:
        return Disconnect(_peer(_need(request, "disconnect").disconnect.peer))
    if kind == pb.Request.STREAM_OPEN:
        msg = _need(request, "streamOpen").streamOpen
        return StreamOpen(_peer(msg.peer), _protocols(msg.proto), _timeout(msg))
    if kind == pb.Request.STREAM_HANDLER:
        handler = _need(request, "streamHandler").streamHandler
        if not handler.addr:
            raise ControlError("missing handler address")
        return StreamHandler(_addr(handler.addr), _protocols(handler.proto))
    if kind == pb.Request.DHT:
        return _dht(_need(request, "dht").dht)
    if kind == pb.Request.PUBSUB:
        return _pubsub(_need(request, "pubsub").pubsub)
    if kind == pb.Request.CONNMANAGER:
        return _connmanager(_need(request, "connManager").connManager)
    if kind == pb.Request.PEERSTORE:
        return _peerstore(_need(request, "peerStore").peerStore)
    raise ControlError(f"unknown request type {kind}")


def _need(request: pb.Request, field: str) -> pb.Request:
    if not request.HasField(field):  # type: ignore[arg-type]  # a field name the schema has
        raise ControlError(f"missing {field} in {pb.Request.Type.Name(request.type)} request")
    return request


def _connect(msg: pb.ConnectRequest) -> Connect:
    if len(msg.addrs) > MAX_LIST:
        raise ControlError(f"more than {MAX_LIST} addresses")
    addrs = tuple(_addr(a) for a in msg.addrs)
    return Connect(_peer(msg.peer), addrs, _timeout(msg))


_DHT_NEEDS = {
    "FIND_PEER": "peer",
    "FIND_PEERS_CONNECTED_TO_PEER": "peer",
    "GET_PUBLIC_KEY": "peer",
    "FIND_PROVIDERS": "cid",
    "PROVIDE": "cid",
    "GET_CLOSEST_PEERS": "key",
    "GET_VALUE": "key",
    "SEARCH_VALUE": "key",
    "PUT_VALUE": "key",
}


def _dht(msg: pb.DHTRequest) -> Dht:
    if msg.type not in pb.DHTRequest.Type.values():
        raise ControlError(f"unknown DHT request type {msg.type}")
    op = pb.DHTRequest.Type.Name(msg.type)
    needs = _DHT_NEEDS[op]
    peer = _peer(msg.peer) if needs == "peer" else None
    key: bytes | None = None
    if needs in ("cid", "key"):
        key = msg.cid if needs == "cid" else msg.key
        if not key:
            raise ControlError(f"missing {needs} in DHT {op} request")
    if op == "PUT_VALUE" and not msg.HasField("value"):
        raise ControlError("missing value in DHT PUT_VALUE request")
    count = msg.count if msg.HasField("count") and msg.count > 0 else None
    return Dht(op, peer, key, msg.value if op == "PUT_VALUE" else None, count, _timeout(msg))


def _pubsub(msg: pb.PSRequest) -> PubsubCommand:
    if msg.type not in pb.PSRequest.Type.values():
        raise ControlError(f"unknown PUBSUB request type {msg.type}")
    op = pb.PSRequest.Type.Name(msg.type)
    topic = _text(msg.topic, "topic") if msg.HasField("topic") else None
    if op in ("PUBLISH", "SUBSCRIBE") and not topic:
        raise ControlError(f"missing topic in PUBSUB {op} request")
    return PubsubCommand(op, topic, msg.data)


def _connmanager(msg: pb.ConnManagerRequest) -> ConnManager:
    if msg.type not in pb.ConnManagerRequest.Type.values():
        raise ControlError(f"unknown CONNMANAGER request type {msg.type}")
    op = pb.ConnManagerRequest.Type.Name(msg.type)
    if op == "TRIM":
        return ConnManager(op)
    if not msg.tag:
        raise ControlError(f"missing tag in CONNMANAGER {op} request")
    return ConnManager(op, _peer(msg.peer), _text(msg.tag, "tag"), msg.weight)


def _peerstore(msg: pb.PeerstoreRequest) -> Peerstore:
    if msg.type not in (pb.PeerstoreRequest.GET_PROTOCOLS, pb.PeerstoreRequest.GET_PEER_INFO):
        raise ControlError(f"unsupported PEERSTORE request type {msg.type}")
    return Peerstore(pb.PeerstoreRequest.Type.Name(msg.type), _peer(msg.id))


# -- responses --------------------------------------------------------------------------------


def encode(message: pb.Response | pb.DHTResponse | pb.PSMessage | pb.StreamInfo) -> bytes:
    """``message`` serialized with its varint length prefix."""
    return encode_lp(message.SerializeToString())


def ok_response() -> pb.Response:
    """An empty OK response (fill in the fields the request answers)."""
    return pb.Response(type=pb.Response.OK)


def error_response(message: str) -> pb.Response:
    """An ERROR response carrying ``message``."""
    return pb.Response(type=pb.Response.ERROR, error=pb.ErrorResponse(msg=message))


def peer_info(peer: PeerId, addrs: Iterable[Multiaddr]) -> pb.PeerInfo:
    """A ``PeerInfo`` of ``peer`` (addresses without ``/p2p/``)."""
    return pb.PeerInfo(id=peer.to_bytes(), addrs=[a.to_bytes() for a in addrs])


def dht_frame(
    kind: pb.DHTResponse.Type.ValueType, *, peer: pb.PeerInfo | None = None, value: bytes = b""
) -> pb.DHTResponse:
    """A ``DHTResponse`` of ``kind`` (BEGIN, VALUE or END)."""
    frame = pb.DHTResponse(type=kind)
    if peer is not None:
        frame.peer.CopyFrom(peer)
    if value:
        frame.value = value
    return frame


def ps_message(
    *,
    sender: bytes | None,
    data: bytes,
    seqno: bytes | None,
    topics: Sequence[str],
    signature: bytes | None,
    key: bytes | None,
) -> pb.PSMessage:
    """A ``PSMessage`` as a subscription stream carries it."""
    message = pb.PSMessage(data=data, topicIDs=list(topics))
    if sender:
        message.__setattr__("from", sender)
    if seqno:
        message.seqno = seqno
    if signature:
        message.signature = signature
    if key:
        message.key = key
    return message
