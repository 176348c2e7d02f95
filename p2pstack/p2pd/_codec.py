"""Sans-IO encoding of p2pd control requests and decoding of the daemon's replies
(go-libp2p-daemon's control protocol, https://github.com/libp2p/go-libp2p-daemon/blob/master/
specs/CONTROL.md, and js-libp2p's @libp2p/daemon-server, which speak the same schema).

Every message on the control socket is an unsigned-varint length and a protobuf. Requests are
built here as bytes; replies are parsed here from message bodies into typed values, with the
daemon's ``ErrorResponse`` raised as :class:`DaemonError` and malformed replies as
:class:`DaemonProtocolError`. No sockets, no clocks: the driver (``_client``) reads and writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs
from google.protobuf.message import DecodeError, Message
from multiaddr import Multiaddr

from p2pstack.errors import InvalidPeerIdError, P2PError, RemoteProtocolError
from p2pstack.framing import encode_lp
from p2pstack.identity import PeerId
from p2pstack.multiaddrs import decode_multiaddr
from p2pstack.p2pd.pb import p2pd_pb2 as pb

__all__ = [
    "MAX_MESSAGE_SIZE",
    "DaemonError",
    "DaemonProtocolError",
    "DhtItem",
    "PeerInfo",
    "PubsubMessage",
    "StreamInfo",
    "check_ok",
    "decode_dht_item",
    "decode_dht_response",
    "decode_ps_message",
    "decode_response",
    "decode_stream_info",
    "encode_request",
    "peer_info",
]

#: The largest control message accepted from a daemon (js-libp2p's daemon uses the same 4 MiB).
MAX_MESSAGE_SIZE = 4 * 1024 * 1024


class DaemonError(P2PError):
    """The daemon answered a request with an ``ErrorResponse``; ``message`` is its text."""

    def __init__(self, message: str) -> None:
        super().__init__(f"daemon error: {message}")
        self.message = message


class DaemonProtocolError(RemoteProtocolError):
    """The daemon sent bytes that are not a valid reply to the request."""


@attrs.frozen
class PeerInfo:
    """A peer and the addresses the daemon knows for it."""

    peer_id: PeerId
    addrs: tuple[Multiaddr, ...]


@attrs.frozen
class StreamInfo:
    """What the daemon says about a stream: the remote peer, its address, the protocol agreed."""

    peer_id: PeerId
    addr: Multiaddr
    protocol: str


@attrs.frozen
class PubsubMessage:
    """A pubsub message delivered to a subscription (``PSMessage``).

    ``from_peer``, ``seqno``, ``signature`` and ``key`` are empty/``None`` for unsigned messages.
    """

    data: bytes
    topics: tuple[str, ...]
    from_peer: PeerId | None = None
    seqno: bytes = b""
    signature: bytes = b""
    key: bytes = b""


@attrs.frozen
class DhtItem:
    """One ``DHTResponse`` of type VALUE: a peer, a value, or both absent."""

    peer: PeerInfo | None
    value: bytes | None


def encode_request(request: pb.Request) -> bytes:
    """The request, serialized and length-prefixed, ready for the control socket.

    Raises:
        ValueError: the request has no ``type`` (even IDENTIFY, type 0, must be set).
    """
    if not request.HasField("type"):
        raise ValueError("a p2pd request needs its type")
    return encode_lp(request.SerializeToString())


def _parse(message: Message, body: bytes, name: str) -> None:
    try:
        message.ParseFromString(body)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise DaemonProtocolError(f"malformed {name} from the daemon: {exc}") from None


def decode_response(body: bytes) -> pb.Response:
    """Parse a ``Response`` body (no length prefix).

    Raises:
        DaemonProtocolError: the body is not a ``Response``.
    """
    resp = pb.Response()
    _parse(resp, body, "Response")
    return resp


def check_ok(resp: pb.Response) -> pb.Response:
    """``resp`` itself when it says OK.

    Raises:
        DaemonError: an ``ERROR`` response (with the daemon's message).
        DaemonProtocolError: no type, or an unknown one.
    """
    if not resp.HasField("type"):
        raise DaemonProtocolError("daemon response without a type")
    if resp.type == pb.Response.ERROR:
        msg = resp.error.msg if resp.HasField("error") else "(no message)"
        raise DaemonError(msg if isinstance(msg, str) else msg.decode("utf-8", "replace"))
    if resp.type != pb.Response.OK:  # pragma: no cover - proto2 rejects unknown enum values
        raise DaemonProtocolError(f"unknown response type {resp.type}")
    return resp


def text(value: str | bytes) -> str:
    """A string field as text: proto2 parsing keeps a string that is not UTF-8 as ``bytes``.

    Raises:
        DaemonProtocolError: the field is not valid UTF-8.
    """
    if not isinstance(value, str):
        raise DaemonProtocolError("a text field from the daemon is not UTF-8")
    return value


def texts(values: Iterable[str | bytes]) -> tuple[str, ...]:
    """Repeated string fields as text (see :func:`text`)."""
    return tuple(text(v) for v in values)


def peer_id(data: bytes) -> PeerId:
    """A peer ID from the daemon's bytes.

    Raises:
        DaemonProtocolError: not a valid peer ID (multihash).
    """
    try:
        return PeerId.from_bytes(data)
    except (InvalidPeerIdError, ValueError) as exc:
        raise DaemonProtocolError(f"invalid peer ID from the daemon: {exc}") from None


def multiaddr(data: bytes) -> Multiaddr:
    """A multiaddr from its binary form, checked: it must decode, and re-encode to ``data``.

    Raises:
        DaemonProtocolError: not a valid binary multiaddr.
    """
    ma = decode_multiaddr(data)
    if ma is None:
        raise DaemonProtocolError(f"invalid multiaddr from the daemon: {data!r}")
    return ma


def multiaddrs(items: Iterable[bytes]) -> tuple[Multiaddr, ...]:
    """Binary multiaddrs, each checked (see :func:`multiaddr`)."""
    return tuple(multiaddr(x) for x in items)


def peer_info(msg: pb.PeerInfo) -> PeerInfo:
    """A ``PeerInfo`` message as a :class:`PeerInfo`.

    Raises:
        DaemonProtocolError: a bad peer ID or address.
    """
    return PeerInfo(peer_id(msg.id), multiaddrs(msg.addrs))


def decode_stream_info(body: bytes) -> StreamInfo:
    """Parse the ``StreamInfo`` a daemon writes first on a handler connection.

    Raises:
        DaemonProtocolError: malformed, or a bad peer ID or address.
    """
    msg = pb.StreamInfo()
    _parse(msg, body, "StreamInfo")
    return stream_info(msg)


def stream_info(msg: pb.StreamInfo) -> StreamInfo:
    """A ``StreamInfo`` message as a :class:`StreamInfo` (see :func:`decode_stream_info`)."""
    return StreamInfo(peer_id(msg.peer), multiaddr(msg.addr), text(msg.proto))


def decode_dht_response(body: bytes) -> pb.DHTResponse:
    """Parse one bare ``DHTResponse`` (the VALUE and END messages of a BEGIN/END stream).

    Raises:
        DaemonProtocolError: not a ``DHTResponse``, or without a type.
    """
    msg = pb.DHTResponse()
    _parse(msg, body, "DHTResponse")
    if not msg.HasField("type"):
        raise DaemonProtocolError("DHTResponse without a type")
    return msg


def decode_dht_item(msg: pb.DHTResponse) -> DhtItem:
    """The peer and value of a VALUE ``DHTResponse``.

    Raises:
        DaemonProtocolError: the message is not a VALUE, or its peer is malformed.
    """
    if msg.type != pb.DHTResponse.VALUE:
        raise DaemonProtocolError(f"expected a DHT VALUE, got type {msg.type}")
    peer = peer_info(msg.peer) if msg.HasField("peer") else None
    return DhtItem(peer, msg.value if msg.HasField("value") else None)


def decode_ps_message(body: bytes) -> PubsubMessage:
    """Parse one ``PSMessage`` of a subscription.

    Raises:
        DaemonProtocolError: malformed, or a bad sender peer ID.
    """
    msg = pb.PSMessage()
    _parse(msg, body, "PSMessage")
    sender = getattr(msg, "from")  # ``from`` is a Python keyword
    return PubsubMessage(
        data=msg.data,
        topics=texts(msg.topicIDs),
        from_peer=peer_id(sender) if msg.HasField("from") else None,
        seqno=msg.seqno,
        signature=msg.signature,
        key=msg.key,
    )


def strings(items: Sequence[str]) -> list[str]:
    """Protocol or topic names for a request.

    Raises:
        ValueError: the list is empty or holds an empty name.
    """
    out = list(items)
    if not out or not all(out):
        raise ValueError("expected at least one non-empty name")
    return out
