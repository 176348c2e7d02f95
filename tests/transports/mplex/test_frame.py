"""mplex framing: spec byte vectors and property tests of the parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pstack.errors import RemoteProtocolError
from transports.mplex import Flag, Frame, encode_header, parse_frame

MIB = 1 << 20


@pytest.mark.parametrize(
    ("stream_id", "flag", "data", "wire"),
    [
        # NewStream for stream 0 named "0" (the conventional name: the decimal ID).
        (0, Flag.NEW_STREAM, b"0", bytes.fromhex("00 01 30")),
        (1, Flag.NEW_STREAM, b"1", bytes.fromhex("08 01 31")),
        (0, Flag.MESSAGE_RECEIVER, b"hi", bytes.fromhex("01 02 68 69")),
        (0, Flag.MESSAGE_INITIATOR, b"hi", bytes.fromhex("02 02 68 69")),
        (0, Flag.CLOSE_RECEIVER, b"", bytes.fromhex("03 00")),
        (0, Flag.CLOSE_INITIATOR, b"", bytes.fromhex("04 00")),
        (0, Flag.RESET_RECEIVER, b"", bytes.fromhex("05 00")),
        (0, Flag.RESET_INITIATOR, b"", bytes.fromhex("06 00")),
        # 17 << 3 | 2 = 138: a two-byte header varint.
        (17, Flag.MESSAGE_INITIATOR, b"x", bytes.fromhex("8a 01 01 78")),
        # A 200-byte payload: two-byte length varint.
        (2, Flag.MESSAGE_RECEIVER, b"a" * 200, bytes.fromhex("11 c8 01") + b"a" * 200),
    ],
)
def test_spec_vectors(stream_id: int, flag: Flag, data: bytes, wire: bytes) -> None:
    assert encode_header(stream_id, flag, len(data)) + data == wire
    assert parse_frame(wire, 0, MIB) == (Frame(stream_id, flag, data), len(wire))


def test_flag_direction() -> None:
    assert Flag.NEW_STREAM.sent_by_initiator
    assert Flag.MESSAGE_INITIATOR.sent_by_initiator
    assert not Flag.MESSAGE_RECEIVER.sent_by_initiator
    assert not Flag.RESET_RECEIVER.sent_by_initiator


@pytest.mark.parametrize("cut", range(4))
def test_incomplete_message_needs_more(cut: int) -> None:
    wire = bytes.fromhex("02 02 68 69")
    assert parse_frame(wire[:cut], 0, MIB) is None


def test_parse_from_offset() -> None:
    wire = bytes.fromhex("00 01 30 04 00")
    assert parse_frame(wire, 3, MIB) == (Frame(0, Flag.CLOSE_INITIATOR, b""), 5)


def test_oversized_header_fails_before_payload() -> None:
    header = encode_header(0, Flag.MESSAGE_INITIATOR, MIB + 1)
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        parse_frame(header, 0, MIB)
    # Exactly the limit is fine.
    assert parse_frame(encode_header(0, Flag.MESSAGE_INITIATOR, MIB), 0, MIB) is None


def test_flag_seven_is_rejected() -> None:
    with pytest.raises(RemoteProtocolError, match="flag 7"):
        parse_frame(bytes.fromhex("07 00"), 0, MIB)


def test_overlong_varint_is_rejected() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_frame(b"\xff" * 11, 0, MIB)


frames = st.builds(
    Frame,
    st.integers(min_value=0, max_value=(1 << 61) - 1),
    st.sampled_from(list(Flag)),
    st.binary(max_size=300),
)


@given(st.lists(frames, max_size=20))
def test_round_trip(items: list[Frame]) -> None:
    wire = b"".join(encode_header(f.stream_id, f.flag, len(f.data)) + f.data for f in items)
    pos = 0
    decoded = []
    while (parsed := parse_frame(wire, pos, MIB)) is not None:
        frame, pos = parsed
        decoded.append(frame)
    assert decoded == items
    assert pos == len(wire)


@given(st.binary(max_size=200), st.integers(min_value=0, max_value=64))
def test_garbage_raises_only_remote_protocol_error(garbage: bytes, limit: int) -> None:
    pos = 0
    try:
        while (parsed := parse_frame(garbage, pos, limit)) is not None:
            frame, new_pos = parsed
            assert new_pos > pos
            assert len(frame.data) <= limit
            pos = new_pos
    except RemoteProtocolError:
        pass
