"""Hop and stop message encoding and decoding, with bytes written by hand from the schema."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiaddr import Multiaddr

from p2pstack.errors import RemoteProtocolError
from p2pstack.framing import encode_lp
from p2pstack.identity import Identity
from protocols.relay import (
    MAX_ADDRS,
    HopMessage,
    HopType,
    Limit,
    MalformedMessage,
    Peer,
    RelayStatusError,
    Reservation,
    Status,
    StopMessage,
    StopType,
    decode_hop,
    decode_stop,
    encode_hop,
    encode_stop,
    read_hop,
    read_stop,
    write_hop,
    write_stop,
)

PEER = Identity.generate().peer_id


def test_reserve_is_two_bytes() -> None:
    # field 1 (type), varint 0 = RESERVE
    assert encode_hop(HopMessage(type=HopType.RESERVE)) == b"\x08\x00"
    assert decode_hop(b"\x08\x00") == HopMessage(type=HopType.RESERVE)


def test_status_ok_with_limit_literal_bytes() -> None:
    message = HopMessage(
        type=HopType.STATUS, status=Status.OK, limit=Limit(duration=120, data=1 << 17)
    )
    # type=2; limit (field 4) {duration=120, data=131072}; status (field 5) = 100
    expected = b"\x08\x02" + b"\x22\x06\x08\x78\x10\x80\x80\x08" + b"\x28\x64"
    assert encode_hop(message) == expected
    assert decode_hop(expected) == message


def test_connect_round_trip_and_peer_bytes() -> None:
    addr = Multiaddr("/ip4/127.0.0.1/tcp/4001")
    message = HopMessage(type=HopType.CONNECT, peer=Peer(id=PEER, addrs=[addr]))
    data = encode_hop(message)
    assert PEER.to_bytes() in data and addr.to_bytes() in data
    assert decode_hop(data) == message


def test_reservation_round_trip() -> None:
    rsvp = Reservation(
        expire=1_700_000_000, addrs=[Multiaddr(f"/ip4/192.0.2.1/tcp/1/p2p/{PEER}")], voucher=b"v"
    )
    message = HopMessage(type=HopType.STATUS, status=Status.OK, reservation=rsvp)
    assert decode_hop(encode_hop(message)) == message


def test_stop_round_trip() -> None:
    connect = StopMessage(type=StopType.CONNECT, peer=Peer(id=PEER), limit=Limit(data=5))
    assert decode_stop(encode_stop(connect)) == connect
    status = StopMessage(type=StopType.STATUS, status=Status.OK)
    assert encode_stop(status) == b"\x08\x01\x20\x64"
    assert decode_stop(b"\x08\x01\x20\x64") == status


@pytest.mark.parametrize(
    "data",
    [
        b"",  # no type
        b"\x08\x09",  # unknown type
        b"\x08\x01",  # CONNECT without a peer
        b"\x08\x02",  # STATUS without a status
        b"\x08\x02\x28\x07",  # unknown status
        b"\x08\x01\x12\x03\x0a\x01\x00",  # invalid peer id
        b"\x08\x02\x28\x64\x1a\x00",  # reservation without expire
        b"\x08",  # truncated
        b"\x08\x00" + b"\x00" * 4096,  # too large
    ],
)
def test_malformed_hop_messages(data: bytes) -> None:
    with pytest.raises(MalformedMessage) as info:
        decode_hop(data)
    assert info.value.status is Status.MALFORMED_MESSAGE
    assert isinstance(info.value, RemoteProtocolError)


@pytest.mark.parametrize("data", [b"", b"\x08\x00", b"\x08\x01", b"\x08\x05", b"\x08\x01\x20\x01"])
def test_malformed_stop_messages(data: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_stop(data)


def test_unparsable_addresses_are_dropped_and_counted() -> None:
    good = Multiaddr("/ip4/127.0.0.1/tcp/1")
    peer = b"\x0a" + bytes([len(PEER.to_bytes())]) + PEER.to_bytes()
    peer += b"\x12\x02\xff\xff" + b"\x12" + bytes([len(good.to_bytes())]) + good.to_bytes()
    message = decode_hop(b"\x08\x01\x12" + bytes([len(peer)]) + peer)
    assert message.peer is not None and message.peer.addrs == (good,)
    many = b"\x0a" + bytes([len(PEER.to_bytes())]) + PEER.to_bytes()
    many += (b"\x12\x02\xff\xff") * (MAX_ADDRS + 1)
    with pytest.raises(MalformedMessage, match="addresses"):
        decode_hop(b"\x08\x01\x12" + bytes([len(many) & 0x7F | 0x80, len(many) >> 7]) + many)


def test_status_error_names_the_status() -> None:
    error = RelayStatusError(Status.NO_RESERVATION, "relay refused the circuit")
    assert "NO_RESERVATION" in str(error) and error.status is Status.NO_RESERVATION


@given(st.binary(max_size=512))
def test_decoders_raise_only_malformed(data: bytes) -> None:
    for decode, encode in ((decode_hop, encode_hop), (decode_stop, encode_stop)):
        try:
            message = decode(data)
        except MalformedMessage:
            continue
        assert decode(encode(message)) == message  # type: ignore[arg-type]  # pairs match


class _Pipe:
    """A loop-back byte stream: what is sent is received."""

    def __init__(self) -> None:
        self.buf = bytearray()

    async def send(self, data: bytes) -> None:
        self.buf += data

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self.buf:
            raise anyio.EndOfStream
        out = bytes(self.buf[:max_bytes])
        del self.buf[:max_bytes]
        return out


@pytest.mark.anyio
async def test_stream_helpers_read_one_message_each() -> None:
    pipe = _Pipe()
    hop = HopMessage(type=HopType.CONNECT, peer=Peer(id=PEER))
    stop = StopMessage(type=StopType.STATUS, status=Status.OK)
    await write_hop(pipe, hop)  # type: ignore[arg-type]  # a minimal stream
    await write_stop(pipe, stop)  # type: ignore[arg-type]  # a minimal stream
    pipe.buf += b"rest"
    assert await read_hop(pipe) == hop  # type: ignore[arg-type]  # a minimal stream
    assert await read_stop(pipe) == stop  # type: ignore[arg-type]  # a minimal stream
    assert bytes(pipe.buf) == b"rest"
    pipe.buf[:] = encode_lp(b"\x08\x09")
    with pytest.raises(MalformedMessage):
        await read_hop(pipe)  # type: ignore[arg-type]  # a minimal stream
    pipe.buf[:] = b"\x80\x40"  # a length of 8192
    with pytest.raises(RemoteProtocolError, match="limit"):
        await read_stop(pipe)  # type: ignore[arg-type]  # a minimal stream


def test_out_of_range_values_are_refused_when_built() -> None:
    with pytest.raises(ValueError, match="uint32"):
        Limit(duration=1 << 32)
    with pytest.raises(ValueError, match="uint64"):
        Limit(data=-1)
    with pytest.raises(ValueError, match="uint64"):
        Reservation(expire=1 << 64)
