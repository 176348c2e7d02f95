"""Property tests of the DHT wire format: any bytes decode to a message or raise
``KadProtocolError``; every message we can build survives encoding, framing and any chunking."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from multiaddr import Multiaddr

from p2pstack.identity import PeerId
from protocols.kad import dht_pb2
from protocols.kad._types import (
    ConnectionType,
    KadMessage,
    KadPeer,
    KadProtocolError,
    MessageType,
    Record,
)
from protocols.kad._wire import KadMessageDecoder, decode_message, encode_message, frame

ED25519_PEER = PeerId.from_bytes(
    bytes.fromhex("0024080112202ffa35a99d3a3cfbb17bb7c1dc5561b18a8dcca4df38dc613ea859c37eb1336b")
)
ADDRS = [
    Multiaddr(text)
    for text in (
        "/ip4/127.0.0.1/tcp/4001",
        "/ip6/::1/udp/4001/quic-v1",
        "/dns4/example.com/tcp/443/wss",
        f"/ip4/1.2.3.4/tcp/1/p2p/{ED25519_PEER}",
    )
]

peer_ids = st.one_of(
    st.just(ED25519_PEER),
    st.binary(min_size=32, max_size=32).map(lambda d: PeerId.from_bytes(b"\x12\x20" + d)),
)
peers = st.builds(
    KadPeer,
    peer_id=peer_ids,
    addrs=st.lists(st.sampled_from(ADDRS), unique=True, max_size=4).map(tuple),
    connection=st.sampled_from(ConnectionType),
)
records = st.builds(
    Record,
    key=st.binary(max_size=40),
    value=st.binary(max_size=200),
    time_received=st.text(max_size=40),
)
messages = st.builds(
    KadMessage,
    type=st.sampled_from(MessageType),
    key=st.binary(max_size=64),
    record=st.none() | records,
    closer_peers=st.lists(peers, max_size=5).map(tuple),
    provider_peers=st.lists(peers, max_size=3).map(tuple),
    cluster_level=st.integers(-(2**31), 2**31 - 1),
)


def _decode_or_refuse(data: bytes) -> KadMessage | None:
    try:
        return decode_message(data)
    except KadProtocolError:
        return None


@given(st.binary(max_size=600))
def test_any_bytes_decode_or_raise_kad_protocol_error(data: bytes) -> None:
    message = _decode_or_refuse(data)
    if message is not None:
        assert decode_message(encode_message(message)) == message


@given(st.binary(max_size=300), st.integers(1, 50))
def test_any_stream_decodes_or_raises_kad_protocol_error(data: bytes, cut: int) -> None:
    decoder = KadMessageDecoder(max_size=200)
    try:
        for start in range(0, len(data), cut):
            decoder.feed(data[start : start + cut])
    except KadProtocolError:
        return
    assert decoder.buffered <= 210


def _mutations(data: bytes) -> st.SearchStrategy[bytes]:
    positions = st.integers(0, max(len(data) - 1, 0))
    return st.one_of(
        positions.map(lambda i: data[:i]),
        st.tuples(positions, st.integers(0, 255)).map(
            lambda p: data[: p[0]] + bytes([p[1]]) + data[p[0] + 1 :]
        ),
        st.tuples(positions, st.binary(min_size=1, max_size=8)).map(
            lambda p: data[: p[0]] + p[1] + data[p[0] :]
        ),
    )


@given(st.data())
def test_mutated_valid_messages_decode_or_raise_kad_protocol_error(data: st.DataObject) -> None:
    message = data.draw(messages)
    mutated = data.draw(_mutations(encode_message(message)))
    again = _decode_or_refuse(mutated)
    if again is not None:
        assert decode_message(encode_message(again)) == again


@given(messages)
def test_messages_round_trip(message: KadMessage) -> None:
    data = encode_message(message)
    assert decode_message(data) == message
    # The generated protobuf class reads our bytes the same way.
    pb = dht_pb2.Message.FromString(data)
    assert int(pb.type) == int(message.type) and pb.clusterLevelRaw == message.cluster_level
    assert [p.id for p in pb.closerPeers] == [p.peer_id.to_bytes() for p in message.closer_peers]


@given(st.lists(messages, max_size=4), st.lists(st.integers(1, 40), min_size=1, max_size=8))
def test_framed_messages_survive_any_chunking(batch: list[KadMessage], cuts: list[int]) -> None:
    wire = b"".join(frame(m) for m in batch)
    decoder = KadMessageDecoder()
    out: list[KadMessage] = []
    pos = 0
    i = 0
    while pos < len(wire):
        step = cuts[i % len(cuts)]
        out += decoder.feed(wire[pos : pos + step])
        pos += step
        i += 1
    assert out == batch
    assert decoder.buffered == 0
