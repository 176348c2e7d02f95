"""Tests of the sans-IO Noise XX handshake core: two cores wired back to back."""

from __future__ import annotations

from typing import cast

import attrs
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from p2pstack.errors import HandshakeError, LocalProtocolError, PeerIdMismatch
from p2pstack.identity import Identity, KeyType, PeerId, PrivateKey, PublicKey
from transports.noise import (
    SIGNATURE_PREFIX,
    HandshakePayload,
    HandshakeResult,
    NoiseHandshake,
    NoiseTransportState,
    decode_payload,
)

YAMUX = "/yamux/1.0.0"
MPLEX = "/mplex/6.7.0"


def core(
    identity: Identity,
    *,
    initiator: bool,
    muxers: tuple[str, ...] = (),
    remote_peer: PeerId | None = None,
    seed: int = 0,
) -> NoiseHandshake:
    return NoiseHandshake(
        initiator=initiator,
        identity=identity,
        static_key=bytes([seed + 1]) * 32,
        ephemeral_key=bytes([seed + 2]) * 32,
        muxers=muxers,
        remote_peer=remote_peer,
    )


def unframe(wire: bytes) -> bytes:
    assert int.from_bytes(wire[:2], "big") == len(wire) - 2
    return wire[2:]


def run(init: NoiseHandshake, resp: NoiseHandshake) -> tuple[HandshakeResult, HandshakeResult]:
    resp.read_message(unframe(init.write_message()))
    init.read_message(unframe(resp.write_message()))
    resp.read_message(unframe(init.write_message()))
    assert init.result is not None and resp.result is not None
    return init.result, resp.result


@pytest.mark.parametrize("key_type", [KeyType.ED25519, KeyType.SECP256K1, KeyType.ECDSA])
def test_handshake_authenticates_both_sides(key_type: KeyType) -> None:
    a, b = Identity.generate(key_type), Identity.generate(key_type)
    ra, rb = run(core(a, initiator=True), core(b, initiator=False, seed=10))
    assert ra.remote_peer == b.peer_id and rb.remote_peer == a.peer_id
    assert ra.remote_public_key == b.public_key and rb.remote_public_key == a.public_key
    assert ra.send_key == rb.recv_key and ra.recv_key == rb.send_key
    assert ra.send_key != ra.recv_key
    assert ra.handshake_hash == rb.handshake_hash
    # The derived keys carry traffic both ways.
    ta = NoiseTransportState(ra.send_key, ra.recv_key)
    tb = NoiseTransportState(rb.send_key, rb.recv_key)
    tb.receive_data(ta.encrypt(b"ping"))
    ta.receive_data(tb.encrypt(b"pong"))
    assert tb.read(10) == b"ping" and ta.read(10) == b"pong"


def test_message_sizes_and_payload_fields() -> None:
    a, b = Identity.generate(), Identity.generate()
    init, resp = core(a, initiator=True, muxers=(YAMUX,)), core(b, initiator=False, seed=10)
    msg1 = unframe(init.write_message())
    assert msg1 == x25519_public(bytes([2]) * 32)  # e (the ephemeral we passed in), no payload
    resp.read_message(msg1)
    msg2 = unframe(resp.write_message())
    # e (32) + encrypted s (32 + 16) + encrypted payload (+16)
    assert len(msg2) > 32 + 48 + 16
    init.read_message(msg2)
    assert init.result is None
    resp.read_message(unframe(init.write_message()))
    assert resp.complete and init.complete


def spy_payloads(hs: NoiseHandshake) -> list[HandshakePayload]:
    """Record every payload ``hs`` authenticates (after decryption)."""
    seen: list[HandshakePayload] = []
    original = hs._authenticate

    def spy(data: bytes) -> None:
        seen.append(decode_payload(data))
        original(data)

    hs._authenticate = spy  # type: ignore[method-assign]  # observe the decrypted payload
    return seen


def x25519_public(private: bytes) -> bytes:
    return (
        X25519PrivateKey.from_private_bytes(private)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )


def test_payloads_carry_key_and_signature_over_static_key() -> None:
    a, b = Identity.generate(KeyType.SECP256K1), Identity.generate()
    init = core(a, initiator=True, seed=0)
    resp = core(b, initiator=False, seed=10)
    from_resp, from_init = spy_payloads(init), spy_payloads(resp)
    run(init, resp)
    (p2,), (p3,) = from_resp, from_init
    assert p2.identity_key == b.public_key.to_protobuf()
    assert b.public_key.verify(SIGNATURE_PREFIX + x25519_public(bytes([11]) * 32), p2.identity_sig)
    assert p3.identity_key == a.public_key.to_protobuf()
    assert a.public_key.verify(SIGNATURE_PREFIX + x25519_public(bytes([1]) * 32), p3.identity_sig)


