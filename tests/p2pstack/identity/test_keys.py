"""Keys: spec test vectors, signing rules, generation and parser robustness."""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pstack.errors import InvalidKeyError
from p2pstack.identity import (
    EcdsaPrivateKey,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    KeyType,
    PrivateKey,
    PublicKey,
    RsaPrivateKey,
    Secp256k1PrivateKey,
    Secp256k1PublicKey,
    generate_private_key,
)
from p2pstack.varint import encode_uvarint
from tests.p2pstack.identity import vectors

SPEC_VECTORS = [
    (KeyType.ED25519, vectors.ED25519_PRIVATE_HEX, vectors.ED25519_PUBLIC_HEX),
    (KeyType.SECP256K1, vectors.SECP256K1_PRIVATE_HEX, vectors.SECP256K1_PUBLIC_HEX),
    (KeyType.ECDSA, vectors.ECDSA_PRIVATE_HEX, vectors.ECDSA_PUBLIC_HEX),
    (KeyType.RSA, vectors.RSA_PRIVATE_HEX, vectors.RSA_PUBLIC_HEX),
]
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest.fixture(scope="module")
def spec_keys() -> dict[KeyType, PrivateKey]:
    return {kt: PrivateKey.from_protobuf(bytes.fromhex(priv)) for kt, priv, _ in SPEC_VECTORS}


@pytest.mark.parametrize(("key_type", "private_hex", "public_hex"), SPEC_VECTORS)
def test_spec_vector_round_trips_byte_for_byte(
    key_type: KeyType, private_hex: str, public_hex: str
) -> None:
    private = PrivateKey.from_protobuf(bytes.fromhex(private_hex))
    public = PublicKey.from_protobuf(bytes.fromhex(public_hex))
    assert private.key_type is key_type
    assert public.key_type is key_type
    # The spec: implementations SHOULD produce the given public key from the private key.
    assert private.public_key == public
    assert private.to_protobuf() == bytes.fromhex(private_hex)
    assert public.to_protobuf() == bytes.fromhex(public_hex)


def test_spec_vector_data_fields() -> None:
    ed = PublicKey.from_protobuf(bytes.fromhex(vectors.ED25519_PUBLIC_HEX))
    assert ed.to_bytes() == bytes.fromhex(vectors.ED25519_PUBLIC_HEX)[4:]
    assert len(ed.to_bytes()) == 32
    k1 = PublicKey.from_protobuf(bytes.fromhex(vectors.SECP256K1_PUBLIC_HEX))
    assert k1.to_bytes()[0] in (2, 3)
    assert len(k1.to_bytes()) == 33
    # ECDSA/RSA public data are DER SubjectPublicKeyInfo: a SEQUENCE.
    ecdsa = PublicKey.from_protobuf(bytes.fromhex(vectors.ECDSA_PUBLIC_HEX))
    assert ecdsa.to_bytes()[:2] == b"\x30\x59"


