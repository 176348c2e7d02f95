"""Tests of the NoiseHandshakePayload protobuf codec."""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from hypothesis import given
from hypothesis import strategies as st

from p2pstack.errors import RemoteProtocolError
from transports.noise import HandshakePayload, decode_payload, encode_payload

YAMUX = "/yamux/1.0.0"


def _reference_payload_class() -> type:
    """The spec's schema built with the protobuf runtime, as an independent decoder."""
    f = descriptor_pb2.FileDescriptorProto(name="noise_ref.proto", package="ref", syntax="proto2")
    ext = f.message_type.add(name="NoiseExtensions")
    ext.field.add(name="webtransport_certhashes", number=1, type=12, label=3)
    ext.field.add(name="stream_muxers", number=2, type=9, label=3)
    msg = f.message_type.add(name="NoiseHandshakePayload")
    msg.field.add(name="identity_key", number=1, type=12, label=1)
    msg.field.add(name="identity_sig", number=2, type=12, label=1)
    msg.field.add(name="extensions", number=4, type=11, label=1, type_name=".ref.NoiseExtensions")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    cls: type = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("ref.NoiseHandshakePayload")
    )
    return cls


def test_known_bytes_and_field_numbers() -> None:
    data = encode_payload(identity_key=b"K", identity_sig=b"S", stream_muxers=[YAMUX])
    # field 1 (bytes), field 2 (bytes), field 4 (message) holding field 2 (string)
    assert data == b"\x0a\x01K\x12\x01S\x22\x0e\x12\x0c/yamux/1.0.0"
    ref = _reference_payload_class()()
    ref.ParseFromString(data)
    assert ref.identity_key == b"K"
    assert ref.identity_sig == b"S"
    assert list(ref.extensions.stream_muxers) == [YAMUX]


def test_extensions_omitted_without_muxers() -> None:
    data = encode_payload(identity_key=b"K", identity_sig=b"S")
    assert data == b"\x0a\x01K\x12\x01S"
    assert decode_payload(data).stream_muxers is None
    assert encode_payload(identity_key=b"K", identity_sig=b"S", stream_muxers=[]) == data


def test_decodes_reference_encoding_with_unknown_fields() -> None:
    ref = _reference_payload_class()()
    ref.identity_key = b"key"
    ref.identity_sig = b"sig"
    ref.extensions.stream_muxers.extend(["/mplex/6.7.0", YAMUX])
    ref.extensions.webtransport_certhashes.append(b"\x12\x20" + b"h" * 32)
    # deprecated field 3 (data), a varint field 7, a fixed32 field 8 and a fixed64 field 9
    extra = b"\x1a\x02hi" + b"\x38\x96\x01" + b"\x45abcd" + b"\x49" + b"12345678"
    payload = decode_payload(ref.SerializeToString() + extra)
    assert payload == HandshakePayload(
        identity_key=b"key",
        identity_sig=b"sig",
        stream_muxers=("/mplex/6.7.0", YAMUX),
        webtransport_certhashes=(b"\x12\x20" + b"h" * 32,),
    )


def test_empty_extensions_message_means_empty_list() -> None:
    assert decode_payload(b"\x22\x00").stream_muxers == ()


@given(
    key=st.binary(max_size=100),
    sig=st.binary(max_size=100),
    muxers=st.lists(st.text(max_size=30), max_size=5),
)
def test_round_trip(key: bytes, sig: bytes, muxers: list[str]) -> None:
    data = encode_payload(identity_key=key, identity_sig=sig, stream_muxers=muxers)
    payload = decode_payload(data)
    assert payload.identity_key == key
    assert payload.identity_sig == sig
    assert payload.stream_muxers == (tuple(muxers) if muxers else None)


@given(garbage=st.binary(max_size=500))
def test_garbage_raises_only_remote_protocol_error(garbage: bytes) -> None:
    try:
        decode_payload(garbage)
    except RemoteProtocolError:
        pass


def test_wrong_wire_types_and_truncation_are_rejected() -> None:
    for bad in (b"\x08\x01", b"\x0a\x05ab", b"\x22\x02\x10\x01", b"\x0a", b"\x00\x00", b"\x0b"):
        try:
            decode_payload(bad)
        except RemoteProtocolError:
            continue
        raise AssertionError(f"{bad!r} was accepted")
    try:
        decode_payload(b"\x22\x03\x12\x01\xff")
    except RemoteProtocolError:
        pass
    else:
        raise AssertionError("non-UTF-8 muxer name accepted")
