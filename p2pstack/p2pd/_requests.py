"""Builders of p2pd control requests (``Request`` protobufs), one per request the client sends;
:func:`p2pstack.p2pd.encode_request` frames them for the control socket."""

from __future__ import annotations

import math
from collections.abc import Sequence

from multiaddr import Multiaddr

from p2pstack.identity import PeerId
from p2pstack.p2pd._codec import strings
from p2pstack.p2pd.pb import p2pd_pb2 as pb

__all__ = [
    "connect",
    "connmanager",
    "dht",
    "disconnect",
    "identify",
    "list_peers",
    "peerstore",
    "pubsub",
    "stream_handler",
    "stream_open",
]

Req = pb.Request


def _seconds(timeout: float | None) -> int | None:
    """A whole number of seconds for the daemon (at least 1), or ``None`` for its default."""
    return None if timeout is None else max(1, math.ceil(timeout))


def identify() -> pb.Request:
    """IDENTIFY: the daemon's peer ID and listen addresses."""
    return Req(type=Req.IDENTIFY)


def connect(peer: PeerId, addrs: Sequence[Multiaddr], timeout: float | None) -> pb.Request:
    """CONNECT to ``peer`` at ``addrs`` (the daemon may also know other addresses)."""
    msg = pb.ConnectRequest(peer=peer.to_bytes(), addrs=[a.to_bytes() for a in addrs])
    if (secs := _seconds(timeout)) is not None:
        msg.timeout = secs
    return Req(type=Req.CONNECT, connect=msg)


def disconnect(peer: PeerId) -> pb.Request:
    """DISCONNECT from ``peer``."""
    return Req(type=Req.DISCONNECT, disconnect=pb.DisconnectRequest(peer=peer.to_bytes()))


def list_peers() -> pb.Request:
    """LIST_PEERS: the peers the daemon is connected to."""
    return Req(type=Req.LIST_PEERS)


def stream_open(peer: PeerId, protocols: Sequence[str], timeout: float | None) -> pb.Request:
    """STREAM_OPEN to ``peer`` with the first of ``protocols`` it supports."""
    msg = pb.StreamOpenRequest(peer=peer.to_bytes(), proto=strings(protocols))
    if (secs := _seconds(timeout)) is not None:
        msg.timeout = secs
    return Req(type=Req.STREAM_OPEN, streamOpen=msg)


def stream_handler(addr: Multiaddr, protocols: Sequence[str]) -> pb.Request:
    """STREAM_HANDLER: dial ``addr`` for every inbound stream of ``protocols``."""
    msg = pb.StreamHandlerRequest(addr=addr.to_bytes(), proto=strings(protocols))
    return Req(type=Req.STREAM_HANDLER, streamHandler=msg)


def dht(
    kind: pb.DHTRequest.Type.ValueType,
    *,
    peer: PeerId | None = None,
    cid: bytes | None = None,
    key: bytes | None = None,
    value: bytes | None = None,
    count: int | None = None,
    timeout: float | None = None,
) -> pb.Request:
    """A DHT request of type ``kind`` with the fields given."""
    msg = pb.DHTRequest(type=kind)
    if peer is not None:
        msg.peer = peer.to_bytes()
    if cid is not None:
        msg.cid = cid
    if key is not None:
        msg.key = key
    if value is not None:
        msg.value = value
    if count is not None:
        msg.count = count
    if (secs := _seconds(timeout)) is not None:
        msg.timeout = secs
    return Req(type=Req.DHT, dht=msg)


def pubsub(
    kind: pb.PSRequest.Type.ValueType, *, topic: str | None = None, data: bytes | None = None
) -> pb.Request:
    """A PUBSUB request of type ``kind``."""
    msg = pb.PSRequest(type=kind)
    if topic is not None:
        msg.topic = topic
    if data is not None:
        msg.data = data
    return Req(type=Req.PUBSUB, pubsub=msg)


def connmanager(
    kind: pb.ConnManagerRequest.Type.ValueType,
    *,
    peer: PeerId | None = None,
    tag: str | None = None,
    weight: int | None = None,
) -> pb.Request:
    """A CONNMANAGER request of type ``kind``."""
    msg = pb.ConnManagerRequest(type=kind)
    if peer is not None:
        msg.peer = peer.to_bytes()
    if tag is not None:
        msg.tag = tag
    if weight is not None:
        msg.weight = weight
    return Req(type=Req.CONNMANAGER, connManager=msg)


def peerstore(
    kind: pb.PeerstoreRequest.Type.ValueType, peer: PeerId, protocols: Sequence[str] = ()
) -> pb.Request:
    """A PEERSTORE request (js-libp2p's request type 9) of type ``kind`` about ``peer``."""
    msg = pb.PeerstoreRequest(type=kind, id=peer.to_bytes(), protos=list(protocols))
    return Req(type=Req.PEERSTORE, peerStore=msg)
