"""Tests of the ``/plaintext/2.0.0`` security channel."""

from __future__ import annotations

import contextlib

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pstack.errors import HandshakeError, PeerIdMismatch, RemoteProtocolError
from p2pstack.identity import Identity, KeyType
from p2pstack.interfaces import SecureConnection, SecurityChannel
from p2pstack.streams import memory_connection_pair
from transports.plaintext import (
    MAX_EXCHANGE_SIZE,
    PROTOCOL_ID,
    Exchange,
    ExchangeReader,
    Plaintext,
    PlaintextSecureConnection,
    decode_exchange,
    encode_exchange,
)


def test_exchange_known_bytes() -> None:
    wire = encode_exchange(Exchange(id=b"\x00\x02ab", pubkey=b"\x08\x01\x12\x00"))
    # length 12, then field 1 (bytes) and field 2 (message)
    assert wire == b"\x0c\x0a\x04\x00\x02ab\x12\x04\x08\x01\x12\x00"
    reader = ExchangeReader()
    assert reader.feed(wire[:3]) is None
    assert reader.feed(wire[3:] + b"rest") == Exchange(id=b"\x00\x02ab", pubkey=b"\x08\x01\x12\x00")
    assert reader.take_remaining() == b"rest"


def test_exchange_size_is_bounded() -> None:
    reader = ExchangeReader()
    with pytest.raises(RemoteProtocolError):
        reader.feed(b"\x81\x40")  # 8193
    assert MAX_EXCHANGE_SIZE == 8192


@given(ident=st.binary(max_size=64), pubkey=st.binary(max_size=600), extra=st.binary(max_size=20))
def test_exchange_round_trip(ident: bytes, pubkey: bytes, extra: bytes) -> None:
    reader = ExchangeReader()
    got = reader.feed(encode_exchange(Exchange(id=ident, pubkey=pubkey)) + extra)
    assert got == Exchange(id=ident, pubkey=pubkey)
    assert reader.take_remaining() == extra


@given(garbage=st.binary(max_size=300))
def test_garbage_raises_only_remote_protocol_error(garbage: bytes) -> None:
    try:
        decode_exchange(garbage)
    except RemoteProtocolError:
        pass
    try:
        ExchangeReader().feed(garbage)
    except RemoteProtocolError:
        pass


@pytest.mark.anyio
@pytest.mark.parametrize("key_type", [KeyType.ED25519, KeyType.SECP256K1, KeyType.RSA])
async def test_handshake(key_type: KeyType) -> None:
    a, b = Identity.generate(key_type), Identity.generate(key_type)
    ca, cb = memory_connection_pair()
    channel: SecurityChannel = Plaintext()
    assert channel.protocol_id == PROTOCOL_ID == "/plaintext/2.0.0"
    out: list[PlaintextSecureConnection] = []

    async def inbound() -> None:
        out.append(await Plaintext().secure_inbound(cb, b, muxers=["/yamux/1.0.0"]))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(inbound)
            sa = await Plaintext().secure_outbound(ca, a, remote_peer=b.peer_id)
            await sa.send(b"hi")  # may arrive together with the Exchange
        sb: SecureConnection = out[0]
        assert sa.remote_peer == b.peer_id and sb.remote_peer == a.peer_id
        assert sa.local_peer == a.peer_id
        assert sb.remote_public_key == a.public_key
        assert sa.early_muxer is None and sb.early_muxer is None
        assert sb.security_protocol == PROTOCOL_ID
        assert await sb.receive() == b"hi"
        await sb.send_eof()
        with pytest.raises(anyio.EndOfStream):
            await sa.receive()
        await sa.aclose()
        await sb.aclose()


@pytest.mark.anyio
async def test_peer_id_mismatch() -> None:
    a, b, c = Identity.generate(), Identity.generate(), Identity.generate()
    ca, cb = memory_connection_pair()

    async def inbound() -> None:
        # The responder may finish (it checks nothing) or see the initiator hang up.
        with contextlib.suppress(HandshakeError):
            await Plaintext().secure_inbound(cb, b)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(inbound)
            with pytest.raises(PeerIdMismatch):
                await Plaintext().secure_outbound(ca, a, remote_peer=c.peer_id)
    with pytest.raises(anyio.ClosedResourceError):
        await ca.receive()
    await cb.aclose()


@pytest.mark.anyio
async def test_id_not_matching_key_is_rejected() -> None:
    a, b = Identity.generate(), Identity.generate()
    ca, cb = memory_connection_pair()
    forged = Exchange(id=b.peer_id.to_bytes(), pubkey=a.public_key.to_protobuf())
    with anyio.fail_after(5):
        await ca.send(encode_exchange(forged))
        with pytest.raises(HandshakeError, match="does not match"):
            await Plaintext().secure_inbound(cb, b)
    await ca.aclose()


@pytest.mark.anyio
async def test_bad_key_and_early_close_are_handshake_errors() -> None:
    b = Identity.generate()
    ca, cb = memory_connection_pair()
    with anyio.fail_after(5):
        await ca.send(encode_exchange(Exchange(id=b"\x00\x00", pubkey=b"\xff")))
        with pytest.raises(HandshakeError):
            await Plaintext().secure_inbound(cb, b)
        await ca.aclose()

        ca, cb = memory_connection_pair()
        await ca.send(b"\x20\x0a")
        await ca.send_eof()
        with pytest.raises(HandshakeError):
            await Plaintext().secure_inbound(cb, b)
        await ca.aclose()
