"""Identify protobuf encoding with literal bytes, tolerant decoding and framing."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiaddr import Multiaddr

from p2pstack.errors import RemoteProtocolError
from p2pstack.streams import memory_connection_pair
from p2pstack.varint import encode_uvarint
from protocols.identify import (
    MAX_INBOUND_SIZE,
    MAX_OUTBOUND_SIZE,
    PROTOCOL_ID,
    PUSH_PROTOCOL_ID,
    IdentifyMessage,
    decode_identify,
    decode_identify_stream,
    encode_identify,
    frame_identify,
    read_identify_stream,
)

FULL = IdentifyMessage(
    protocol_version="ipfs/0.1.0",
    agent_version="a",
    public_key=b"\x08\x01",
    listen_addrs=(Multiaddr("/ip4/127.0.0.1/tcp/4001"),),
    observed_addr=Multiaddr("/ip4/1.2.3.4/tcp/5"),
    protocols=("/ipfs/ping/1.0.0",),
    signed_peer_record=b"env",
)

# Field by field, in field-number order as protobuf serialises them.
FULL_BYTES = (
    b"\x0a\x02\x08\x01"  # 1 publicKey
    + b"\x12\x08\x04\x7f\x00\x00\x01\x06\x0f\xa1"  # 2 listenAddrs: /ip4/127.0.0.1/tcp/4001
    + b"\x1a\x10/ipfs/ping/1.0.0"  # 3 protocols
    + b"\x22\x08\x04\x01\x02\x03\x04\x06\x00\x05"  # 4 observedAddr: /ip4/1.2.3.4/tcp/5
    + b"\x2a\x0aipfs/0.1.0"  # 5 protocolVersion
    + b"\x32\x01a"  # 6 agentVersion
    + b"\x42\x03env"  # 8 signedPeerRecord
)


def test_protocol_ids() -> None:
    assert PROTOCOL_ID == "/ipfs/id/1.0.0"
    assert PUSH_PROTOCOL_ID == "/ipfs/id/push/1.0.0"


def test_encode_field_numbers() -> None:
    assert encode_identify(FULL) == FULL_BYTES


def test_decode_literal() -> None:
    assert decode_identify(FULL_BYTES) == FULL


def test_frame_is_uvarint_length_prefixed() -> None:
    assert frame_identify(FULL) == bytes([len(FULL_BYTES)]) + FULL_BYTES
    assert decode_identify_stream(frame_identify(FULL)) == FULL


def test_missing_fields_default() -> None:
    assert decode_identify(b"") == IdentifyMessage()
    msg = decode_identify(b"\x32\x01a")
    assert msg == IdentifyMessage(agent_version="a")


def test_unknown_fields_ignored() -> None:
    unknown = b"\x98\x06\x01" + b"\x3a\x03xyz" + b"\x7d\x00\x00\x00\x00"  # 99 varint, 7, 15 i32
    assert decode_identify(unknown + FULL_BYTES + unknown) == FULL


def test_bad_multiaddrs_skipped() -> None:
    data = b"\x12\x02\xff\xff" + b"\x12\x00" + b"\x12\x01\x04" + FULL_BYTES + b"\x22\x01\x04"
    msg = decode_identify(data)
    assert msg.listen_addrs == FULL.listen_addrs
    assert msg.observed_addr is None  # the last observedAddr wins, and it is invalid


def test_invalid_utf8_replaced() -> None:
    msg = decode_identify(b"\x32\x02a\xff" + b"\x1a\x02/\xfe")
    assert msg.agent_version == "a\ufffd"
    assert msg.protocols == ("/\ufffd",)


def test_garbage_is_a_remote_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_identify(b"\x0a\x05ab")  # length runs past the end
    with pytest.raises(RemoteProtocolError):
        decode_identify_stream(b"")
    with pytest.raises(RemoteProtocolError):
        decode_identify_stream(b"\x05\x08")  # prefixed and bare forms both truncated


def test_empty_message() -> None:
    assert decode_identify_stream(b"\x00") == IdentifyMessage()


def test_split_messages_are_merged() -> None:
    """go-libp2p may send the signed record in a second length-prefixed message."""
    first = encode_identify(IdentifyMessage(agent_version="go", protocols=("/a",)))
    second = encode_identify(IdentifyMessage(signed_peer_record=b"rec", protocols=("/b",)))
    data = encode_uvarint(len(first)) + first + encode_uvarint(len(second)) + second
    msg = decode_identify_stream(data)
    assert msg.agent_version == "go"
    assert msg.signed_peer_record == b"rec"
    assert msg.protocols == ("/a", "/b")


def test_unprefixed_message_accepted() -> None:
    """Old py-libp2p writes the bare protobuf without a length prefix."""
    assert decode_identify_stream(FULL_BYTES) == FULL


def test_oversized_stream_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="larger"):
        decode_identify_stream(b"\x00" * (MAX_INBOUND_SIZE + 1))


def test_frame_trims_to_fit() -> None:
    addrs = tuple(Multiaddr(f"/ip4/10.0.{i // 256}.{i % 256}/tcp/4001") for i in range(1000))
    msg = IdentifyMessage(listen_addrs=addrs, protocols=("/x",) * 1, agent_version="a")
    framed = frame_identify(msg)
    assert len(framed) <= MAX_OUTBOUND_SIZE
    decoded = decode_identify_stream(framed)
    assert decoded.protocols == ("/x",)
    assert 0 < len(decoded.listen_addrs) < 1000
    assert decoded.listen_addrs == addrs[: len(decoded.listen_addrs)]
    with pytest.raises(ValueError):
        frame_identify(IdentifyMessage(agent_version="a" * 100), max_size=50)


@pytest.mark.anyio
async def test_read_identify_stream() -> None:
    a, b = memory_connection_pair()
    data = frame_identify(FULL)
    await a.send(data[:5])
    await a.send(data[5:])
    await a.send_eof()
    with anyio.fail_after(5):
        assert await read_identify_stream(b) == FULL


@pytest.mark.anyio
async def test_read_identify_stream_caps_size() -> None:
    a, b = memory_connection_pair(max_chunks=1024)

    async def flood() -> None:
        for _ in range(MAX_INBOUND_SIZE // 1024 + 2):
            await a.send(b"\x00" * 1024)

    async with anyio.create_task_group() as tg:
        tg.start_soon(flood)
        with anyio.fail_after(5), pytest.raises(RemoteProtocolError, match="larger"):
            await read_identify_stream(b)


_ADDRS = [
    Multiaddr("/ip4/127.0.0.1/tcp/1"),
    Multiaddr("/ip6/::1/tcp/4001"),
    Multiaddr("/ip4/192.168.1.1/udp/4001/quic-v1"),
    Multiaddr("/dns4/example.com/tcp/443"),
    Multiaddr("/memory/42"),
]
_TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
_MESSAGES = st.builds(
    IdentifyMessage,
    protocol_version=st.none() | _TEXT,
    agent_version=st.none() | _TEXT,
    public_key=st.none() | st.binary(max_size=40),
    listen_addrs=st.lists(st.sampled_from(_ADDRS), unique=True).map(tuple),
    observed_addr=st.none() | st.sampled_from(_ADDRS),
    protocols=st.lists(_TEXT.filter(bool), unique=True, max_size=10).map(tuple),
    signed_peer_record=st.none() | st.binary(max_size=40),
)


@given(_MESSAGES)
def test_round_trip(msg: IdentifyMessage) -> None:
    assert decode_identify(encode_identify(msg)) == msg
    assert decode_identify_stream(frame_identify(msg)) == msg


@given(st.binary(max_size=300))
def test_garbage_only_raises_typed_error(data: bytes) -> None:
    for decode in (decode_identify, decode_identify_stream):
        try:
            msg = decode(data)
        except RemoteProtocolError:
            continue
        assert isinstance(msg, IdentifyMessage)


@given(_MESSAGES, st.binary(max_size=50), st.integers(0, 400))
def test_corrupted_message_only_raises_typed_error(
    msg: IdentifyMessage, junk: bytes, pos: int
) -> None:
    data = frame_identify(msg)
    corrupted = data[:pos] + junk + data[pos + len(junk) :]
    try:
        decode_identify_stream(corrupted)
    except RemoteProtocolError:
        pass


def test_observed_addr_drops_a_trailing_peer_id() -> None:
    # js-libp2p sends the observed address with /p2p/<our id> appended.
    peer = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
    with_id = Multiaddr(f"/ip4/127.0.0.1/tcp/4001/p2p/{peer}").to_bytes()
    decoded = decode_identify(bytes([0x22, len(with_id)]) + with_id)
    assert decoded.observed_addr == Multiaddr("/ip4/127.0.0.1/tcp/4001")
    bare = Multiaddr(f"/p2p/{peer}").to_bytes()
    assert decode_identify(bytes([0x22, len(bare)]) + bare).observed_addr is None
