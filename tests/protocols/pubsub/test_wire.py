"""The pubsub RPC codec: literal bytes of the spec's schema, round trips, and typed errors for
anything malformed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pstack.errors import RemoteProtocolError
from p2pstack.identity import Identity, PeerId
from protocols.pubsub import (
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
    RpcDecoder,
    SubOpts,
    decode_message,
    decode_rpc,
    encode_message,
    encode_rpc,
    frame_rpc,
)
from protocols.pubsub._wire import message_size

PEER = Identity.generate().peer_id
OTHER = Identity.generate().peer_id

# RPC{subscriptions: [{subscribe: true, topicid: "foo"}]}: field 1 (0x0a), length 7,
# SubOpts{1: varint 1 (08 01), 2: "foo" (12 03 66 6f 6f)}.
SUBSCRIBE_FOO = bytes.fromhex("0a07080112 03666f6f".replace(" ", ""))


def test_subscription_literal_bytes() -> None:
    assert encode_rpc(RPC(subscriptions=(SubOpts(True, "foo"),))) == SUBSCRIBE_FOO
    assert decode_rpc(SUBSCRIBE_FOO) == RPC(subscriptions=(SubOpts(True, "foo"),))


def test_message_literal_bytes() -> None:
    # Message{data: "hi" (12 02 68 69), topic: "t" (22 01 74)} inside RPC.publish (field 2, 0x12).
    message = Message(topic="t", data=b"hi")
    assert encode_message(message) == bytes.fromhex("120268692201 74".replace(" ", ""))
    assert encode_rpc(RPC(publish=(message,))) == bytes.fromhex(
        "12071202686922 0174".replace(" ", "")
    )


def test_control_literal_bytes() -> None:
    # RPC.control (1a) { graft (1a) { topicID (0a) "t" }, idontwant (2a) { messageIDs (0a) "x" } }
    rpc = RPC(
        control=ControlMessage(graft=(ControlGraft("t"),), idontwant=(ControlIDontWant([b"x"]),))
    )
    expected = bytes.fromhex("1a0a" + "1a030a0174" + "2a030a0178")
    assert encode_rpc(rpc) == expected
    assert decode_rpc(expected) == rpc


def test_prune_with_peer_exchange_round_trips() -> None:
    prune = ControlPrune("t", (PeerInfo(PEER, b"envelope"), PeerInfo(OTHER)), backoff=60)
    rpc = RPC(control=ControlMessage(prune=(prune,)))
    assert decode_rpc(encode_rpc(rpc)) == rpc
    # backoff is field 3, a varint: 18 3c
    assert b"\x18\x3c" in encode_rpc(rpc)


def test_empty_control_is_kept_present() -> None:
    assert encode_rpc(RPC(control=ControlMessage())) == b"\x1a\x00"
    assert decode_rpc(b"\x1a\x00").control == ControlMessage()
    assert decode_rpc(b"").control is None


def test_unknown_fields_are_skipped() -> None:
    # field 9 varint 1 (48 01) after the subscription
    assert decode_rpc(SUBSCRIBE_FOO + b"\x48\x01") == decode_rpc(SUBSCRIBE_FOO)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x0a\x05\x08\x01\x12\x03fo", "truncated"),
        (b"\x0a\x02\x08\x01", "subscription without a topic"),
        (b"\x0a\x04\x12\x02\xff\xfe", "topic is not UTF-8"),
        (b"\x12\x02\x12\x00", "message without a topic"),
        (b"\x12\x05\x0a\x03abc\x22\x00", "bad peer ID"),
        (b"\x1a\x02\x1a\x00", "GRAFT without a topic"),
        (b"\x1a\x02\x0a\x00", "IHAVE without a topic"),
        (b"\x1a\x07\x22\x05\x0a\x01t\x12\x00", "peer exchange entry without a peer ID"),
        (b"\x1a\x0a\x22\x08\x0a\x01t\x18\xff\xff\xff\x0f", "backoff"),
        (b"\x0b", "wire type 3"),
        (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "bad tag"),
    ],
)
def test_malformed_rpcs_raise_typed_errors(data: bytes, reason: str) -> None:
    with pytest.raises(PubsubProtocolError):
        decode_rpc(data)
    assert issubclass(PubsubProtocolError, RemoteProtocolError), reason


def test_message_from_decodes_the_same_every_time() -> None:
    # Peer IDs of received messages come from a bounded cache: a valid one is the same value
    # each time, distinct ones stay distinct, and a bad one is refused each time.
    peers = [Identity.generate().peer_id for _ in range(3)]
    for _ in range(2):
        for peer in peers:
            rpc = RPC(publish=(Message(topic="t", data=b"x", from_=peer),))
            assert decode_rpc(encode_rpc(rpc)).publish[0].from_ == peer
    for _ in range(2):
        with pytest.raises(PubsubProtocolError, match="bad peer ID"):
            decode_rpc(b"\x12\x08\x0a\x03abc\x22\x01t")  # from "abc", topic "t"


def test_size_bound() -> None:
    rpc = encode_rpc(RPC(publish=(Message(topic="t", data=b"x" * 100),)))
    assert decode_rpc(rpc, max_size=len(rpc)).publish[0].data == b"x" * 100
    with pytest.raises(PubsubProtocolError, match="limit"):
        decode_rpc(rpc, max_size=len(rpc) - 1)


def test_stream_decoder_in_pieces() -> None:
    first = RPC(subscriptions=(SubOpts(True, "a"), SubOpts(False, "b")))
    second = RPC(control=ControlMessage(iwant=(ControlIWant([b"id"]),)))
    data = frame_rpc(first) + frame_rpc(second) + frame_rpc(RPC())
    decoder = RpcDecoder()
    out: list[RPC] = []
    for byte in data:
        out += decoder.feed(bytes([byte]))
    assert out == [first, second, RPC()]
    assert decoder.buffered == 0


def test_stream_decoder_rejects_oversized_prefix_before_body() -> None:
    decoder = RpcDecoder(max_size=10)
    with pytest.raises(PubsubProtocolError):
        decoder.feed(b"\x0b")


topics = st.text(max_size=12)
ids = st.lists(st.binary(max_size=12), max_size=3).map(tuple)
peers = st.sampled_from([PEER, OTHER])
messages = st.builds(
    Message,
    topic=topics,
    data=st.binary(max_size=20),
    from_=st.none() | peers,
    seqno=st.none() | st.binary(max_size=8),
    signature=st.none() | st.binary(max_size=8),
    key=st.none() | st.binary(max_size=8),
)
controls = st.builds(
    ControlMessage,
    ihave=st.lists(st.builds(ControlIHave, topics, ids), max_size=2).map(tuple),
    iwant=st.lists(st.builds(ControlIWant, ids), max_size=2).map(tuple),
    graft=st.lists(st.builds(ControlGraft, topics), max_size=2).map(tuple),
    prune=st.lists(
        st.builds(
            ControlPrune,
            topics,
            st.lists(st.builds(PeerInfo, peers, st.none() | st.binary(max_size=8)), max_size=2).map(
                tuple
            ),
            st.none() | st.integers(0, 365 * 24 * 3600),
        ),
        max_size=2,
    ).map(tuple),
    idontwant=st.lists(st.builds(ControlIDontWant, ids), max_size=2).map(tuple),
)
rpcs = st.builds(
    RPC,
    subscriptions=st.lists(st.builds(SubOpts, st.booleans(), topics), max_size=3).map(tuple),
    publish=st.lists(messages, max_size=3).map(tuple),
    control=st.none() | controls,
)


@given(rpcs)
def test_round_trip(rpc: RPC) -> None:
    assert decode_rpc(encode_rpc(rpc)) == rpc
    assert RpcDecoder().feed(frame_rpc(rpc) * 2) == [rpc, rpc]


@given(messages)
def test_message_round_trip(message: Message) -> None:
    assert decode_message(encode_message(message)) == message
    assert message_size(message) == len(encode_message(message))


def test_message_size_of_large_fields() -> None:
    for length in (0, 127, 128, 16383, 16384, 70000):
        message = Message(topic="é" * 3, data=b"x" * length, from_=PEER, seqno=b"\x00" * 8)
        assert message_size(message) == len(encode_message(message)), length


@given(st.binary(max_size=200))
def test_any_bytes_give_an_rpc_or_a_typed_error(data: bytes) -> None:
    try:
        rpc = decode_rpc(data)
    except PubsubProtocolError:
        return
    assert decode_rpc(encode_rpc(rpc)) == rpc


@given(st.binary(max_size=200), st.integers(1, 7))
def test_stream_decoder_any_bytes(data: bytes, size: int) -> None:
    decoder = RpcDecoder(max_size=64)
    try:
        for start in range(0, len(data), size):
            decoder.feed(data[start : start + size])
    except PubsubProtocolError:
        return
    assert decoder.buffered <= 64 + 10


def test_peer_ids_decode_as_peer_ids() -> None:
    message = Message(topic="t", from_=PEER, seqno=b"\x00" * 8)
    assert isinstance(decode_message(encode_message(message)).from_, PeerId)
