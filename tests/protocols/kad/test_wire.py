"""The DHT wire format against literal bytes: what js and go send, what we send, and every kind
of malformed input."""

from __future__ import annotations

import datetime

import pytest
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
from protocols.kad._wire import (
    MAX_ADDRS_PER_MESSAGE,
    MAX_ADDRS_PER_PEER,
    MAX_MESSAGE_SIZE,
    MAX_PEERS_PER_LIST,
    KadMessageDecoder,
    decode_message,
    encode_message,
    format_time_received,
    frame,
)

# An Ed25519 peer ID (identity multihash of its key) and the bytes of /ip4/127.0.0.1/tcp/4001.
PEER_HEX = "0024080112202ffa35a99d3a3cfbb17bb7c1dc5561b18a8dcca4df38dc613ea859c37eb1336b"
PEER = PeerId.from_bytes(bytes.fromhex(PEER_HEX))
ADDR_HEX = "047f000001060fa1"
ADDR = Multiaddr("/ip4/127.0.0.1/tcp/4001")
# A sha2-256 peer ID.
HASHED = PeerId.from_bytes(b"\x12\x20" + bytes(range(32)))

# Written by @libp2p/kad-dht 16.4.5's own Message codec.
JS_FIND_NODE = bytes.fromhex("08041203616263")
JS_PUT_VALUE = bytes.fromhex(
    "12072f746573742f6b1a2c0a072f746573742f6b1201762a1e"
    "323032342d31312d32335431323a33343a35362e3738393030303030305a"
)
# js writes clusterLevel (field 10) right after the type; its ConnectionType codec wrote 0.
JS_RESPONSE = bytes.fromhex("0804500142340a26" + PEER_HEX + "1208" + ADDR_HEX + "1800")
# go marshals in field order and sends clusterLevelRaw = level + 1 = 1.
GO_FIND_NODE = bytes.fromhex("08041203616263" + "5001")


def test_js_find_node_request_round_trips() -> None:
    message = decode_message(JS_FIND_NODE)
    assert message == KadMessage(type=MessageType.FIND_NODE, key=b"abc")
    assert encode_message(message) == JS_FIND_NODE


def test_js_put_value_omits_the_zero_type_and_round_trips() -> None:
    message = decode_message(JS_PUT_VALUE)
    record = Record(key=b"/test/k", value=b"v", time_received="2024-11-23T12:34:56.789000000Z")
    assert message == KadMessage(type=MessageType.PUT_VALUE, key=b"/test/k", record=record)
    assert encode_message(message) == JS_PUT_VALUE


def test_js_response_with_cluster_level_and_peer() -> None:
    message = decode_message(JS_RESPONSE)
    peer = KadPeer(peer_id=PEER, addrs=(ADDR,), connection=ConnectionType.NOT_CONNECTED)
    assert message == KadMessage(type=MessageType.FIND_NODE, closer_peers=(peer,), cluster_level=1)
    # We write fields in number order (as go does); the value is the same.
    again = encode_message(message)
    # NOT_CONNECTED is proto3's default, so it is omitted.
    assert again == bytes.fromhex("0804" + "4232" + "0a26" + PEER_HEX + "1208" + ADDR_HEX + "5001")
    assert decode_message(again) == message


def test_go_cluster_level_raw_is_carried_unchanged() -> None:
    message = decode_message(GO_FIND_NODE)
    assert message.cluster_level == 1
    assert encode_message(message) == GO_FIND_NODE


def test_every_field_encodes_as_the_spec_numbers_them() -> None:
    message = KadMessage(
        type=MessageType.GET_PROVIDERS,
        key=b"k",
        closer_peers=(KadPeer(peer_id=HASHED, connection=ConnectionType.CONNECTED),),
        provider_peers=(KadPeer(peer_id=PEER, addrs=(ADDR,), connection=ConnectionType(2)),),
    )
    hashed = "0a22" + "1220" + bytes(range(32)).hex()
    expected = "0803" + "12016b" + "4226" + hashed + "1801" + "4a34" + "0a26" + PEER_HEX
    expected += "1208" + ADDR_HEX + "1802"
    assert encode_message(message).hex() == expected
    assert decode_message(bytes.fromhex(expected)) == message


def test_empty_record_is_still_sent() -> None:
    message = KadMessage(type=MessageType.GET_VALUE, record=Record(key=b"", value=b""))
    assert encode_message(message) == b"\x08\x01\x1a\x00"
    assert decode_message(b"\x08\x01\x1a\x00") == message


