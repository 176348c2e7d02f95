from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pstack.errors import RemoteProtocolError
from p2pstack.varint import IncompleteVarint, decode_uvarint, encode_uvarint


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (16384, b"\x80\x80\x01"),
        ((1 << 63) - 1, b"\xff" * 8 + b"\x7f"),
    ],
)
def test_spec_vectors(value: int, encoded: bytes) -> None:
    assert encode_uvarint(value) == encoded
    assert decode_uvarint(encoded) == (value, len(encoded))


@given(st.integers(min_value=0, max_value=(1 << 64) - 1), st.binary(max_size=4))
def test_round_trip_with_trailing_bytes(value: int, tail: bytes) -> None:
    data = encode_uvarint(value) + tail
    assert decode_uvarint(data) == (value, len(data) - len(tail))


def test_rejects_bad_input() -> None:
    with pytest.raises(IncompleteVarint):
        decode_uvarint(b"\x80")
    with pytest.raises(RemoteProtocolError):
        decode_uvarint(b"\x80\x00")
    with pytest.raises(RemoteProtocolError):
        decode_uvarint(b"\xff" * 11)
    with pytest.raises(ValueError, match="out of range"):
        encode_uvarint(-1)


@given(st.binary(max_size=16))
def test_garbage_raises_only_typed_errors(data: bytes) -> None:
    try:
        value, pos = decode_uvarint(data)
    except (IncompleteVarint, RemoteProtocolError):
        return
    assert 0 <= value < 1 << 64
    assert 1 <= pos <= 10
