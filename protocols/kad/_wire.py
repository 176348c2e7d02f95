"""Kademlia DHT wire format: the ``Message`` protobuf to and from :class:`KadMessage`, its
unsigned-varint length-prefixed framing, and a sans-IO stream decoder
(https://github.com/libp2p/specs/blob/master/kad-dht/README.md#rpc-messages).

What real peers send (go-libp2p-kad-dht, js ``@libp2p/kad-dht`` 16, py-libp2p 0.8):

* ``type`` is a proto3 enum, so ``PUT_VALUE`` (0) never appears on the wire; an absent type
  *is* PUT_VALUE. Types outside the spec's six are refused.
* ``clusterLevelRaw`` (field 10) is unused by the protocol. go sends its level plus one (so 1),
  js omits it in requests and echoes the request's value in responses. ``cluster_level`` carries
  the raw field unchanged in both directions (0, i.e. omitted, unless set).
* Peer ``id`` is the binary peer ID (a multihash) and ``addrs`` are *binary* multiaddrs.
  An address that does not parse (or does not re-encode to its own bytes) is dropped, as go
  drops it; the peer is kept. A bad peer ID fails the whole message (js's decoder throws on it
  too; go carries it along and fails later).
  A ``connection`` value outside the spec's four reads as ``NOT_CONNECTED`` (no information).
* ``Record.timeReceived`` is an RFC 3339 string set by the storing node (js writes nine
  fractional digits, ``2006-01-02T15:04:05.000000000Z``; go ``time.RFC3339Nano``, which trims
  trailing zeros). The decoder requires only valid
  UTF-8, as proto3 ``string`` does: receivers set their own time, and py-libp2p once sent a Unix
  time there. :func:`format_time_received` writes the form js and go both parse.
* Unknown fields (rust's ``publisher``/``ttl`` in records, for example) are ignored.

Decoding cost is bounded as well as size: at most :data:`MAX_PEERS_PER_LIST` peers per list,
:data:`MAX_ADDRS_PER_PEER` addresses per peer and :data:`MAX_ADDRS_PER_MESSAGE` per message are
read; further entries are ignored (not an error: go returns every provider it holds).

Size bound: :data:`MAX_MESSAGE_SIZE` is 64 KiB, not go's and js's 4 MiB. Legitimate messages are
small: 20 closer peers with a few addresses each take about 2 KiB, IPNS records are at most
10 KiB by the IPNS spec, public keys under 1 KiB, and the 100 providers read from an answer fit
with room to spare. The bound multiplies: every inbound stream buffers up to one message, so
with the service's per-peer and total stream limits a 4 MiB bound would let 1,000 peers with 8
requests each pin 32 GB, where 64 KiB bounds them to 512 MB. Values larger than 64 KiB put by
a go or js peer in a user namespace are therefore not readable with the default; callers that
need them pass ``max_size`` (``frame`` applies the same bound when sending, so we never send
what we would refuse).
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Sequence

from google.protobuf.message import DecodeError
from multiaddr import Multiaddr

from p2pstack.errors import IdentityError, RemoteProtocolError
from p2pstack.framing import LpDecoder, encode_lp
from p2pstack.identity import PeerId
from p2pstack.multiaddrs import decode_multiaddr
from protocols.kad import dht_pb2
from protocols.kad._types import (
    ConnectionType,
    KadMessage,
    KadPeer,
    KadProtocolError,
    MessageType,
    Record,
)

__all__ = [
    "MAX_ADDRS_PER_MESSAGE",
    "MAX_ADDRS_PER_PEER",
    "MAX_MESSAGE_SIZE",
    "MAX_PEERS_PER_LIST",
    "KadMessageDecoder",
    "decode_message",
    "encode_message",
    "format_time_received",
    "frame",
]

#: Largest encoded message (without its length prefix) sent or accepted; see the module docs.
MAX_MESSAGE_SIZE = 64 * 1024
#: Peers read from each of ``closerPeers`` and ``providerPeers``; the rest are ignored. Answers
#: carry k = 20 closer peers; 100 leaves room for larger k and for providers.
MAX_PEERS_PER_LIST = 100
#: Addresses read per peer (the rest are ignored); public IPFS nodes announce about 5-20.
MAX_ADDRS_PER_PEER = 32
#: Addresses read per message, over all its peers (the rest are ignored).
MAX_ADDRS_PER_MESSAGE = 512

_CONNECTIONS = {int(c): c for c in ConnectionType}
_TYPES = {int(t): t for t in MessageType}
_CACHED_ADDR_LEN = 100


def format_time_received(timestamp: float) -> str:
    """Format a Unix time as ``Record.timeReceived``: RFC 3339 in UTC with nine fractional
    digits, as js writes it; go parses any RFC 3339 time, and js's stricter parser requires the
    fractional part (which go's ``time.RFC3339Nano`` omits on a whole second).

    Args:
        timestamp: seconds since the Unix epoch (wall clock, not the anyio clock).

    Returns:
        For example ``"2024-11-23T12:34:56.789000000Z"``.
    """
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond * 1000:09d}Z"


def _peer_to_pb(peer: KadPeer, out: dht_pb2.Message.Peer) -> None:
    out.id = peer.peer_id.to_bytes()
    out.addrs.extend(addr.to_bytes() for addr in peer.addrs)
    out.connection = dht_pb2.Message.ConnectionType.ValueType(int(peer.connection))


def encode_message(message: KadMessage) -> bytes:
    """Serialise ``message`` as a ``Message`` protobuf (without the length prefix).

    Args:
        message: the message; ``cluster_level`` must fit a signed 32-bit integer.

    Returns:
        The protobuf bytes (empty for a PUT_VALUE with no fields set).

    Raises:
        ValueError: ``cluster_level`` is out of the int32 range.
    """
    pb = dht_pb2.Message(
        type=dht_pb2.Message.MessageType.ValueType(int(message.type)),
        clusterLevelRaw=message.cluster_level,
        key=message.key,
    )
    if message.record is not None:
        record = message.record
        pb.record.SetInParent()  # present even when every field is empty
        pb.record.key = record.key
        pb.record.value = record.value
        pb.record.timeReceived = record.time_received.encode()
    for peer in message.closer_peers:
        _peer_to_pb(peer, pb.closerPeers.add())
    for peer in message.provider_peers:
        _peer_to_pb(peer, pb.providerPeers.add())
    return pb.SerializeToString()


def frame(message: KadMessage, *, max_size: int = MAX_MESSAGE_SIZE) -> bytes:
    """Encode ``message`` with its unsigned-varint length prefix, ready for a stream.

    Args:
        message: the message.
        max_size: refuse to produce a message the receiver's bound (ours by default) rejects.

    Returns:
        The framed message.

    Raises:
        ValueError: the encoded message is larger than ``max_size``, or ``cluster_level`` is out
            of range.
    """
    body = encode_message(message)
    if len(body) > max_size:
        raise ValueError(f"DHT message of {len(body)} bytes is over the {max_size}-byte limit")
    return encode_lp(body)


def _parse_addr(data: bytes) -> Multiaddr | None:
    if len(data) <= _CACHED_ADDR_LEN:
        return _parse_short_addr(data)
    return decode_multiaddr(data)


# The same few addresses come back in every answer; caching only short ones bounds the cache
# to about 1024 * 100 bytes of keys.
@functools.lru_cache(maxsize=1024)
def _parse_short_addr(data: bytes) -> Multiaddr | None:
    return decode_multiaddr(data)


class _AddrBudget:
    """How many more addresses one message may have parsed (the multiaddr library takes ~75 us
    per address, so 64 KiB of 7-byte addresses would cost 0.7 s of CPU without it)."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_ADDRS_PER_MESSAGE

    def take(self, raw: Sequence[bytes]) -> tuple[Multiaddr, ...]:
        raw = raw[: min(MAX_ADDRS_PER_PEER, self.left)]
        self.left -= len(raw)
        addrs = (_parse_addr(bytes(data)) for data in raw)
        return tuple(dict.fromkeys(a for a in addrs if a is not None))


def _peers_from_pb(pbs: Sequence[dht_pb2.Message.Peer], budget: _AddrBudget) -> tuple[KadPeer, ...]:
    peers = []
    for pb in pbs[:MAX_PEERS_PER_LIST]:
        try:
            peer_id = PeerId.from_bytes(pb.id)
        except IdentityError as exc:
            raise KadProtocolError(f"invalid peer ID in DHT message: {exc}") from None
        connection = _CONNECTIONS.get(pb.connection, ConnectionType.NOT_CONNECTED)
        peers.append(KadPeer(peer_id=peer_id, addrs=budget.take(pb.addrs), connection=connection))
    return tuple(peers)


def _record_from_pb(pb: dht_pb2.Record) -> Record:
    try:
        time_received = pb.timeReceived.decode()
    except UnicodeDecodeError:
        raise KadProtocolError("Record.timeReceived is not UTF-8") from None
    return Record(key=pb.key, value=pb.value, time_received=time_received)


def decode_message(data: bytes, *, max_size: int = MAX_MESSAGE_SIZE) -> KadMessage:
    """Decode one ``Message`` protobuf (without the length prefix).

    Args:
        data: the message bytes.
        max_size: the largest message accepted.

    Returns:
        The message; unknown fields ignored, unreadable addresses dropped (see module docs).

    Raises:
        KadProtocolError: over ``max_size``, not a protobuf ``Message``, a type outside the
            spec, a peer ID that is not a valid binary peer ID, or a non-UTF-8 ``timeReceived``.
    """
    if len(data) > max_size:
        raise KadProtocolError(f"DHT message of {len(data)} bytes is over {max_size}")
    pb = dht_pb2.Message()
    try:
        pb.ParseFromString(bytes(data))
    except DecodeError as exc:
        raise KadProtocolError(f"invalid DHT message: {exc}") from None
    kind = _TYPES.get(pb.type)
    if kind is None:
        raise KadProtocolError(f"unknown DHT message type {pb.type}")
    budget = _AddrBudget()
    return KadMessage(
        type=kind,
        key=pb.key,
        record=_record_from_pb(pb.record) if pb.HasField("record") else None,
        closer_peers=_peers_from_pb(pb.closerPeers, budget),
        provider_peers=_peers_from_pb(pb.providerPeers, budget),
        cluster_level=pb.clusterLevelRaw,
    )


class KadMessageDecoder:
    """Sans-IO decoder of the length-prefixed messages of one DHT stream.

    Holds at most one partial message (``max_size`` plus a 10-byte prefix) between calls. After
    it raises, the stream is broken and the decoder must not be fed again.

    Args:
        max_size: the largest message accepted, in bytes.

    Raises:
        ValueError: ``max_size`` is negative.
    """

    __slots__ = ("_lp", "_max_size")

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._lp = LpDecoder(max_size)
        self._max_size = max_size

    @property
    def buffered(self) -> int:
        """Bytes of a partial message held."""
        return self._lp.buffered

    def feed(self, data: bytes) -> list[KadMessage]:
        """Add received bytes.

        Args:
            data: the next bytes of the stream.

        Returns:
            The messages completed by ``data``, in order (possibly none).

        Raises:
            KadProtocolError: a malformed or oversized length prefix, or a malformed message.
        """
        try:
            bodies = self._lp.feed(data)
        except RemoteProtocolError as exc:
            raise KadProtocolError(str(exc)) from None
        return [decode_message(body, max_size=self._max_size) for body in bodies]