@pytest.mark.parametrize("key_type", list(KeyType))
def test_sign_verify_and_tamper(spec_keys: dict[KeyType, PrivateKey], key_type: KeyType) -> None:
    key = spec_keys[key_type]
    signature = key.sign(b"libp2p")
    assert key.public_key.verify(b"libp2p", signature)
    assert not key.public_key.verify(b"libp2q", signature)
    tampered = bytearray(signature)
    tampered[len(tampered) // 2] ^= 0x01
    assert not key.public_key.verify(b"libp2p", bytes(tampered))
    assert not key.public_key.verify(b"libp2p", b"")
    other = spec_keys[KeyType.ED25519 if key_type is not KeyType.ED25519 else KeyType.SECP256K1]
    assert not other.public_key.verify(b"libp2p", signature)


def test_ed25519_rfc8032_known_answer() -> None:
    # RFC 8032 section 7.1, TEST 1 (empty message).
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    key = Ed25519PrivateKey.from_seed(seed)
    assert key.public_key.to_bytes() == bytes.fromhex(
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )
    assert key.sign(b"") == bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555f"
        "b8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert key.to_bytes() == seed + key.public_key.to_bytes()


def test_ed25519_legacy_96_byte_private_key() -> None:
    key = PrivateKey.from_protobuf(bytes.fromhex(vectors.ED25519_PRIVATE_HEX))
    data = key.to_bytes()
    legacy = Ed25519PrivateKey.from_bytes(data + data[32:])
    assert legacy == key
    with pytest.raises(InvalidKeyError):
        Ed25519PrivateKey.from_bytes(data + bytes(32))
    with pytest.raises(InvalidKeyError):
        # A public half that does not belong to the seed.
        Ed25519PrivateKey.from_bytes(data[:32] + bytes(32))


def test_secp256k1_signatures_are_low_s_der(spec_keys: dict[KeyType, PrivateKey]) -> None:
    key = spec_keys[KeyType.SECP256K1]
    for i in range(32):
        signature = key.sign(i.to_bytes(2, "big"))
        assert signature[0] == 0x30  # DER SEQUENCE
        _r, s = decode_dss_signature(signature)
        assert s <= SECP256K1_N // 2


def test_secp256k1_accepts_uncompressed_point_and_reencodes_compressed() -> None:
    public = PublicKey.from_protobuf(bytes.fromhex(vectors.SECP256K1_PUBLIC_HEX))
    assert isinstance(public, Secp256k1PublicKey)
    point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), public.to_bytes())
    uncompressed = point.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert len(uncompressed) == 65
    assert Secp256k1PublicKey.from_bytes(uncompressed) == public


def test_secp256k1_private_scalar_range() -> None:
    with pytest.raises(InvalidKeyError):
        Secp256k1PrivateKey.from_bytes(bytes(32))
    with pytest.raises(InvalidKeyError):
        Secp256k1PrivateKey.from_bytes(SECP256K1_N.to_bytes(32, "big"))
    assert Secp256k1PrivateKey.from_bytes((SECP256K1_N - 1).to_bytes(32, "big"))


@pytest.mark.parametrize("key_type", [KeyType.ED25519, KeyType.SECP256K1, KeyType.ECDSA])
def test_generate_round_trips(key_type: KeyType) -> None:
    key = generate_private_key(key_type)
    assert key.key_type is key_type
    assert PrivateKey.from_protobuf(key.to_protobuf()) == key
    assert PublicKey.from_protobuf(key.public_key.to_protobuf()) == key.public_key
    assert key.public_key.verify(b"x", key.sign(b"x"))


def test_generate_rsa_round_trips() -> None:
    key = generate_private_key(KeyType.RSA)
    assert isinstance(key, RsaPrivateKey)
    assert key.to_bytes()[:1] == b"\x30"
    assert PrivateKey.from_protobuf(key.to_protobuf()) == key
    assert key.public_key.verify(b"x", key.sign(b"x"))


@pytest.mark.parametrize("key_type", [KeyType.ED25519, KeyType.SECP256K1])
def test_generate_with_seeded_randomness_is_deterministic(key_type: KeyType) -> None:
    keys = [
        generate_private_key(key_type, random_bytes=random.Random(7).randbytes) for _ in range(2)
    ]
    assert keys[0] == keys[1]
    assert generate_private_key(key_type, random_bytes=random.Random(8).randbytes) != keys[0]


def test_secp256k1_generation_redraws_out_of_range_scalars() -> None:
    draws = iter([bytes(32), b"\xff" * 32, (5).to_bytes(32, "big")])
    key = generate_private_key(KeyType.SECP256K1, random_bytes=lambda _n: next(draws))
    assert key.to_bytes() == (5).to_bytes(32, "big")


@pytest.mark.parametrize("key_type", [KeyType.RSA, KeyType.ECDSA])
def test_random_bytes_refused_for_rsa_and_ecdsa(key_type: KeyType) -> None:
    with pytest.raises(ValueError, match="random_bytes"):
        generate_private_key(key_type, random_bytes=random.Random(1).randbytes)


def test_short_random_bytes_refused() -> None:
    with pytest.raises(ValueError):
        generate_private_key(random_bytes=lambda n: bytes(n - 1))


