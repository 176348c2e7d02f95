"""SWIM wire format: :class:`Message` (one primary plus piggybacked broadcasts) to and from the
``swim.proto`` protobuf, with size and count bounds, and the canonical bytes that alive and leave
claims are signed over (docs/membership.md#wire-format).

Decoding checks everything a claim's shape can violate: peer IDs parse, at most ``max_addrs``
addresses of at most ``max_addr_len`` bytes, metadata within ``max_metadata_size`` with UTF-8
unique keys and a finite load, incarnations below 2**63. Signatures and incarnation jumps need
the member table, so the core checks those.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence

import attrs

from p2pstack.framing import encode_lp
from p2pstack.identity import PeerId
from p2pstack.varint import encode_uvarint
from protocols.membership import swim_pb2
from protocols.membership._types import (
    PROTOCOL_ID,
    MemberState,
    MessageTooLarge,
    Metadata,
)

__all__ = [
    "Ack",
    "Alive",
    "Broadcast",
    "Dead",
    "Leave",
    "MemberRecord",
    "Message",
    "Nack",
    "Ping",
    "PingReq",
    "Primary",
    "PushPull",
    "Suspect",
    "WireLimits",
    "alive_payload",
    "broadcast_size",
    "encode_broadcast",
    "encode_message",
    "leave_payload",
]


@attrs.frozen
class Alive:
    """A signed claim by ``peer_id`` that it is alive at ``incarnation``."""

    peer_id: PeerId
    incarnation: int
    addrs: tuple[bytes, ...]
    metadata: Metadata
    signature: bytes


@attrs.frozen
class Suspect:
    """``sender`` suspects ``peer_id`` at ``incarnation`` (unsigned: any member may say so)."""

    peer_id: PeerId
    incarnation: int
    sender: PeerId


@attrs.frozen
class Dead:
    """``sender`` declares ``peer_id`` dead at ``incarnation`` (unsigned)."""

    peer_id: PeerId
    incarnation: int
    sender: PeerId


@attrs.frozen
class Leave:
    """A signed claim by ``peer_id`` that it leaves at ``incarnation``."""

    peer_id: PeerId
    incarnation: int
    signature: bytes


Broadcast = Alive | Suspect | Dead | Leave


@attrs.frozen
class Ping:
    seq: int
    target: PeerId


@attrs.frozen
class Ack:
    seq: int


@attrs.frozen
class PingReq:
    seq: int
    target: PeerId


@attrs.frozen
class Nack:
    seq: int


@attrs.frozen
class MemberRecord:
    """One member in a push-pull: its latest signed alive claim and our state of it."""

    alive: Alive
    state: MemberState
    incarnation: int
    leave_signature: bytes = b""


@attrs.frozen
class PushPull:
    join: bool
    reply: bool
    members: tuple[MemberRecord, ...]


Primary = Ping | Ack | PingReq | Nack | PushPull


@attrs.frozen
class Message:
    """One SWIM message: a primary (``None`` for pure gossip) and piggybacked broadcasts."""

    primary: Primary | None
    broadcasts: tuple[Broadcast, ...] = ()


@attrs.frozen(kw_only=True)
class WireLimits:
    """Decoding bounds (the core passes its :class:`SwimConfig` values)."""

    max_size: int = 64 * 1024
    max_metadata_size: int = 512
    max_addrs: int = 8
    max_addr_len: int = 128


def _u64(value: int) -> bytes:
    return struct.pack(">Q", value)


def alive_payload(
    peer_id: PeerId, incarnation: int, addrs: tuple[bytes, ...], meta: Metadata
) -> bytes:
    """The bytes an alive claim's signature covers (entries sorted by key). Cached: each claim
    is checked by every member that hears it, and gossip repeats it."""
    # The packed load is part of the key: 0.0 == -0.0 but their encodings differ.
    return _alive_payload(peer_id, incarnation, tuple(addrs), meta, struct.pack(">d", meta.load))


@functools.lru_cache(maxsize=16384)
def _alive_payload(
    peer_id: PeerId, incarnation: int, addrs: tuple[bytes, ...], meta: Metadata, load: bytes
) -> bytes:
    parts = [f"{PROTOCOL_ID}/alive\n".encode(), encode_lp(peer_id.to_bytes()), _u64(incarnation)]
    parts.append(encode_uvarint(len(addrs)))
    parts.extend(encode_lp(a) for a in addrs)
    parts.append(load)
    parts.append(encode_uvarint(len(meta.entries)))
    for key in sorted(meta.entries):
        parts.append(encode_lp(key.encode()) + encode_lp(meta.entries[key]))
    return b"".join(parts)


def leave_payload(peer_id: PeerId, incarnation: int) -> bytes:
    """The bytes a leave claim's signature covers."""
    return f"{PROTOCOL_ID}/leave\n".encode() + encode_lp(peer_id.to_bytes()) + _u64(incarnation)


