"""Length-prefixed framing: literal vectors, hypothesis properties and the stream helpers."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pstack.errors import RemoteProtocolError
from p2pstack.framing import (
    LpDecoder,
    encode_lp,
    read_lp,
    read_lp_message,
    write_lp,
    write_lp_message,
)
from p2pstack.streams import memory_connection_pair
from transports.plaintext.plaintext_pb2 import Exchange as ExchangePb

messages = st.lists(st.binary(max_size=300), max_size=8)


def test_literal_vectors() -> None:
    assert encode_lp(b"") == b"\x00"
    assert encode_lp(b"abc") == b"\x03abc"
    assert encode_lp(bytearray(200)) == b"\xc8\x01" + bytes(200)
    assert LpDecoder(300).feed(b"\xc8\x01" + bytes(200) + b"\x01x") == [bytes(200), b"x"]


@given(messages)
def test_roundtrip(bodies: list[bytes]) -> None:
    wire = b"".join(encode_lp(body) for body in bodies)
    decoder = LpDecoder(300)
    assert decoder.feed(wire) == bodies
    assert decoder.buffered == 0


@given(messages)
def test_split_at_every_byte_boundary(bodies: list[bytes]) -> None:
    wire = b"".join(encode_lp(body) for body in bodies)
    for cut in range(len(wire) + 1):
        decoder = LpDecoder(300)
        assert decoder.feed(wire[:cut]) + decoder.feed(memoryview(wire)[cut:]) == bodies


@given(messages)
def test_byte_by_byte(bodies: list[bytes]) -> None:
    wire = b"".join(encode_lp(body) for body in bodies)
    decoder = LpDecoder(300)
    out: list[bytes] = []
    for i in range(len(wire)):
        out += decoder.feed(wire[i : i + 1])
        assert decoder.buffered <= 300 + 10
    assert out == bodies


@given(st.integers(min_value=0, max_value=2**63), st.integers(min_value=0, max_value=1000))
def test_oversize_is_rejected_from_the_prefix_alone(length: int, max_size: int) -> None:
    prefix = _uvarint(length)
    decoder = LpDecoder(max_size)
    if length > max_size:
        with pytest.raises(RemoteProtocolError, match="larger than"):
            decoder.feed(prefix)
    else:
        assert decoder.feed(prefix) == ([b""] if length == 0 else [])


@given(st.binary(max_size=64))
def test_garbage_raises_only_remote_protocol_error(data: bytes) -> None:
    decoder = LpDecoder(16)
    try:
        decoder.feed(data)
    except RemoteProtocolError:
        return
    assert decoder.buffered <= 16 + 10


@pytest.mark.parametrize(
    "wire", [b"\x80" * 11, b"\x80\x00", b"\xff" * 9 + b"\x7f"], ids=["long", "padded", "huge"]
)
def test_bad_varints(wire: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        LpDecoder(1 << 20).feed(wire)


def test_max_messages_keeps_what_follows() -> None:
    decoder = LpDecoder(10, max_messages=1)
    assert decoder.feed(b"\x02hi\xff\xff\xff") == [b"hi"]
    assert decoder.done
    assert decoder.take_remaining() == b"\xff\xff\xff"
    with pytest.raises(ValueError):
        LpDecoder(10, max_messages=0)


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@pytest.mark.anyio
async def test_read_lp_leaves_following_bytes_in_the_stream() -> None:
    a, b = memory_connection_pair()
    with anyio.fail_after(5):
        await a.send(encode_lp(b"one") + encode_lp(b"two") + b"rest")
        await write_lp(a, bytearray(b"three"))
        await a.send_eof()
        assert await read_lp(b, max_size=10) == b"one"
        assert await read_lp(b, max_size=10) == b"two"
        assert await b.receive(4) == b"rest"
        assert await read_lp(b, max_size=10) == b"three"
        with pytest.raises(anyio.EndOfStream):
            await read_lp(b, max_size=10)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("wire", "match"),
    [
        (b"\x0bhello world", "larger than"),
        (b"\x05abc", "ended after 3 of 5"),
        (b"\x80", "inside a length prefix"),
        (b"\x80" * 11, "longer than 10 bytes"),
    ],
)
async def test_read_lp_errors(wire: bytes, match: str) -> None:
    a, b = memory_connection_pair()
    with anyio.fail_after(5):
        await a.send(wire)
        await a.send_eof()
        with pytest.raises(RemoteProtocolError, match=match):
            await read_lp(b, max_size=10)


@pytest.mark.anyio
async def test_protobuf_helpers() -> None:
    a, b = memory_connection_pair()
    with anyio.fail_after(5):
        await write_lp_message(a, ExchangePb(id=b"peer", pubkey=b"key"))
        await a.send(b"\x02\xff\xff")  # not a protobuf
        got = await read_lp_message(b, ExchangePb, max_size=100)
        assert (got.id, got.pubkey) == (b"peer", b"key")
        with pytest.raises(RemoteProtocolError, match="invalid Exchange"):
            await read_lp_message(b, ExchangePb, max_size=100)
