"""yamux frame header codec: spec byte vectors and property tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pstack.errors import RemoteProtocolError
from transports.yamux import Flag, FrameType, Header, decode_header, encode_header


def test_syn_window_update_vector() -> None:
    # Version 0, type WindowUpdate, flags SYN, stream 1, delta 0.
    data = bytes.fromhex("00 01 0001 00000001 00000000")
    assert encode_header(FrameType.WINDOW_UPDATE, Flag.SYN, 1, 0) == data
    assert decode_header(data) == Header(FrameType.WINDOW_UPDATE, Flag.SYN, 1, 0)


def test_data_fin_vector() -> None:
    data = bytes.fromhex("00 00 0004 00000002 00000005")
    assert encode_header(FrameType.DATA, Flag.FIN, 2, 5) == data
    header = decode_header(b"junk" + data, 4)
    assert (header.type, header.flags, header.stream_id, header.length) == (
        FrameType.DATA,
        Flag.FIN,
        2,
        5,
    )


def test_ping_and_go_away_vectors() -> None:
    assert encode_header(FrameType.PING, Flag.ACK, 0, 0x2A) == bytes.fromhex(
        "00 02 0002 00000000 0000002a"
    )
    assert encode_header(FrameType.GO_AWAY, 0, 0, 1) == bytes.fromhex(
        "00 03 0000 00000000 00000001"
    )


def test_bad_version_and_unknown_type_are_remote_errors() -> None:
    with pytest.raises(RemoteProtocolError, match="version"):
        decode_header(bytes.fromhex("01 00 0000 00000001 00000000"))
    with pytest.raises(RemoteProtocolError, match="type"):
        decode_header(bytes.fromhex("00 04 0000 00000001 00000000"))


def test_short_buffer_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="12 bytes"):
        decode_header(b"\x00" * 11)


@given(
    frame_type=st.sampled_from(FrameType),
    flags=st.integers(0, 0xFFFF),
    stream_id=st.integers(0, 2**32 - 1),
    length=st.integers(0, 2**32 - 1),
)
def test_round_trip(frame_type: FrameType, flags: int, stream_id: int, length: int) -> None:
    encoded = encode_header(frame_type, flags, stream_id, length)
    assert len(encoded) == 12
    assert decode_header(encoded) == Header(frame_type, flags, stream_id, length)


@given(st.binary(min_size=12, max_size=12))
def test_garbage_raises_only_remote_protocol_error(data: bytes) -> None:
    try:
        header = decode_header(data)
    except RemoteProtocolError:
        assert data[0] != 0 or data[1] > 3
    else:
        assert encode_header(header.type, header.flags, header.stream_id, header.length) == data
