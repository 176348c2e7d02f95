"""Peer IDs: derivation from keys, text forms, and parser robustness."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pstack.errors import InvalidPeerIdError
from p2pstack.identity import (
    Ed25519PrivateKey,
    KeyType,
    PeerId,
    PrivateKey,
    PublicKey,
    generate_private_key,
)
from tests.p2pstack.identity import vectors

# One Ed25519 peer ID in every multibase the IPFS tooling writes (ipfs gateway/URL fixtures).
MULTIBASE_FORMS = [
    "f01720024080112201b002d73dc3db78649e1e3717f3dd66edd066afe2c1f861d4b1a638a155a1333",
    "bafzaajaiaejcagyafvz5ypnxqze6dy3rp465m3w5azvp4la7qyouwgtdrikvuezt",
    "k51qzi5uqu5dgutdk6i1ynyzgkqngpha5xpgia3a5qqp4jsh0u4csozksxel2r",
    "K51QZI5UQU5DGUTDK6I1YNYZGKQNGPHA5XPGIA3A5QQP4JSH0U4CSOZKSXEL2R",
    "z5AanNVJCxnGenRBUBXjJqiZDFg5LaHRyPMMsmCYR57bxbBb8sgNYPc",
]
MULTIBASE_PEER_HEX = "0024080112201b002d73dc3db78649e1e3717f3dd66edd066afe2c1f861d4b1a638a155a1333"


def test_ed25519_spec_key_inlines_with_identity_multihash() -> None:
    public = PublicKey.from_protobuf(bytes.fromhex(vectors.ED25519_PUBLIC_HEX))
    peer = PeerId.from_public_key(public)
    # 0x00 identity code, 0x24 = 36 bytes of PublicKey protobuf.
    assert peer.to_bytes() == b"\x00\x24" + bytes.fromhex(vectors.ED25519_PUBLIC_HEX)
    assert str(peer).startswith("12D3KooW")
    assert peer.extract_public_key() == public
    assert peer.matches(public)


def test_secp256k1_spec_key_inlines_with_identity_multihash() -> None:
    public = PublicKey.from_protobuf(bytes.fromhex(vectors.SECP256K1_PUBLIC_HEX))
    peer = PeerId.from_public_key(public)
    assert peer.to_bytes() == b"\x00\x25" + bytes.fromhex(vectors.SECP256K1_PUBLIC_HEX)
    assert str(peer).startswith("16Uiu2")
    assert peer.extract_public_key() == public


@pytest.mark.parametrize("public_hex", [vectors.ECDSA_PUBLIC_HEX, vectors.RSA_PUBLIC_HEX])
def test_long_keys_hash_with_sha256(public_hex: str) -> None:
    public = PublicKey.from_protobuf(bytes.fromhex(public_hex))
    peer = PeerId.from_public_key(public)
    assert peer.to_bytes()[:2] == b"\x12\x20"
    assert str(peer).startswith("Qm")
    assert peer.extract_public_key() is None
    assert peer.matches(public)


def test_js_generated_ed25519_key_gives_js_peer_id() -> None:
    key = PrivateKey.from_protobuf(base64.b64decode(vectors.JS_ED25519_PRIVATE_B64))
    assert str(PeerId.from_public_key(key.public_key)) == vectors.JS_ED25519_PEER_ID


def test_go_generated_rsa_key_gives_go_peer_id() -> None:
    raw = base64.b64decode(vectors.GO_RSA_PRIVATE_B64)
    key = PrivateKey.from_protobuf(raw)
    assert key.key_type is KeyType.RSA
    assert key.to_protobuf() == raw
    assert PeerId.from_public_key(key.public_key).to_base58() == vectors.GO_RSA_PEER_ID


def test_spec_cid_and_base58_examples_are_the_same_peer() -> None:
    from_cid = PeerId.from_string(vectors.SPEC_SHA256_PEER_CID)
    from_b58 = PeerId.from_string(vectors.SPEC_SHA256_PEER_ID)
    assert from_cid == from_b58
    assert from_b58.to_cid() == vectors.SPEC_SHA256_PEER_CID
    assert from_cid.to_base58() == vectors.SPEC_SHA256_PEER_ID


def test_spec_ed25519_example_parses_and_exposes_key() -> None:
    peer = PeerId.from_string(vectors.SPEC_ED25519_PEER_ID)
    key = peer.extract_public_key()
    assert key is not None
    assert key.key_type is KeyType.ED25519
    assert peer.matches(key)
    assert peer.to_cid().startswith("bafz")
    assert PeerId.from_string(peer.to_cid()) == peer


@pytest.mark.parametrize("text", MULTIBASE_FORMS)
def test_every_multibase_form_parses(text: str) -> None:
    peer = PeerId.from_string(text)
    assert peer.to_bytes().hex() == MULTIBASE_PEER_HEX
    assert peer.to_cid() == MULTIBASE_FORMS[1]


def test_equality_ordering_hash_and_repr() -> None:
    a = PeerId.from_string(vectors.SPEC_ED25519_PEER_ID)
    b = PeerId.from_bytes(a.to_bytes())
    c = PeerId.from_string(vectors.SPEC_SHA256_PEER_ID)
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b, c}) == 2
    assert sorted([c, a]) == sorted([a, c])
    assert (a < c) == (a.to_bytes() < c.to_bytes())
    assert repr(a) == f"PeerId({vectors.SPEC_ED25519_PEER_ID!r})"
    with pytest.raises(AttributeError):
        a.multihash = b""  # type: ignore[misc]  # frozen: assignment must fail


def test_matches_rejects_other_keys() -> None:
    peer = PeerId.from_string(vectors.SPEC_ED25519_PEER_ID)
    other = PublicKey.from_protobuf(bytes.fromhex(vectors.ED25519_PUBLIC_HEX))
    assert not peer.matches(other)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "12D3KooW",  # truncated
        "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5",  # one character short
        "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N0",  # '0' is not base58
        "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",  # dag-pb CID, not libp2p-key
        "mAXIAJAgBEiAbAC1z3D23hknh43F/PdZu3QZq/iwfhh1LGmOKFVoTMw",  # base64: unsupported
        "b" + "a" * 200,  # too long
        "é12D3",
    ],
)
def test_invalid_text_rejected(text: str) -> None:
    with pytest.raises(InvalidPeerIdError):
        PeerId.from_string(text)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x12\x20" + bytes(31),  # truncated sha256
        b"\x12\x10" + bytes(16),  # sha256 of the wrong size
        b"\x13\x20" + bytes(32),  # sha2-512 code: not a peer ID hash
        b"\x00\x04abcd",  # identity multihash of something that is not a key
        b"\x00\x2b" + bytes(43),  # identity multihash over the 42-byte limit
        b"\x12\x20" + bytes(33),  # trailing byte
    ],
)
def test_invalid_bytes_rejected(data: bytes) -> None:
    with pytest.raises(InvalidPeerIdError):
        PeerId.from_bytes(data)


@given(st.binary(min_size=32, max_size=32))
def test_round_trip_through_every_form(seed: bytes) -> None:
    peer = PeerId.from_public_key(Ed25519PrivateKey.from_seed(seed).public_key)
    assert PeerId.from_bytes(peer.to_bytes()) == peer
    assert PeerId.from_string(peer.to_base58()) == peer
    assert PeerId.from_string(peer.to_cid()) == peer
    assert PeerId.from_string(peer.to_cid().upper()) == peer


def test_secp256k1_and_ecdsa_round_trip() -> None:
    for key_type in (KeyType.SECP256K1, KeyType.ECDSA):
        key = generate_private_key(key_type)
        peer = PeerId.from_public_key(key.public_key)
        assert PeerId.from_string(str(peer)) == peer
        assert PeerId.from_string(peer.to_cid()) == peer


@given(st.binary(max_size=60))
def test_from_bytes_garbage_only_raises_invalid_peer_id(data: bytes) -> None:
    try:
        peer = PeerId.from_bytes(data)
    except InvalidPeerIdError:
        return
    assert peer.to_bytes() == data


@given(st.text(max_size=140))
def test_from_string_garbage_only_raises_invalid_peer_id(text: str) -> None:
    try:
        PeerId.from_string(text)
    except InvalidPeerIdError:
        pass


@given(
    st.sampled_from(["1", "Qm", "b", "B", "k", "K", "z", "f", "F", "bafz", "k51"]),
    st.text(alphabet="0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ", max_size=70),
)
def test_plausible_prefix_garbage_only_raises_invalid_peer_id(prefix: str, body: str) -> None:
    try:
        PeerId.from_string(prefix + body)
    except InvalidPeerIdError:
        pass
