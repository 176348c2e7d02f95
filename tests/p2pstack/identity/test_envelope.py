"""Signed envelopes (RFC 0002) and peer records (RFC 0003): sealing, opening, tampering."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiaddr import Multiaddr

from p2pstack.errors import IdentityError, InvalidKeyError, InvalidSignatureError
from p2pstack.identity import (
    MAX_ENVELOPE_SIZE,
    Envelope,
    Identity,
    KeyType,
    PeerId,
    PeerRecord,
    PrivateKey,
)
from p2pstack.identity.pb import envelope_pb2
from tests.p2pstack.identity import vectors

ED25519 = PrivateKey.from_protobuf(bytes.fromhex(vectors.ED25519_PRIVATE_HEX))
SECP256K1 = PrivateKey.from_protobuf(bytes.fromhex(vectors.SECP256K1_PRIVATE_HEX))
ADDRS = (Multiaddr("/ip4/127.0.0.1/tcp/4001"), Multiaddr("/ip6/::1/udp/4001/quic-v1"))


def test_signature_covers_length_prefixed_domain_type_and_payload() -> None:
    envelope = Envelope.seal(ED25519, "libp2p-peer-record", b"\x03\x01", b"hello")
    # RFC 0002: uvarint(len) before each of domain, payload type and payload.
    buffer = b"\x12libp2p-peer-record" + b"\x02\x03\x01" + b"\x05hello"
    assert ED25519.public_key.verify(buffer, envelope.signature)
    # Ed25519 is deterministic, so the signature is exactly the signature of that buffer.
    assert envelope.signature == ED25519.sign(buffer)


def test_wire_format_fields() -> None:
    envelope = Envelope.seal(ED25519, "d", b"\x03\x01", b"payload")
    message = envelope_pb2.Envelope.FromString(envelope.to_bytes())
    assert message.public_key == bytes.fromhex(vectors.ED25519_PUBLIC_HEX)
    assert message.payload_type == b"\x03\x01"
    assert message.payload == b"payload"
    assert message.signature == envelope.signature
    # Field numbers 1, 2, 3 and 5 (signature), in order.
    raw = envelope.to_bytes()
    assert raw[0] == 0x0A
    assert raw.index(b"\x2a\x40") > raw.index(b"\x1a\x07payload")


@pytest.mark.parametrize("key", [ED25519, SECP256K1], ids=["ed25519", "secp256k1"])
def test_seal_and_open_round_trip(key: PrivateKey) -> None:
    envelope = Envelope.seal(key, "my-domain", b"/my/type", b"\x00\x01payload")
    opened = Envelope.from_bytes(envelope.to_bytes(), "my-domain")
    assert opened == envelope
    assert opened.signer == PeerId.from_public_key(key.public_key)
    assert opened.verify("my-domain")


def test_wrong_domain_is_rejected() -> None:
    data = Envelope.seal(ED25519, "domain-a", b"t", b"p").to_bytes()
    with pytest.raises(InvalidSignatureError):
        Envelope.from_bytes(data, "domain-b")


@pytest.mark.parametrize("field", ["payload_type", "payload", "signature"])
def test_tampering_is_detected(field: str) -> None:
    envelope = Envelope.seal(ED25519, "d", b"type", b"payload")
    original: bytes = getattr(envelope, field)
    flipped = original[:-1] + bytes([original[-1] ^ 1])
    if field == "payload_type":
        tampered = attrs.evolve(envelope, payload_type=flipped)
    elif field == "payload":
        tampered = attrs.evolve(envelope, payload=flipped)
    else:
        tampered = attrs.evolve(envelope, signature=flipped)
    with pytest.raises(InvalidSignatureError):
        Envelope.from_bytes(tampered.to_bytes(), "d")


def test_swapped_public_key_is_detected() -> None:
    envelope = Envelope.seal(ED25519, "d", b"type", b"payload")
    forged = attrs.evolve(envelope, public_key=SECP256K1.public_key)
    with pytest.raises(InvalidSignatureError):
        Envelope.from_bytes(forged.to_bytes(), "d")


def test_malformed_envelopes() -> None:
    with pytest.raises(IdentityError, match="no public key"):
        Envelope.from_bytes(b"", "d")
    with pytest.raises(InvalidKeyError):
        Envelope.from_bytes(envelope_pb2.Envelope(public_key=b"\x08\x01").SerializeToString(), "d")
    with pytest.raises(IdentityError, match="malformed"):
        Envelope.from_bytes(b"\x0a\x05ab", "d")
    with pytest.raises(IdentityError, match="exceeds"):
        Envelope.from_bytes(bytes(MAX_ENVELOPE_SIZE + 1), "d")


@given(st.binary(max_size=300))
def test_envelope_garbage_only_raises_identity_errors(data: bytes) -> None:
    try:
        Envelope.from_bytes(data, "d")
    except IdentityError:
        pass


@given(st.binary(max_size=300))
def test_valid_key_with_garbage_rest_only_raises_identity_errors(rest: bytes) -> None:
    key = bytes.fromhex(vectors.ED25519_PUBLIC_HEX)
    try:
        Envelope.from_bytes(b"\x0a" + bytes([len(key)]) + key + rest, "d")
    except IdentityError:
        pass


def test_peer_record_wire_format() -> None:
    peer = PeerId.from_public_key(ED25519.public_key)
    record = PeerRecord(peer, 7, ADDRS[:1])
    expected = (
        b"\x0a\x26"
        + peer.to_bytes()
        + b"\x10\x07"
        + b"\x1a\x0a\x0a\x08"
        + Multiaddr("/ip4/127.0.0.1/tcp/4001").to_bytes()
    )
    assert record.to_bytes() == expected
    assert PeerRecord.from_bytes(expected) == record


def test_peer_record_seal_and_open() -> None:
    identity = Identity.from_private_key(ED25519)
    record = PeerRecord(identity.peer_id, 1_700_000_000, list(ADDRS))
    assert record.addrs == ADDRS
    envelope = record.seal(identity.private_key)
    assert envelope.payload_type == PeerRecord.PAYLOAD_TYPE == b"\x03\x01"
    opened, opened_envelope = PeerRecord.from_envelope_bytes(envelope.to_bytes())
    assert opened == record
    assert opened_envelope == envelope
    # The record is signed for its own domain, not any other.
    with pytest.raises(InvalidSignatureError):
        Envelope.from_bytes(envelope.to_bytes(), "libp2p-routing-state")


def test_peer_record_refuses_to_seal_with_another_key() -> None:
    record = PeerRecord(PeerId.from_public_key(ED25519.public_key), 1, ADDRS)
    with pytest.raises(IdentityError):
        record.seal(SECP256K1)


def test_peer_record_signed_by_another_peer_is_rejected() -> None:
    victim = PeerId.from_public_key(ED25519.public_key)
    forged = PeerRecord(victim, 99, ADDRS).to_bytes()
    # A valid signature by the attacker's own key over a record naming the victim.
    envelope = Envelope.seal(SECP256K1, PeerRecord.DOMAIN, PeerRecord.PAYLOAD_TYPE, forged)
    with pytest.raises(IdentityError, match="signed by another key"):
        PeerRecord.from_envelope_bytes(envelope.to_bytes())


def test_peer_record_with_wrong_payload_type_is_rejected() -> None:
    record = PeerRecord(PeerId.from_public_key(ED25519.public_key), 1, ADDRS)
    envelope = Envelope.seal(ED25519, PeerRecord.DOMAIN, b"/other", record.to_bytes())
    with pytest.raises(IdentityError, match="payload type"):
        PeerRecord.from_envelope_bytes(envelope.to_bytes())


def test_peer_record_seq_must_fit_uint64() -> None:
    peer = PeerId.from_public_key(ED25519.public_key)
    with pytest.raises(ValueError):
        PeerRecord(peer, -1, ())
    with pytest.raises(ValueError):
        PeerRecord(peer, 1 << 64, ())
    top = (1 << 64) - 1
    assert PeerRecord.from_bytes(PeerRecord(peer, top, ()).to_bytes()).seq == top


def test_peer_record_invalid_contents() -> None:
    with pytest.raises(IdentityError, match="peer ID"):
        PeerRecord.from_bytes(b"\x0a\x02\x12\x00")
    peer = PeerId.from_public_key(ED25519.public_key).to_bytes()
    bad_addr = b"\x0a\x26" + peer + b"\x1a\x04\x0a\x02\xff\xff"
    with pytest.raises(IdentityError, match="address"):
        PeerRecord.from_bytes(bad_addr)


def test_rsa_signed_peer_record() -> None:
    key = PrivateKey.from_protobuf(bytes.fromhex(vectors.RSA_PRIVATE_HEX))
    assert key.key_type is KeyType.RSA
    record = PeerRecord(PeerId.from_public_key(key.public_key), 3, ADDRS)
    opened, _ = PeerRecord.from_envelope_bytes(record.seal(key).to_bytes())
    assert opened == record


@given(st.binary(max_size=200))
def test_peer_record_garbage_only_raises_identity_errors(data: bytes) -> None:
    try:
        PeerRecord.from_bytes(data)
    except IdentityError:
        pass


@given(st.lists(st.binary(max_size=24), max_size=4), st.integers(0, 2**64 - 1))
def test_peer_record_garbage_addresses_only_raise_identity_errors(
    addrs: list[bytes], seq: int
) -> None:
    from p2pstack.identity.pb import peer_record_pb2

    message = peer_record_pb2.PeerRecord(
        peer_id=PeerId.from_public_key(ED25519.public_key).to_bytes(), seq=seq
    )
    for addr in addrs:
        message.addresses.add(multiaddr=addr)
    try:
        record = PeerRecord.from_bytes(message.SerializeToString())
    except IdentityError:
        return
    assert record.seq == seq


@given(st.binary(max_size=300))
def test_from_envelope_bytes_garbage_only_raises_identity_errors(data: bytes) -> None:
    try:
        PeerRecord.from_envelope_bytes(data)
    except IdentityError:
        pass
