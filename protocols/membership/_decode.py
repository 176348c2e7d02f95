"""Decoding of SWIM messages (``swim.proto``) into :mod:`protocols.membership._wire` values, with
every bound checked; anything malformed raises a :class:`SwimProtocolError` subclass."""

from __future__ import annotations

import math

from google.protobuf.message import DecodeError

from p2pstack.errors import IdentityError
from p2pstack.identity import PeerId
from protocols.membership import swim_pb2
from protocols.membership._types import (
    MemberState,
    MessageTooLarge,
    Metadata,
    MetadataTooLarge,
    SwimProtocolError,
)
from protocols.membership._wire import (
    Ack,
    Alive,
    Broadcast,
    Dead,
    Leave,
    MemberRecord,
    Message,
    Nack,
    Ping,
    PingReq,
    Primary,
    PushPull,
    Suspect,
    WireLimits,
)

__all__ = ["decode_message"]

_MAX_INCARNATION = (1 << 63) - 1
_MAX_SIGNATURE = 1024


#: Parsed peer IDs by their bytes: every message names the same few hundred members, and
#: parsing dominated decoding. Bounded: cleared when full.
_PEERS: dict[bytes, PeerId] = {}
_MAX_CACHED_PEERS = 1 << 16


def _peer(data: bytes) -> PeerId:
    peer = _PEERS.get(data)
    if peer is not None:
        return peer
    try:
        peer = PeerId.from_bytes(data)
    except (IdentityError, ValueError) as exc:
        raise SwimProtocolError(f"invalid peer ID in SWIM message: {exc}") from exc
    if len(_PEERS) >= _MAX_CACHED_PEERS:
        _PEERS.clear()
    _PEERS[data] = peer
    return peer


def _incarnation(value: int) -> int:
    if value > _MAX_INCARNATION:
        raise SwimProtocolError(f"incarnation {value} out of range")
    return value


def _signature(sig: bytes) -> bytes:
    if len(sig) > _MAX_SIGNATURE:
        raise SwimProtocolError(f"signature of {len(sig)} bytes")
    return sig


def _metadata(pb: swim_pb2.Metadata, limits: WireLimits) -> Metadata:
    if not math.isfinite(pb.load):
        raise SwimProtocolError("metadata load is not finite")
    entries: dict[str, bytes] = {}
    size = 8
    for entry in pb.entries:
        size += len(entry.key) + len(entry.value)
        if size > limits.max_metadata_size:
            raise MetadataTooLarge(f"metadata exceeds {limits.max_metadata_size} bytes")
        try:
            key = entry.key.decode()
        except UnicodeDecodeError as exc:
            raise SwimProtocolError("metadata key is not UTF-8") from exc
        if key in entries:
            raise SwimProtocolError(f"duplicate metadata key {key!r}")
        entries[key] = entry.value
    return Metadata(load=pb.load, entries=entries)


def _alive(pb: swim_pb2.Alive, limits: WireLimits) -> Alive:
    if len(pb.addrs) > limits.max_addrs:
        raise SwimProtocolError(f"{len(pb.addrs)} addresses (at most {limits.max_addrs})")
    for addr in pb.addrs:
        if len(addr) > limits.max_addr_len:
            raise SwimProtocolError(f"address of {len(addr)} bytes")
    return Alive(
        _peer(pb.peer_id),
        _incarnation(pb.incarnation),
        tuple(pb.addrs),
        _metadata(pb.metadata, limits),
        _signature(pb.signature),
    )


def _broadcast(pb: swim_pb2.Broadcast, limits: WireLimits) -> Broadcast:
    kind = pb.WhichOneof("kind")
    if kind == "alive":
        return _alive(pb.alive, limits)
    if kind == "suspect":
        s = pb.suspect
        return Suspect(_peer(s.peer_id), _incarnation(s.incarnation), _peer(getattr(s, "from")))
    if kind == "dead":
        d = pb.dead
        return Dead(_peer(d.peer_id), _incarnation(d.incarnation), _peer(getattr(d, "from")))
    if kind == "leave":
        lv = pb.leave
        return Leave(_peer(lv.peer_id), _incarnation(lv.incarnation), _signature(lv.signature))
    raise SwimProtocolError("empty broadcast")


def _record(pb: swim_pb2.MemberRecord, limits: WireLimits) -> MemberRecord:
    if not pb.HasField("alive"):
        raise SwimProtocolError("member record without an alive claim")
    try:
        state = MemberState(pb.state)
    except ValueError as exc:
        raise SwimProtocolError(f"unknown member state {pb.state}") from exc
    return MemberRecord(
        _alive(pb.alive, limits),
        state,
        _incarnation(pb.incarnation),
        _signature(pb.leave_signature),
    )


def _primary(pb: swim_pb2.Message, limits: WireLimits) -> Primary | None:
    kind = pb.WhichOneof("primary")
    if kind is None:
        return None
    if kind == "ping":
        return Ping(pb.ping.seq, _peer(pb.ping.target))
    if kind == "ack":
        return Ack(pb.ack.seq)
    if kind == "ping_req":
        return PingReq(pb.ping_req.seq, _peer(pb.ping_req.target))
    if kind == "nack":
        return Nack(pb.nack.seq)
    pp = pb.push_pull
    return PushPull(pp.join, pp.reply, tuple(_record(r, limits) for r in pp.members))


def decode_message(data: bytes, limits: WireLimits) -> Message:
    """Parse one SWIM message.

    Raises:
        MessageTooLarge: ``data`` exceeds ``limits.max_size``.
        MetadataTooLarge: a claim carries metadata over the bound.
        SwimProtocolError: anything else malformed.
    """
    if len(data) > limits.max_size:
        raise MessageTooLarge(f"SWIM message of {len(data)} bytes exceeds {limits.max_size}")
    pb = swim_pb2.Message()
    try:
        pb.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise SwimProtocolError(f"malformed SWIM message: {exc}") from exc
    return Message(_primary(pb, limits), tuple(_broadcast(b, limits) for b in pb.broadcasts))