def test_empty_input_is_a_put_value_with_nothing_set() -> None:
    assert decode_message(b"") == KadMessage(type=MessageType.PUT_VALUE)
    assert encode_message(KadMessage(type=MessageType.PUT_VALUE)) == b""


def test_every_type_round_trips() -> None:
    for kind in MessageType:
        message = KadMessage(type=kind, key=b"x")
        assert decode_message(encode_message(message)) == message


def test_negative_cluster_level_round_trips() -> None:
    message = KadMessage(type=MessageType.PING, cluster_level=-1)
    data = encode_message(message)
    assert data == bytes.fromhex("0805" + "50" + "ff" * 9 + "01")
    assert decode_message(data) == message


def test_cluster_level_outside_int32_is_refused_when_encoding() -> None:
    with pytest.raises(ValueError):
        encode_message(KadMessage(type=MessageType.PING, cluster_level=2**31))


def test_unknown_fields_are_ignored() -> None:
    # Field 31 (varint) in Message; rust's publisher (666, bytes) and ttl (777, varint) in Record.
    record = "0a01" + "6b" + "d22901" + "00" + "c83005"
    data = bytes.fromhex("0801" + "f80105" + "1a" + f"{len(record) // 2:02x}" + record)
    message = decode_message(data)
    assert message == KadMessage(type=MessageType.GET_VALUE, record=Record(key=b"k", value=b""))


def test_unknown_connection_type_reads_as_not_connected() -> None:
    data = bytes.fromhex("0804" + "422a" + "0a26" + PEER_HEX + "1807")
    (peer,) = decode_message(data).closer_peers
    assert peer.connection is ConnectionType.NOT_CONNECTED


@pytest.mark.parametrize(
    "addr_hex",
    [
        "04",  # ip4 without its 4 bytes (the library would read /ip4/0.0.0.0)
        "047f000001060f",  # tcp port cut short
        "3502fffe",  # dns name that is not UTF-8
        "a50300",  # p2p with an empty multihash
        "",  # empty
        "ffffffff0f",  # unknown protocol code
    ],
)
def test_an_unreadable_address_is_dropped_and_the_peer_kept(addr_hex: str) -> None:
    bad = bytes.fromhex(addr_hex)
    pb = dht_pb2.Message(type=dht_pb2.Message.FIND_NODE)
    pb.closerPeers.add(id=PEER.to_bytes(), addrs=[bad, ADDR.to_bytes()])
    (peer,) = decode_message(pb.SerializeToString()).closer_peers
    assert peer == KadPeer(peer_id=PEER, addrs=(ADDR,))


def test_duplicate_addresses_are_merged() -> None:
    pb = dht_pb2.Message(type=dht_pb2.Message.FIND_NODE)
    pb.closerPeers.add(id=PEER.to_bytes(), addrs=[ADDR.to_bytes()] * 3)
    assert decode_message(pb.SerializeToString()).closer_peers[0].addrs == (ADDR,)


def test_peer_and_address_counts_are_bounded() -> None:
    addrs = [Multiaddr(f"/ip4/10.0.0.1/tcp/{port}").to_bytes() for port in range(1, 41)]
    pb = dht_pb2.Message(type=dht_pb2.Message.GET_PROVIDERS)
    for _ in range(MAX_PEERS_PER_LIST + 20):
        pb.closerPeers.add(id=HASHED.to_bytes(), addrs=addrs)
        pb.providerPeers.add(id=PEER.to_bytes())
    message = decode_message(pb.SerializeToString(), max_size=1 << 20)
    assert len(message.closer_peers) == len(message.provider_peers) == MAX_PEERS_PER_LIST
    counts = [len(peer.addrs) for peer in message.closer_peers]
    assert counts[0] == MAX_ADDRS_PER_PEER
    assert sum(counts) == MAX_ADDRS_PER_MESSAGE
    assert counts[-1] == 0


