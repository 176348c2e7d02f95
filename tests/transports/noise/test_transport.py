"""Tests of the sans-IO Noise transport cipher (framing + ChaCha20-Poly1305)."""

from __future__ import annotations

import itertools

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pstack.errors import RemoteProtocolError
from transports.noise import MAX_PLAINTEXT_PER_FRAME, NoiseTransportState

K1 = bytes(range(32))
K2 = bytes(range(32, 64))


def pair() -> tuple[NoiseTransportState, NoiseTransportState]:
    return NoiseTransportState(K1, K2), NoiseTransportState(K2, K1)


def test_nonce_is_four_zero_bytes_then_little_endian_counter() -> None:
    a, _ = pair()
    first = bytes(a.encrypt(b"hi"))
    second = bytes(a.encrypt(b"hi"))
    aead = ChaCha20Poly1305(K1)
    assert first == b"\x00\x12" + aead.encrypt(b"\x00" * 12, b"hi", None)
    nonce1 = b"\x00\x00\x00\x00" + b"\x01\x00\x00\x00\x00\x00\x00\x00"
    assert second == b"\x00\x12" + aead.encrypt(nonce1, b"hi", None)


def test_large_plaintext_is_split_into_maximal_frames() -> None:
    a, b = pair()
    data = bytes(range(256)) * 600  # 153600 bytes
    wire = bytes(a.encrypt(data))
    assert wire[:2] == b"\xff\xff"
    second = 2 + 0xFFFF
    assert wire[second : second + 2] == b"\xff\xff"
    tail = len(data) - 2 * MAX_PLAINTEXT_PER_FRAME
    assert int.from_bytes(wire[2 * second : 2 * second + 2], "big") == tail + 16
    assert len(wire) == 2 * second + 2 + tail + 16
    b.receive_data(wire)
    assert b.pending == len(data)
    assert b.read(10**9) == data
    assert a.encrypt(b"") == bytearray()


def test_read_respects_max_bytes_and_keeps_the_rest() -> None:
    a, b = pair()
    b.receive_data(a.encrypt(b"abcdef") + a.encrypt(b"ghij"))
    assert b.read(4) == b"abcd"
    assert b.read(3) == b"efg"
    assert b.read(100) == b"hij"
    assert b.read(100) == b""
    with pytest.raises(ValueError):
        b.read(0)


def test_partial_frames_are_kept_until_complete() -> None:
    a, b = pair()
    wire = bytes(a.encrypt(b"payload"))
    b.receive_data(wire[:1])
    assert b.has_partial_frame
    b.receive_data(wire[1:10])
    assert b.pending == 0
    b.receive_data(wire[10:])
    assert not b.has_partial_frame
    assert b.read(100) == b"payload"


def test_tampered_ciphertext_breaks_the_session() -> None:
    a, b = pair()
    wire = bytearray(a.encrypt(b"secret"))
    wire[5] ^= 1
    with pytest.raises(RemoteProtocolError):
        b.receive_data(wire)
    with pytest.raises(RemoteProtocolError):
        b.receive_data(a.encrypt(b"more"))


def test_frame_shorter_than_tag_is_rejected() -> None:
    _, b = pair()
    with pytest.raises(RemoteProtocolError):
        b.receive_data(b"\x00\x0f" + b"x" * 15)


def test_replayed_frame_fails() -> None:
    a, b = pair()
    frame = bytes(a.encrypt(b"once"))
    b.receive_data(frame)
    with pytest.raises(RemoteProtocolError):
        b.receive_data(frame)


@settings(max_examples=50)
@given(
    messages=st.lists(st.binary(max_size=70_000), max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=300_000), max_size=10),
    reads=st.integers(min_value=1, max_value=100_000),
)
def test_round_trip_under_any_chunking(messages: list[bytes], cuts: list[int], reads: int) -> None:
    a, b = pair()
    wire = b"".join(bytes(a.encrypt(m)) for m in messages)
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    got = bytearray()
    for start, stop in itertools.pairwise(points):
        b.receive_data(wire[start:stop])
        while chunk := b.read(reads):
            assert len(chunk) <= reads
            got += chunk
    assert bytes(got) == b"".join(messages)


@given(garbage=st.binary(max_size=3000))
def test_garbage_raises_only_remote_protocol_error(garbage: bytes) -> None:
    _, b = pair()
    try:
        b.receive_data(garbage)
    except RemoteProtocolError:
        return
    # Without a valid tag nothing can decrypt; at most a partial frame is buffered.
    assert b.pending == 0


def test_read_frame_hands_over_one_frame_without_joining() -> None:
    a, b = pair()
    data = bytes(range(256)) * 600  # 153600 bytes: three frames
    b.receive_data(a.encrypt(data))
    first = b.read_frame(10**9)
    assert first == data[:MAX_PLAINTEXT_PER_FRAME]
    assert b.read_frame(10) == data[MAX_PLAINTEXT_PER_FRAME : MAX_PLAINTEXT_PER_FRAME + 10]
    rest = bytearray()
    while chunk := b.read_frame(10**9):
        assert len(chunk) <= MAX_PLAINTEXT_PER_FRAME
        rest += chunk
    assert bytes(rest) == data[MAX_PLAINTEXT_PER_FRAME + 10 :]
    with pytest.raises(ValueError):
        b.read_frame(0)


def test_partial_frame_is_completed_from_the_next_chunk_byte_by_byte() -> None:
    a, b = pair()
    wire = bytes(a.encrypt(b"first")) + bytes(a.encrypt(b"second"))
    # One byte at a time: the length prefix itself arrives split.
    for i in range(len(wire)):
        b.receive_data(wire[i : i + 1])
    assert b.read(100) == b"firstsecond"
    assert not b.has_partial_frame


@settings(max_examples=50)
@given(
    messages=st.lists(st.binary(max_size=70_000), max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=300_000), max_size=10),
    reads=st.integers(min_value=1, max_value=100_000),
)
def test_read_frame_round_trip_under_any_chunking(
    messages: list[bytes], cuts: list[int], reads: int
) -> None:
    a, b = pair()
    wire = b"".join(bytes(a.encrypt(m)) for m in messages)
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    got = bytearray()
    for start, stop in itertools.pairwise(points):
        b.receive_data(memoryview(wire)[start:stop])
        while chunk := b.read_frame(reads):
            assert len(chunk) <= min(reads, MAX_PLAINTEXT_PER_FRAME)
            got += chunk
    assert bytes(got) == b"".join(messages)
    assert not b.has_partial_frame