@pytest.mark.parametrize(
    ("init_muxers", "resp_muxers", "expected"),
    [
        ((YAMUX, MPLEX), (YAMUX, MPLEX), YAMUX),
        ((YAMUX, MPLEX), (MPLEX, YAMUX), MPLEX),  # responder's favourite is the only offer
        ((MPLEX, YAMUX), (YAMUX, MPLEX), YAMUX),
        ((YAMUX,), (MPLEX, YAMUX), None),  # responder offers only mplex: none in common
        ((YAMUX,), (MPLEX,), None),
        ((), (YAMUX,), None),  # initiator sends no extensions
        ((YAMUX,), (), None),  # responder sends no extensions
        ((), (), None),
    ],
)
def test_early_muxer_policy(
    init_muxers: tuple[str, ...], resp_muxers: tuple[str, ...], expected: str | None
) -> None:
    ra, rb = run(
        core(Identity.generate(), initiator=True, muxers=init_muxers),
        core(Identity.generate(), initiator=False, muxers=resp_muxers, seed=10),
    )
    assert ra.early_muxer == expected
    assert rb.early_muxer == expected


def test_advertised_lists_follow_the_policy() -> None:
    """Responder advertises only its favourite; initiator only its choice (or nothing)."""
    init = core(Identity.generate(), initiator=True, muxers=(YAMUX, MPLEX))
    resp = core(Identity.generate(), initiator=False, muxers=(MPLEX, YAMUX), seed=10)
    from_resp, from_init = spy_payloads(init), spy_payloads(resp)
    run(init, resp)
    assert [p.stream_muxers for p in from_resp + from_init] == [(MPLEX,), (MPLEX,)]

    init = core(Identity.generate(), initiator=True, muxers=(YAMUX,))
    resp = core(Identity.generate(), initiator=False, muxers=(MPLEX, YAMUX), seed=10)
    from_init = spy_payloads(resp)
    run(init, resp)
    assert from_init[0].stream_muxers is None


def test_peer_id_mismatch_before_revealing_ourselves() -> None:
    a, b, c = Identity.generate(), Identity.generate(), Identity.generate()
    init = core(a, initiator=True, remote_peer=c.peer_id)
    resp = core(b, initiator=False, seed=10)
    resp.read_message(unframe(init.write_message()))
    with pytest.raises(PeerIdMismatch) as info:
        init.read_message(unframe(resp.write_message()))
    assert info.value.expected == str(c.peer_id)
    assert info.value.actual == str(b.peer_id)


@attrs.frozen
class LyingIdentity:
    """Claims one public key but signs with another private key."""

    private_key: PrivateKey
    public_key: PublicKey
    peer_id: PeerId


def test_bad_signature_is_rejected() -> None:
    honest, other = Identity.generate(), Identity.generate()
    liar = cast(Identity, LyingIdentity(other.private_key, honest.public_key, honest.peer_id))
    init = core(Identity.generate(), initiator=True)
    resp = core(liar, initiator=False, seed=10)
    resp.read_message(unframe(init.write_message()))
    with pytest.raises(HandshakeError, match="signature"):
        init.read_message(unframe(resp.write_message()))


def test_tampered_and_truncated_messages_are_rejected() -> None:
    a, b = Identity.generate(), Identity.generate()
    init, resp = core(a, initiator=True), core(b, initiator=False, seed=10)
    with pytest.raises(HandshakeError):
        resp.read_message(unframe(init.write_message())[:31])

    init, resp = core(a, initiator=True), core(b, initiator=False, seed=10)
    resp.read_message(unframe(init.write_message()))
    msg2 = bytearray(unframe(resp.write_message()))
    msg2[-1] ^= 0x80
    with pytest.raises(HandshakeError):
        init.read_message(bytes(msg2))

    init, resp = core(a, initiator=True), core(b, initiator=False, seed=10)
    resp.read_message(unframe(init.write_message()))
    with pytest.raises(HandshakeError):
        init.read_message(unframe(resp.write_message())[:40])


def test_out_of_turn_calls_are_local_errors() -> None:
    init = core(Identity.generate(), initiator=True)
    with pytest.raises(LocalProtocolError):
        init.read_message(b"\x00" * 32)
    resp = core(Identity.generate(), initiator=False)
    with pytest.raises(LocalProtocolError):
        resp.write_message()
    with pytest.raises(ValueError):
        NoiseHandshake(
            initiator=True, identity=Identity.generate(), static_key=b"x", ephemeral_key=b"y" * 32
        )
