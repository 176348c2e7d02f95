"""Rendezvous messages: literal encodings from the spec's protobuf, and records."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pstack.errors import IdentityError, InvalidSignatureError, RemoteProtocolError
from p2pstack.identity import Identity
from protocols.discovery.rendezvous import (
    Discover,
    DiscoverResponse,
    Register,
    RegisterResponse,
    Status,
    Unregister,
    decode_message,
    encode_message,
    encode_peer_info,
    open_record,
)
from tests.protocols.discovery.rendezvous.records import ADDR, signed_record


def test_discover_literal_bytes() -> None:
    # type = DISCOVER (3); discover (field 5) = {ns: "a", limit: 1}
    data = bytes.fromhex("08032a050a01611001")
    assert encode_message(Discover(ns="a", limit=1)) == data
    assert decode_message(data) == Discover(ns="a", limit=1)


def test_register_response_literal_bytes() -> None:
    # type = REGISTER_RESPONSE (1); registerResponse (field 3) = {status: 102, text: "x", ttl: 0}
    data = bytes.fromhex("08011a0708661201781800")
    assert decode_message(data) == RegisterResponse(status=Status.E_INVALID_TTL, text="x")


def test_register_without_ttl_decodes_as_none() -> None:
    data = encode_message(Register(ns="n", record=b"r"))
    assert decode_message(data) == Register(ns="n", record=b"r", ttl=None)


def test_unknown_status_reads_as_internal_error() -> None:
    data = bytes.fromhex("08011a0308b960")  # status 12345
    msg = decode_message(data)
    assert isinstance(msg, RegisterResponse) and msg.status is Status.E_INTERNAL_ERROR


@pytest.mark.parametrize(
    "msg",
    [
        Register(ns="app", record=b"\x01\x02", ttl=7200),
        RegisterResponse(status=Status.OK, text="", ttl=60),
        Unregister(ns="app", peer_id=b"\x00\x01"),
        Discover(ns="", limit=0, cookie=b"c"),
        DiscoverResponse(
            status=Status.OK, registrations=(Register(ns="a", record=b"r", ttl=5),), cookie=b"k"
        ),
    ],
)
def test_round_trip(msg: object) -> None:
    assert decode_message(encode_message(msg)) == msg  # type: ignore[arg-type]  # parametrised over every message type of the union


@pytest.mark.parametrize("data", [b"\xff", b"", bytes.fromhex("0803"), bytes.fromhex("0809")])
def test_bad_messages_raise_remote_protocol_error(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_message(data)


@given(st.binary(max_size=300))
def test_decode_never_raises_anything_else(data: bytes) -> None:
    try:
        decode_message(data)
    except RemoteProtocolError:
        pass


def test_open_signed_and_unsigned_records() -> None:
    ident = Identity.generate()
    opened = open_record(signed_record(ident), allow_unsigned=False)
    assert (opened.peer_id, opened.addrs, opened.signed) == (ident.peer_id, (ADDR,), True)
    info = encode_peer_info(ident.peer_id, (ADDR,))
    opened = open_record(info, allow_unsigned=True)
    assert (opened.peer_id, opened.addrs, opened.signed) == (ident.peer_id, (ADDR,), False)
    with pytest.raises(IdentityError):
        open_record(info, allow_unsigned=False)


def test_tampered_signature_is_never_read_as_peer_info() -> None:
    data = bytearray(signed_record(Identity.generate()))
    data[-1] ^= 1
    with pytest.raises(InvalidSignatureError):
        open_record(bytes(data), allow_unsigned=True)


@pytest.mark.parametrize("data", [b"", b"\x00" * 10, b"\x0a\x02\x00\x00", b"x" * 9000])
def test_garbage_records_are_identity_errors(data: bytes) -> None:
    with pytest.raises(IdentityError):
        open_record(data, allow_unsigned=True)