# --- encoding ---------------------------------------------------------------------------------


def _alive_pb(a: Alive) -> swim_pb2.Alive:
    meta = swim_pb2.Metadata(
        load=a.metadata.load,
        entries=[
            swim_pb2.Entry(key=k.encode(), value=v) for k, v in sorted(a.metadata.entries.items())
        ],
    )
    return swim_pb2.Alive(
        peer_id=a.peer_id.to_bytes(),
        incarnation=a.incarnation,
        addrs=list(a.addrs),
        metadata=meta,
        signature=a.signature,
    )


def _broadcast_pb(b: Broadcast) -> swim_pb2.Broadcast:
    match b:
        case Alive():
            return swim_pb2.Broadcast(alive=_alive_pb(b))
        case Suspect(peer_id, inc, sender):
            return swim_pb2.Broadcast(
                suspect=swim_pb2.Suspect(
                    peer_id=peer_id.to_bytes(), incarnation=inc, **{"from": sender.to_bytes()}
                )
            )
        case Dead(peer_id, inc, sender):
            return swim_pb2.Broadcast(
                dead=swim_pb2.Dead(
                    peer_id=peer_id.to_bytes(), incarnation=inc, **{"from": sender.to_bytes()}
                )
            )
        case Leave(peer_id, inc, sig):
            return swim_pb2.Broadcast(
                leave=swim_pb2.Leave(peer_id=peer_id.to_bytes(), incarnation=inc, signature=sig)
            )


def encode_broadcast(b: Broadcast) -> bytes:
    """``b`` as the bytes of one ``Message.broadcasts`` field (tag and length included), which
    may be appended to any encoded message (protobuf concatenates repeated fields)."""
    body = _broadcast_pb(b).SerializeToString()
    return b"\x7a" + encode_uvarint(len(body)) + body


def broadcast_size(b: Broadcast) -> int:
    """Bytes ``b`` adds to a message (field tag and length included)."""
    return len(encode_broadcast(b))


def _set_primary(pb: swim_pb2.Message, p: Primary) -> None:
    match p:
        case Ping(seq, target):
            pb.ping.CopyFrom(swim_pb2.Ping(seq=seq, target=target.to_bytes()))
        case Ack(seq):
            pb.ack.CopyFrom(swim_pb2.Ack(seq=seq))
        case PingReq(seq, target):
            pb.ping_req.CopyFrom(swim_pb2.PingReq(seq=seq, target=target.to_bytes()))
        case Nack(seq):
            pb.nack.CopyFrom(swim_pb2.Nack(seq=seq))
        case PushPull(join, reply, members):
            records = [
                swim_pb2.MemberRecord(
                    alive=_alive_pb(r.alive),
                    state=int(r.state),  # type: ignore[arg-type]  # protobuf enums are ints
                    incarnation=r.incarnation,
                    leave_signature=r.leave_signature,
                )
                for r in members
            ]
            pb.push_pull.CopyFrom(swim_pb2.PushPull(join=join, reply=reply, members=records))


def encode_message(message: Message, *, max_size: int, encoded: Sequence[bytes] = ()) -> bytes:
    """Serialise ``message``, followed by the already encoded broadcasts ``encoded`` (from
    :func:`encode_broadcast`; they decode after ``message.broadcasts``).

    Raises:
        MessageTooLarge: the encoding exceeds ``max_size``.
    """
    pb = swim_pb2.Message(broadcasts=[_broadcast_pb(b) for b in message.broadcasts])
    if message.primary is not None:
        _set_primary(pb, message.primary)
    data = pb.SerializeToString() + b"".join(encoded)
    if len(data) > max_size:
        raise MessageTooLarge(f"SWIM message of {len(data)} bytes exceeds {max_size}")
    return data
