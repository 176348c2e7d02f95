"""Tests of the sans-IO Noise length-prefixed framing."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pstack.errors import LocalProtocolError, RemoteProtocolError
from transports.noise import MAX_FRAME_SIZE, FrameDecoder, encode_frame


def test_encode_frame_prefixes_big_endian_length() -> None:
    assert encode_frame(b"hello") == b"\x00\x05hello"
    assert encode_frame(b"") == b"\x00\x00"
    assert encode_frame(b"x" * 0x1234)[:2] == b"\x12\x34"


def test_encode_frame_refuses_oversize() -> None:
    assert len(encode_frame(b"x" * MAX_FRAME_SIZE)) == MAX_FRAME_SIZE + 2
    with pytest.raises(LocalProtocolError):
        encode_frame(b"x" * (MAX_FRAME_SIZE + 1))


def test_decoder_waits_for_complete_frames() -> None:
    dec = FrameDecoder()
    dec.feed(b"\x00")
    assert dec.next_frame() is None
    dec.feed(b"\x03ab")
    assert dec.next_frame() is None
    dec.feed(b"c\x00\x00\x00\x01z\xff")
    assert dec.next_frame() == b"abc"
    assert dec.next_frame() == b""
    assert dec.next_frame() == b"z"
    assert dec.next_frame() is None
    assert dec.take_remaining() == b"\xff"
    assert dec.buffered == 0


def test_decoder_rejects_frame_longer_than_limit() -> None:
    dec = FrameDecoder(max_frame=8)
    dec.feed(b"\x00\x09" + b"x" * 9)
    with pytest.raises(RemoteProtocolError):
        dec.next_frame()


def test_decoder_buffer_is_bounded() -> None:
    dec = FrameDecoder(max_frame=8, max_buffer=10)
    dec.feed(b"\x00\x08" + b"x" * 8)
    with pytest.raises(RemoteProtocolError):
        dec.feed(b"y")
    # The default bound holds two maximal frames.
    big = FrameDecoder()
    big.feed(b"\xff\xff" + b"x" * MAX_FRAME_SIZE)
    big.feed(b"\xff\xff" + b"x" * MAX_FRAME_SIZE)
    with pytest.raises(RemoteProtocolError):
        big.feed(b"z")


@given(
    frames=st.lists(st.binary(max_size=300), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
)
def test_round_trip_under_any_chunking(frames: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(encode_frame(f) for f in frames)
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    dec = FrameDecoder()
    out: list[bytes] = []
    for start, stop in itertools.pairwise(points):
        dec.feed(wire[start:stop])
        while (frame := dec.next_frame()) is not None:
            out.append(frame)
    assert out == frames
    assert dec.buffered == 0


@given(garbage=st.binary(max_size=2000), limit=st.integers(min_value=0, max_value=64))
def test_garbage_raises_only_remote_protocol_error(garbage: bytes, limit: int) -> None:
    dec = FrameDecoder(max_frame=limit, max_buffer=4096)
    try:
        dec.feed(garbage)
        while dec.next_frame() is not None:
            pass
    except RemoteProtocolError:
        pass
