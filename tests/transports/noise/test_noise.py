"""Tests of the ``/noise`` security channel driver over in-memory connections."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import AsyncIterator

import anyio
import pytest

from p2pstack.errors import HandshakeError, PeerIdMismatch, RemoteProtocolError
from p2pstack.identity import Identity, KeyType, PeerId
from p2pstack.interfaces import SecureConnection, SecurityChannel
from p2pstack.streams import MemoryConnection, memory_connection_pair
from transports.noise import (
    PROTOCOL_ID,
    Noise,
    NoiseHandshake,
    NoiseSecureConnection,
    NoiseTransportState,
)

pytestmark = pytest.mark.anyio

YAMUX = "/yamux/1.0.0"
MPLEX = "/mplex/6.7.0"


@contextlib.asynccontextmanager
async def secure_pair(
    a: Identity,
    b: Identity,
    *,
    init_muxers: tuple[str, ...] = (),
    resp_muxers: tuple[str, ...] = (),
    remote_peer: PeerId | None = None,
) -> AsyncIterator[tuple[NoiseSecureConnection, NoiseSecureConnection]]:
    ca, cb = memory_connection_pair()
    noise = Noise()
    out: dict[str, NoiseSecureConnection] = {}

    async def inbound() -> None:
        out["b"] = await noise.secure_inbound(cb, b, muxers=resp_muxers)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(inbound)
            out["a"] = await noise.secure_outbound(
                ca, a, remote_peer=remote_peer or b.peer_id, muxers=init_muxers
            )
    try:
        yield out["a"], out["b"]
    finally:
        await out["a"].aclose()
        await out["b"].aclose()


@contextlib.asynccontextmanager
async def raw_pair() -> AsyncIterator[tuple[MemoryConnection, MemoryConnection]]:
    ca, cb = memory_connection_pair()
    try:
        yield ca, cb
    finally:
        await ca.aclose()
        await cb.aclose()


def test_satisfies_the_interfaces() -> None:
    noise: SecurityChannel = Noise()
    assert noise.protocol_id == PROTOCOL_ID == "/noise"


@pytest.mark.parametrize(
    "key_type", [KeyType.ED25519, KeyType.SECP256K1, KeyType.ECDSA, KeyType.RSA]
)
async def test_handshake_for_each_key_type(key_type: KeyType) -> None:
    a, b = Identity.generate(key_type), Identity.generate(key_type)
    async with secure_pair(a, b) as (sa, sb):
        secure: SecureConnection = sa
        assert secure.security_protocol == "/noise"
        assert sa.local_peer == a.peer_id and sa.remote_peer == b.peer_id
        assert sb.local_peer == b.peer_id and sb.remote_peer == a.peer_id
        assert sb.remote_public_key == a.public_key
        assert str(sa.remote_multiaddr) == str(sb.local_multiaddr)
        with anyio.fail_after(5):
            await sa.send(b"hello")
            assert await sb.receive() == b"hello"
            await sb.send(b"world")
            assert await sa.receive() == b"world"


@pytest.mark.parametrize(
    ("init_muxers", "resp_muxers", "expected"),
    [
        ((YAMUX, MPLEX), (YAMUX, MPLEX), YAMUX),
        ((YAMUX, MPLEX), (MPLEX, YAMUX), MPLEX),
        ((MPLEX, YAMUX), (YAMUX, MPLEX), YAMUX),
        ((YAMUX,), (MPLEX,), None),
        ((), (YAMUX,), None),
        ((YAMUX,), (), None),
    ],
)
async def test_early_muxer(
    init_muxers: tuple[str, ...], resp_muxers: tuple[str, ...], expected: str | None
) -> None:
    async with secure_pair(
        Identity.generate(),
        Identity.generate(),
        init_muxers=init_muxers,
        resp_muxers=resp_muxers,
    ) as (sa, sb):
        assert sa.early_muxer == expected
        assert sb.early_muxer == expected


async def test_peer_id_mismatch_closes_both() -> None:
    a, b, c = Identity.generate(), Identity.generate(), Identity.generate()
    noise = Noise()
    errors: list[BaseException] = []
    async with raw_pair() as (ca, cb):

        async def inbound() -> None:
            try:
                await noise.secure_inbound(cb, b)
            except HandshakeError as exc:
                errors.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(inbound)
                with pytest.raises(PeerIdMismatch):
                    await noise.secure_outbound(ca, a, remote_peer=c.peer_id)
        assert len(errors) == 1  # the responder saw the initiator hang up
        with pytest.raises(anyio.ClosedResourceError):
            await ca.send(b"x")


async def test_truncated_handshake_is_a_handshake_error() -> None:
    async with raw_pair() as (ca, cb):
        with anyio.fail_after(5):
            await ca.send(b"\x00\x20" + b"\x01" * 10)  # promises 32 bytes, sends 10
            await ca.send_eof()
            with pytest.raises(HandshakeError):
                await Noise().secure_inbound(cb, Identity.generate())
        with pytest.raises(anyio.ClosedResourceError):
            await cb.receive()


async def test_garbage_handshake_message_is_a_handshake_error() -> None:
    async with raw_pair() as (ca, cb):

        async def answer_with_garbage() -> None:
            await ca.receive()
            await ca.send(b"\x00\x70" + b"\x05" * 0x70)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(answer_with_garbage)
                with pytest.raises(HandshakeError):
                    await Noise().secure_outbound(cb, Identity.generate(), remote_peer=None)


async def test_large_transfer_round_trip() -> None:
    data = os.urandom(8 * 1024 * 1024)
    received = hashlib.sha256()
    count = 0
    async with secure_pair(Identity.generate(), Identity.generate()) as (sa, sb):

        async def reader() -> None:
            nonlocal count
            with contextlib.suppress(anyio.EndOfStream):
                while True:
                    chunk = await sb.receive(1 << 20)
                    received.update(chunk)
                    count += len(chunk)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader)
                await sa.send(data[:1000])
                await sa.send(data[1000:])
                await sa.send_eof()
    assert count == len(data)
    assert received.digest() == hashlib.sha256(data).digest()


async def test_send_eof_half_closes() -> None:
    async with secure_pair(Identity.generate(), Identity.generate()) as (sa, sb):
        with anyio.fail_after(5):
            await sa.send(b"last words")
            await sa.send_eof()
            with pytest.raises(anyio.ClosedResourceError):
                await sa.send(b"more")
            assert await sb.receive() == b"last words"
            with pytest.raises(anyio.EndOfStream):
                await sb.receive()
            with pytest.raises(anyio.EndOfStream):
                await sb.receive()
            # The other direction still works.
            await sb.send(b"reply")
            assert await sa.receive() == b"reply"
            await sb.send_eof()
            with pytest.raises(anyio.EndOfStream):
                await sa.receive()
        await sa.aclose()
        await sa.aclose()  # idempotent
        with pytest.raises(anyio.ClosedResourceError):
            await sa.receive()


async def test_receive_respects_max_bytes() -> None:
    async with secure_pair(Identity.generate(), Identity.generate()) as (sa, sb):
        with anyio.fail_after(5):
            await sa.send(b"0123456789")
            assert await sb.receive(4) == b"0123"
            assert await sb.receive(100) == b"456789"


async def test_bytes_right_behind_the_last_handshake_message_are_kept() -> None:
    # A peer may write its first transport frame in the same write as message 3.
    init = NoiseHandshake(
        initiator=True,
        identity=Identity.generate(),
        static_key=os.urandom(32),
        ephemeral_key=os.urandom(32),
    )
    out: list[NoiseSecureConnection] = []
    async with raw_pair() as (ca, cb):

        async def inbound() -> None:
            out.append(await Noise().secure_inbound(cb, Identity.generate()))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(inbound)
                await ca.send(init.write_message())
                init.read_message((await ca.receive())[2:])
                msg3 = init.write_message()
                assert init.result is not None
                state = NoiseTransportState(init.result.send_key, init.result.recv_key)
                await ca.send(msg3 + bytes(state.encrypt(b"early")))
            assert await out[0].receive() == b"early"


@pytest.mark.parametrize(
    ("raw_bytes", "then_eof"),
    [
        (b"\x00\x20" + b"\x00" * 32, False),  # a frame with a wrong tag
        (b"\x00\x05hello", False),  # shorter than a tag
        (b"\xff\xff" + b"x" * 100, True),  # a 65535-byte frame cut short by end of stream
    ],
)
async def test_bad_transport_bytes_are_remote_protocol_errors(
    raw_bytes: bytes, then_eof: bool
) -> None:
    async with raw_pair() as (ca, cb):
        out: list[NoiseSecureConnection] = []

        async def inbound() -> None:
            out.append(await Noise().secure_inbound(cb, Identity.generate()))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(inbound)
                sa = await Noise().secure_outbound(ca, Identity.generate(), remote_peer=None)
            await ca.send(raw_bytes)
            if then_eof:
                await ca.send_eof()
            with pytest.raises(RemoteProtocolError):
                await out[0].receive()
            # The connection is closed after the error.
            with pytest.raises(anyio.ClosedResourceError):
                await out[0].receive()
            with pytest.raises(anyio.EndOfStream):
                await sa.receive()


@pytest.mark.anyio
async def test_seeded_randomness_gives_identical_handshakes() -> None:
    """With the same seeded key source (as a simulation uses), the bytes on the wire repeat."""
    import functools
    import random

    from p2pstack.streams import memory_connection_pair

    async def first_message(seed: int) -> bytes:
        rng = random.Random(seed)
        noise = Noise(random_bytes=rng.randbytes)
        ident = Identity.generate(random_bytes=random.Random(99).randbytes)
        a, b = memory_connection_pair()
        async with anyio.create_task_group() as tg:
            tg.start_soon(functools.partial(noise.secure_outbound, a, ident, remote_peer=None))
            with anyio.fail_after(5):
                msg = await b.receive()
            tg.cancel_scope.cancel()
        return msg

    assert await first_message(1) == await first_message(1)
    assert await first_message(1) != await first_message(2)
