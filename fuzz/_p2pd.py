"""Fuzz target for the p2pd client's reply parsing (``p2pstack.p2pd``): a daemon's bytes on a
control connection, split into length-prefixed messages, the first read as a ``Response``
(checked and converted as every request would), the rest as the messages that follow it on a
streaming reply (``DHTResponse``, ``PSMessage``) or on a handler connection (``StreamInfo``).
"""

from __future__ import annotations

from fuzz._common import check, split_control
from p2pstack.errors import RemoteProtocolError
from p2pstack.framing import LpDecoder
from p2pstack.identity import PeerId
from p2pstack.p2pd import (
    DaemonError,
    DaemonProtocolError,
    check_ok,
    decode_dht_item,
    decode_dht_response,
    decode_ps_message,
    decode_response,
    decode_stream_info,
    peer_info,
)
from p2pstack.p2pd._codec import multiaddrs, peer_id, stream_info, texts
from p2pstack.p2pd.pb import p2pd_pb2 as pb

__all__ = ["fuzz_p2pd_reply"]

#: Small, so that short inputs reach the bound.
MAX_SIZE = 2048


def _first(body: bytes) -> None:
    resp = check_ok(decode_response(body))
    if resp.HasField("identify"):
        check(isinstance(peer_id(resp.identify.id), PeerId), "identify id")
        multiaddrs(resp.identify.addrs)
    for p in resp.peers:
        peer_info(p)
    if resp.HasField("streamInfo"):
        stream_info(resp.streamInfo)
    if resp.HasField("dht") and resp.dht.type == pb.DHTResponse.VALUE:
        decode_dht_item(resp.dht)
    if resp.HasField("peerStore") and resp.peerStore.HasField("peer"):
        peer_info(resp.peerStore.peer)
    for raw in resp.pubsub.peerIDs:
        peer_id(raw)
    texts(resp.pubsub.topics)
    texts(resp.peerStore.protos)


def _follower(kind: int, body: bytes) -> None:
    if kind == 0:
        msg = decode_dht_response(body)
        if msg.type == pb.DHTResponse.VALUE:
            item = decode_dht_item(msg)
            check(item.value == (msg.value if msg.HasField("value") else None), "value kept")
            check((item.peer is None) != msg.HasField("peer"), "peer kept")
    elif kind == 1:
        ps = decode_ps_message(body)
        check(all(isinstance(t, str) for t in ps.topics), "topics are text")
    else:
        info = decode_stream_info(body)
        check(isinstance(info.protocol, str), "protocol is text")


def fuzz_p2pd_reply(data: bytes) -> None:
    """Control byte: bits 0-1 pick the type of the messages after the first (DHTResponse,
    PSMessage, StreamInfo). Accepted errors: ``DaemonError`` (an ErrorResponse) and
    ``DaemonProtocolError`` / ``RemoteProtocolError`` (bad framing or bytes)."""
    control, rest = split_control(data)
    decoder = LpDecoder(MAX_SIZE)
    try:
        messages = decoder.feed(rest)
        for index, body in enumerate(messages):
            check(len(body) <= MAX_SIZE, "message over the bound")
            if index == 0:
                _first(body)
            else:
                _follower(control & 3, body)
    except (DaemonError, DaemonProtocolError, RemoteProtocolError):
        pass
    check(decoder.buffered <= MAX_SIZE + 10, "decoder buffered past its bound")