@pytest.mark.parametrize(
    ("name", "hex_data"),
    [
        ("truncated varint", "08"),
        ("length past the end", "0804120561"),
        ("wire type 7", "0f"),
        ("field number 0", "0000"),
        ("end group without start", "0c"),
        ("unknown type 6", "0806"),
        ("go's private type 32", "0820"),
        ("negative type", "08" + "ff" * 9 + "01"),
        ("record is not a message", "1a02ffff"),
        ("peer is not a message", "4203ffffff"),
        ("empty peer ID", "4200"),
        ("peer ID not a multihash", "42040a02ffff"),
        ("peer ID with an unknown hash", "42050a031101aa"),
        ("sha2-256 peer ID too short", "42060a041202aaaa"),
        ("identity peer ID without a key", "42040a020000"),
        ("bad provider peer ID", "4a040a02ffff"),
        ("timeReceived not UTF-8", "1a032a01ff"),
    ],
)
def test_malformed_messages_raise_kad_protocol_error(name: str, hex_data: str) -> None:
    with pytest.raises(KadProtocolError):
        decode_message(bytes.fromhex(hex_data))


def test_oversized_message_is_refused_before_parsing() -> None:
    assert len(JS_FIND_NODE) == 7
    assert decode_message(JS_FIND_NODE, max_size=7).key == b"abc"
    with pytest.raises(KadProtocolError, match="over 6"):
        decode_message(JS_FIND_NODE, max_size=6)
    with pytest.raises(KadProtocolError):
        decode_message(b"\x12" + b"\x83\x80\x04" + bytes(MAX_MESSAGE_SIZE))


def test_frame_adds_a_varint_length() -> None:
    assert frame(KadMessage(type=MessageType.FIND_NODE, key=b"abc")) == b"\x07" + JS_FIND_NODE
    big = KadMessage(type=MessageType.PUT_VALUE, key=bytes(200))
    assert frame(big)[:2] == b"\xcb\x01"  # 203 bytes: tag, 2-byte length, 200 key bytes


def test_frame_refuses_what_the_receiver_would_refuse() -> None:
    message = KadMessage(type=MessageType.PUT_VALUE, record=Record(key=b"k", value=bytes(100)))
    with pytest.raises(ValueError, match="over the 50-byte limit"):
        frame(message, max_size=50)
    assert frame(KadMessage(type=MessageType.PUT_VALUE), max_size=0) == b"\x00"


def test_stream_decoder_splits_messages_fed_in_any_pieces() -> None:
    first = KadMessage(type=MessageType.FIND_NODE, key=b"abc")
    second = decode_message(JS_RESPONSE)
    wire = frame(first) + frame(second)
    decoder = KadMessageDecoder()
    out = []
    for byte in wire:
        out += decoder.feed(bytes([byte]))
    assert out == [first, second]
    assert decoder.buffered == 0
    assert KadMessageDecoder().feed(wire) == [first, second]


def test_stream_decoder_holds_a_partial_message() -> None:
    decoder = KadMessageDecoder()
    assert decoder.feed(b"\x07\x08\x04") == []
    assert decoder.buffered == 3
    assert decoder.feed(b"\x12\x03abc\x00") == [
        KadMessage(type=MessageType.FIND_NODE, key=b"abc"),
        KadMessage(type=MessageType.PUT_VALUE),
    ]


def test_stream_decoder_refuses_an_oversized_prefix_before_its_body() -> None:
    decoder = KadMessageDecoder(max_size=100)
    with pytest.raises(KadProtocolError, match="larger than the 100-byte limit"):
        decoder.feed(b"\x65")
    with pytest.raises(KadProtocolError):
        KadMessageDecoder().feed(encode_varint(MAX_MESSAGE_SIZE + 1))


@pytest.mark.parametrize(
    "wire",
    [
        b"\xff" * 11,  # prefix longer than 10 bytes
        b"\x80\x00",  # prefix not minimally encoded
        b"\x02\x08\x06",  # a well-framed message of unknown type
        b"\x01\x08",  # a well-framed truncated message
    ],
)
def test_stream_decoder_errors_are_kad_protocol_errors(wire: bytes) -> None:
    with pytest.raises(KadProtocolError):
        KadMessageDecoder().feed(wire)


def test_stream_decoder_refuses_a_negative_bound() -> None:
    with pytest.raises(ValueError):
        KadMessageDecoder(max_size=-1)


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def test_time_received_format_is_rfc3339_nano() -> None:
    moment = datetime.datetime(2024, 11, 23, 12, 34, 56, 789000, tzinfo=datetime.UTC)
    assert format_time_received(moment.timestamp()) == "2024-11-23T12:34:56.789000000Z"
    assert format_time_received(0) == "1970-01-01T00:00:00.000000000Z"
