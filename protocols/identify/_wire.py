"""Identify wire format: the protobuf message, its length-prefixed framing, and a tolerant decoder
(https://github.com/libp2p/specs/blob/master/identify/README.md#the-identify-message).

No I/O: the service reads the stream to its end (bounded) and hands the bytes to
``decode_identify_stream``.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from google.protobuf.message import DecodeError
from multiaddr import Multiaddr
from multiaddr.protocols import P_P2P

from p2pstack.errors import RemoteProtocolError
from p2pstack.framing import LpDecoder, encode_lp
from p2pstack.multiaddrs import decode_multiaddr
from protocols.identify.identify_pb2 import Identify as IdentifyPb

__all__ = [
    "MAX_INBOUND_SIZE",
    "MAX_MESSAGES",
    "MAX_OUTBOUND_SIZE",
    "PROTOCOL_ID",
    "PUSH_PROTOCOL_ID",
    "IdentifyMessage",
    "decode_identify",
    "decode_identify_stream",
    "encode_identify",
    "frame_identify",
]

PROTOCOL_ID = "/ipfs/id/1.0.0"
PUSH_PROTOCOL_ID = "/ipfs/id/push/1.0.0"

#: Largest Identify message we send. js-libp2p and go-libp2p refuse messages above 8 KiB, so a
#: larger one would be dropped by them; ``frame_identify`` trims to fit.
MAX_OUTBOUND_SIZE = 8 * 1024
#: Most bytes read from one identify stream. Larger than the 8 KiB peers send so that a peer
#: splitting its message (go sends the signed record as a second message) still fits.
MAX_INBOUND_SIZE = 64 * 1024
#: Most length-prefixed messages merged from one stream (go-libp2p reads at most 10).
MAX_MESSAGES = 10


@attrs.frozen(kw_only=True)
class IdentifyMessage:
    """One decoded Identify message. ``None`` / empty means the field was absent.

    Attributes:
        protocol_version: field 5, e.g. ``"ipfs/0.1.0"``.
        agent_version: field 6, e.g. ``"js-libp2p/3.3.11"``.
        public_key: field 1, the libp2p ``PublicKey`` protobuf bytes.
        listen_addrs: field 2; entries that do not parse as multiaddrs are dropped.
        observed_addr: field 4, how the sender sees us.
        protocols: field 3.
        signed_peer_record: field 8, a signed envelope holding a peer record (unverified here).
    """

    protocol_version: str | None = None
    agent_version: str | None = None
    public_key: bytes | None = None
    listen_addrs: tuple[Multiaddr, ...] = ()
    observed_addr: Multiaddr | None = None
    protocols: tuple[str, ...] = ()
    signed_peer_record: bytes | None = None


def _text(data: bytes) -> str:
    # The fields are UTF-8 text by spec; a peer's bad bytes must not make identify fail.
    return data.decode("utf-8", errors="replace")


def encode_identify(msg: IdentifyMessage) -> bytes:
    """Serialise ``msg`` as an Identify protobuf (without the length prefix)."""
    pb = IdentifyPb(
        listenAddrs=[a.to_bytes() for a in msg.listen_addrs],
        protocols=[p.encode() for p in msg.protocols],
    )
    if msg.protocol_version is not None:
        pb.protocolVersion = msg.protocol_version.encode()
    if msg.agent_version is not None:
        pb.agentVersion = msg.agent_version.encode()
    if msg.public_key is not None:
        pb.publicKey = msg.public_key
    if msg.observed_addr is not None:
        pb.observedAddr = msg.observed_addr.to_bytes()
    if msg.signed_peer_record is not None:
        pb.signedPeerRecord = msg.signed_peer_record
    return pb.SerializeToString()


def _from_pb(pb: IdentifyPb) -> IdentifyMessage:
    listen = (decode_multiaddr(a) for a in pb.listenAddrs)
    return IdentifyMessage(
        protocol_version=_text(pb.protocolVersion) if pb.HasField("protocolVersion") else None,
        agent_version=_text(pb.agentVersion) if pb.HasField("agentVersion") else None,
        public_key=pb.publicKey if pb.HasField("publicKey") else None,
        listen_addrs=tuple(dict.fromkeys(a for a in listen if a is not None)),
        observed_addr=_transport_part(decode_multiaddr(pb.observedAddr))
        if pb.HasField("observedAddr")
        else None,
        protocols=tuple(dict.fromkeys(_text(p) for p in pb.protocols if p)),
        signed_peer_record=pb.signedPeerRecord if pb.HasField("signedPeerRecord") else None,
    )


def decode_identify(data: bytes) -> IdentifyMessage:
    """Decode one Identify protobuf (without length prefix), tolerantly: unknown fields are
    ignored, unparsable multiaddrs skipped, invalid UTF-8 replaced, missing fields left empty.

    Raises:
        RemoteProtocolError: ``data`` is not a protobuf message at all.
    """
    pb = IdentifyPb()
    try:
        pb.ParseFromString(data)
    except DecodeError as exc:
        raise RemoteProtocolError(f"invalid Identify message: {exc}") from None
    return _from_pb(pb)


def _split_delimited(data: bytes) -> list[bytes] | None:
    """Cut ``data`` into uvarint-length-prefixed chunks, or ``None`` if it is not exactly that."""
    decoder = LpDecoder(MAX_INBOUND_SIZE, max_messages=MAX_MESSAGES)
    try:
        chunks = decoder.feed(data)
    except RemoteProtocolError:
        return None
    return chunks if chunks and not decoder.buffered else None


def decode_identify_stream(data: bytes) -> IdentifyMessage:
    """Decode everything a peer wrote on an identify (or push) stream before closing it.

    Current peers send one uvarint-length-prefixed message; go-libp2p may send several (the
    signed record in a second one), which are merged as protobuf merges them (repeated fields
    appended, later singular fields win). Older py-libp2p sends the bare protobuf without a
    prefix; that form is accepted when the bytes do not frame exactly as prefixed messages.

    Args:
        data: every byte read from the stream, at most ``MAX_INBOUND_SIZE``.

    Raises:
        RemoteProtocolError: the stream was empty, too large, or not an Identify message.
    """
    if not data:
        raise RemoteProtocolError("identify stream closed without a message")
    if len(data) > MAX_INBOUND_SIZE:
        raise RemoteProtocolError(f"identify message larger than {MAX_INBOUND_SIZE} bytes")
    chunks = _split_delimited(data)
    pb = IdentifyPb()
    try:
        if chunks is not None:
            for chunk in chunks:
                pb.MergeFromString(chunk)
            return _from_pb(pb)
    except DecodeError:
        pb.Clear()  # framed by chance but not protobuf: try the unprefixed form below
    return decode_identify(data)


def frame_identify(msg: IdentifyMessage, max_size: int = MAX_OUTBOUND_SIZE) -> bytes:
    """Encode ``msg`` with its uvarint length prefix, trimmed to at most ``max_size`` bytes.

    If too large, listen addresses are dropped from the end first, then protocols (go-libp2p
    trims the same way); the signed record is kept, since it carries the addresses too.

    Raises:
        ValueError: even without addresses and protocols the message exceeds ``max_size``.
    """
    body = encode_identify(msg)
    addrs: Sequence[Multiaddr] = msg.listen_addrs
    protocols: Sequence[str] = msg.protocols
    while len(encode_lp(body)) > max_size:
        if addrs:
            addrs = addrs[:-1]
        elif protocols:
            protocols = protocols[:-1]
        else:
            raise ValueError(f"Identify message cannot fit in {max_size} bytes")
        body = encode_identify(
            attrs.evolve(msg, listen_addrs=tuple(addrs), protocols=tuple(protocols))
        )
    return encode_lp(body)


def _transport_part(addr: Multiaddr | None) -> Multiaddr | None:
    """The observed address without a trailing ``/p2p/<id>``: js-libp2p appends the observer's
    view of our peer ID, which is not part of the address others can reach us at."""
    if addr is None or addr.get_peer_id() is None:
        return addr
    try:
        rest = addr.decapsulate_code(P_P2P)
    except ValueError:
        return None
    return rest if str(rest) not in ("", "/") else None
