"""The pubsub RPC on the wire (https://github.com/libp2p/specs/blob/master/pubsub/README.md#the-rpc):
protobuf encoding of ``RPC`` values, their checked decoding, and the length-prefixed framing of
a pubsub stream (each RPC is an unsigned-varint length followed by the protobuf).

Decoding turns anything malformed into ``PubsubProtocolError``: bytes that are not a protobuf of
the schema, an RPC over the size bound, a topic that is not UTF-8, a message without a topic, a
peer ID that does not parse, a PRUNE backoff beyond a year.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from google.protobuf.message import DecodeError

from p2pstack.errors import IdentityError, RemoteProtocolError
from p2pstack.framing import LpDecoder, encode_lp
from p2pstack.identity import PeerId
from protocols.pubsub import rpc_pb2 as pb
from protocols.pubsub._types import (
    RPC,
    ControlGraft,
    ControlIDontWant,
    ControlIHave,
    ControlIWant,
    ControlMessage,
    ControlPrune,
    Message,
    PeerInfo,
    PubsubProtocolError,
    SubOpts,
)

if TYPE_CHECKING:
    from p2pstack.interfaces import Buffer

__all__ = [
    "DEFAULT_MAX_RPC_SIZE",
    "MAX_BACKOFF",
    "RpcDecoder",
    "decode_message",
    "decode_rpc",
    "encode_message",
    "encode_rpc",
    "frame_rpc",
    "message_size",
    "message_to_pb",
    "publish_entry_size",
]

#: The largest RPC accepted by default: 1 MiB, go-libp2p-pubsub's ``DefaultMaxMessageSize``
#: (js's default inbound limit is larger, 4 MiB; a peer that publishes more than 1 MiB must raise
#: the bound on both sides anyway). One RPC is held whole in memory while it is decoded.
DEFAULT_MAX_RPC_SIZE = 1 << 20

#: The longest PRUNE backoff accepted, in seconds (a year): larger values are nonsense that would
#: otherwise overflow time arithmetic in a router.
MAX_BACKOFF = 365 * 24 * 3600


def _topic(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PubsubProtocolError(f"{where}: topic is not UTF-8") from None


#: ``PeerId.from_bytes`` with a bounded cache: every received message carries its publisher's
#: ID, and a new PeerId validates itself by parsing the key it inlines (errors are not cached).
_cached_peer_id = functools.lru_cache(maxsize=4096)(PeerId.from_bytes)


def _peer_id(raw: bytes, where: str) -> PeerId:
    try:
        return _cached_peer_id(raw)
    except IdentityError as exc:
        raise PubsubProtocolError(f"{where}: bad peer ID: {exc}") from None


def message_to_pb(message: Message) -> pb.Message:
    """The protobuf of ``message``, with its absent fields left unset.

    Args:
        message: the message.

    Returns:
        The protobuf object (``data`` is always set, as js and go publishers set it).
    """
    out = pb.Message(topic=message.topic.encode(), data=message.data)
    if message.from_ is not None:
        out.__setattr__("from", message.from_.to_bytes())
    if message.seqno is not None:
        out.seqno = message.seqno
    if message.signature is not None:
        out.signature = message.signature
    if message.key is not None:
        out.key = message.key
    return out


def _field_size(length: int) -> int:
    # one tag byte (fields 1-6), the varint length, the bytes
    return 1 + (max(length.bit_length(), 1) + 6) // 7 + length


def message_size(message: Message) -> int:
    """The length of ``encode_message(message)``, computed without encoding (the outbound
    queues size every message they hold).

    Args:
        message: the message.

    Returns:
        Its encoded size in bytes.
    """
    size = _field_size(len(message.topic.encode())) + _field_size(len(message.data))
    for field in (message.seqno, message.signature, message.key):
        if field is not None:
            size += _field_size(len(field))
    if message.from_ is not None:
        size += _field_size(len(message.from_.to_bytes()))
    return size


def publish_entry_size(message: Message) -> int:
    """The bytes ``message`` takes inside ``RPC.publish``: tag, length prefix and body. An RPC
    holding only this message is exactly this long, so a message that arrived within the RPC
    bound can always be forwarded within it.

    Args:
        message: the message.

    Returns:
        Its size as an RPC entry, in bytes.
    """
    return _field_size(message_size(message))


def encode_message(message: Message) -> bytes:
    """Encode one ``Message`` protobuf (as signed and as carried in ``RPC.publish``).

    Args:
        message: the message.

    Returns:
        The protobuf bytes, fields in number order.
    """
    return message_to_pb(message).SerializeToString()


def _control_to_pb(control: ControlMessage) -> pb.ControlMessage:
    out = pb.ControlMessage()
    for ihave in control.ihave:
        out.ihave.add(topicID=ihave.topic.encode(), messageIDs=ihave.message_ids)
    for iwant in control.iwant:
        out.iwant.add(messageIDs=iwant.message_ids)
    for graft in control.graft:
        out.graft.add(topicID=graft.topic.encode())
    for prune in control.prune:
        entry = out.prune.add(topicID=prune.topic.encode())
        if prune.backoff is not None:
            entry.backoff = prune.backoff
        for info in prune.peers:
            peer = entry.peers.add(peerID=info.peer_id.to_bytes())
            if info.signed_peer_record is not None:
                peer.signedPeerRecord = info.signed_peer_record
    for idontwant in control.idontwant:
        out.idontwant.add(messageIDs=idontwant.message_ids)
    return out


def encode_rpc(rpc: RPC) -> bytes:
    """Encode an RPC as its protobuf (no length prefix).

    Args:
        rpc: the RPC.

    Returns:
        The protobuf bytes.
    """
    out = pb.RPC()
    for sub in rpc.subscriptions:
        out.subscriptions.add(subscribe=sub.subscribe, topicid=sub.topic.encode())
    out.publish.extend(message_to_pb(message) for message in rpc.publish)
    if rpc.control is not None:
        out.control.SetInParent()  # present even when empty, as the value says
        out.control.MergeFrom(_control_to_pb(rpc.control))
    return out.SerializeToString()


def frame_rpc(rpc: RPC) -> bytes:
    """Encode an RPC with its unsigned-varint length prefix, as written on a pubsub stream.

    Args:
        rpc: the RPC.

    Returns:
        The framed bytes.
    """
    return encode_lp(encode_rpc(rpc))


def _message_from_pb(raw: pb.Message) -> Message:
    if not raw.HasField("topic"):
        raise PubsubProtocolError("message without a topic")
    return Message(
        topic=_topic(raw.topic, "message"),
        data=raw.data,
        from_=_peer_id(getattr(raw, "from"), "message from") if raw.HasField("from") else None,
        seqno=raw.seqno if raw.HasField("seqno") else None,
        signature=raw.signature if raw.HasField("signature") else None,
        key=raw.key if raw.HasField("key") else None,
    )


def _required_topic(raw: pb.ControlIHave | pb.ControlGraft | pb.ControlPrune, kind: str) -> str:
    if not raw.HasField("topicID"):
        raise PubsubProtocolError(f"{kind} without a topic")
    return _topic(raw.topicID, kind)


def _prune_from_pb(raw: pb.ControlPrune) -> ControlPrune:
    if raw.HasField("backoff") and raw.backoff > MAX_BACKOFF:
        raise PubsubProtocolError(f"PRUNE backoff of {raw.backoff} s is over {MAX_BACKOFF} s")
    peers: list[PeerInfo] = []
    for info in raw.peers:
        if not info.HasField("peerID"):
            raise PubsubProtocolError("PRUNE peer exchange entry without a peer ID")
        record = info.signedPeerRecord if info.HasField("signedPeerRecord") else None
        peers.append(PeerInfo(_peer_id(info.peerID, "PRUNE peer"), record))
    return ControlPrune(
        topic=_required_topic(raw, "PRUNE"),
        peers=tuple(peers),
        backoff=raw.backoff if raw.HasField("backoff") else None,
    )


def _control_from_pb(raw: pb.ControlMessage) -> ControlMessage:
    return ControlMessage(
        ihave=tuple(
            ControlIHave(_required_topic(item, "IHAVE"), item.messageIDs) for item in raw.ihave
        ),
        iwant=tuple(ControlIWant(item.messageIDs) for item in raw.iwant),
        graft=tuple(ControlGraft(_required_topic(item, "GRAFT")) for item in raw.graft),
        prune=tuple(_prune_from_pb(item) for item in raw.prune),
        idontwant=tuple(ControlIDontWant(item.messageIDs) for item in raw.idontwant),
    )


def _parse(message: pb.RPC | pb.Message, data: Buffer, max_size: int, what: str) -> None:
    if len(data) > max_size:
        raise PubsubProtocolError(f"{what} of {len(data)} bytes is over the {max_size}-byte limit")
    try:
        message.ParseFromString(bytes(data))
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise PubsubProtocolError(f"malformed {what}: {exc}") from None


def decode_message(data: Buffer, *, max_size: int = DEFAULT_MAX_RPC_SIZE) -> Message:
    """Decode one ``Message`` protobuf.

    Args:
        data: the protobuf bytes.
        max_size: the largest accepted size in bytes.

    Returns:
        The message.

    Raises:
        PubsubProtocolError: the bytes are malformed or too large.
    """
    raw = pb.Message()
    _parse(raw, data, max_size, "message")
    return _message_from_pb(raw)


def decode_rpc(data: Buffer, *, max_size: int = DEFAULT_MAX_RPC_SIZE) -> RPC:
    """Decode an RPC protobuf (without its length prefix).

    Unknown fields are skipped, as protobuf readers do (later versions may add some).

    Args:
        data: the protobuf bytes.
        max_size: the largest accepted RPC in bytes.

    Returns:
        The RPC.

    Raises:
        PubsubProtocolError: the bytes are malformed or too large.
    """
    raw = pb.RPC()
    _parse(raw, data, max_size, "RPC")
    if any(not sub.HasField("topicid") for sub in raw.subscriptions):
        raise PubsubProtocolError("subscription without a topic")
    subscriptions = tuple(
        SubOpts(sub.subscribe, _topic(sub.topicid, "subscription")) for sub in raw.subscriptions
    )
    return RPC(
        subscriptions=subscriptions,
        publish=tuple(_message_from_pb(message) for message in raw.publish),
        control=_control_from_pb(raw.control) if raw.HasField("control") else None,
    )


class RpcDecoder:
    """Sans-IO decoder of the RPCs of one pubsub stream (length-prefixed protobufs).

    Bounds: at most one partial RPC (``max_size`` bytes plus its prefix) is buffered.

    Args:
        max_size: the largest accepted RPC in bytes.
    """

    __slots__ = ("_lp", "_max_size")

    def __init__(self, max_size: int = DEFAULT_MAX_RPC_SIZE) -> None:
        self._max_size = max_size
        self._lp = LpDecoder(max_size)

    @property
    def buffered(self) -> int:
        """Bytes held of a partial RPC."""
        return self._lp.buffered

    def feed(self, data: Buffer) -> list[RPC]:
        """Add received bytes.

        Args:
            data: the next bytes of the stream.

        Returns:
            The RPCs completed by ``data``, in order.

        Raises:
            PubsubProtocolError: a prefix or an RPC is malformed or too large; the stream must
                be closed (the decoder is not usable afterwards).
        """
        try:
            bodies = self._lp.feed(data)
        except RemoteProtocolError as exc:
            raise PubsubProtocolError(str(exc)) from None
        return [decode_rpc(body, max_size=self._max_size) for body in bodies]