def test_equality_hash_and_repr(spec_keys: dict[KeyType, PrivateKey]) -> None:
    ed = spec_keys[KeyType.ED25519]
    again = PrivateKey.from_protobuf(ed.to_protobuf())
    assert ed == again
    assert hash(ed) == hash(again)
    assert ed != spec_keys[KeyType.SECP256K1]
    assert len({ed.public_key, again.public_key, spec_keys[KeyType.ECDSA].public_key}) == 2
    # The private key's repr must not leak the secret seed.
    seed_hex = ed.to_bytes()[:32].hex()
    assert seed_hex not in repr(ed)
    assert isinstance(ed.public_key, Ed25519PublicKey)


def test_rejects_wrong_type_tag_for_data() -> None:
    # An Ed25519 key's 32 bytes labelled as secp256k1 is not a valid key.
    data = bytearray(bytes.fromhex(vectors.ED25519_PUBLIC_HEX))
    data[1] = KeyType.SECP256K1
    with pytest.raises(InvalidKeyError):
        PublicKey.from_protobuf(bytes(data))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x08\x01",  # no Data
        b"\x12\x00",  # no Type
        b"\x08\x07\x12\x20" + bytes(32),  # unknown key type
        b"\x08\x01\x12\x21" + bytes(32),  # truncated
        b"\x08\x03\x12\x03abc",  # ECDSA data that is not DER
        b"\x08\x00\x12\x03abc",  # RSA data that is not DER
    ],
)
def test_malformed_public_keys_raise_invalid_key(data: bytes) -> None:
    with pytest.raises(InvalidKeyError):
        PublicKey.from_protobuf(data)


def test_oversized_key_protobufs_rejected_before_parsing() -> None:
    with pytest.raises(InvalidKeyError, match="limit"):
        PublicKey.from_protobuf(b"\x08\x00\x12" + bytes(5000))
    with pytest.raises(InvalidKeyError, match="limit"):
        PrivateKey.from_protobuf(b"\x08\x00\x12" + bytes(20000))


def test_ecdsa_rejects_non_ec_der(spec_keys: dict[KeyType, PrivateKey]) -> None:
    rsa_spki = spec_keys[KeyType.RSA].public_key.to_bytes()
    with pytest.raises(InvalidKeyError):
        PublicKey.from_protobuf(b"\x08\x03\x12" + encode_uvarint(len(rsa_spki)) + rsa_spki)
    with pytest.raises(InvalidKeyError):
        EcdsaPrivateKey.from_bytes(spec_keys[KeyType.RSA].to_bytes())


@given(st.binary(max_size=200))
def test_public_key_garbage_only_raises_invalid_key(data: bytes) -> None:
    try:
        key = PublicKey.from_protobuf(data)
    except InvalidKeyError:
        return
    assert PublicKey.from_protobuf(key.to_protobuf()) == key


@given(st.binary(max_size=200))
def test_private_key_garbage_only_raises_invalid_key(data: bytes) -> None:
    try:
        key = PrivateKey.from_protobuf(data)
    except InvalidKeyError:
        return
    assert PrivateKey.from_protobuf(key.to_protobuf()) == key


@given(st.sampled_from(list(KeyType)), st.binary(max_size=120))
def test_typed_garbage_data_only_raises_invalid_key(key_type: KeyType, data: bytes) -> None:
    message = bytes([0x08, key_type, 0x12, len(data)]) + data
    for parse in (PublicKey.from_protobuf, PrivateKey.from_protobuf):
        try:
            parse(message)
        except InvalidKeyError:
            pass


@settings(max_examples=50)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=64))
def test_ed25519_round_trip_property(seed: bytes, message: bytes) -> None:
    key = Ed25519PrivateKey.from_seed(seed)
    assert PrivateKey.from_protobuf(key.to_protobuf()) == key
    public = PublicKey.from_protobuf(key.public_key.to_protobuf())
    assert public.verify(message, key.sign(message))


@given(st.binary(max_size=100))
def test_verify_never_raises_on_garbage_signatures(signature: bytes) -> None:
    for _kt, private_hex, _pub in SPEC_VECTORS[:3]:
        key = PrivateKey.from_protobuf(bytes.fromhex(private_hex))
        assert key.public_key.verify(b"m", signature) is False
