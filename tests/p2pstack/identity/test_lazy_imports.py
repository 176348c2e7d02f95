"""Import-time work of the identity package: lazy exports, the hand-written key encoding and
its fast decoding path agree with the generated protobuf module byte for byte."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import p2pstack.identity
from p2pstack.errors import InvalidKeyError
from p2pstack.identity import KeyType, PrivateKey, PublicKey
from p2pstack.identity._keys import _decode_canonical, _decode_key_message, _encode_key_message
from p2pstack.identity.pb import keys_pb2
from tests.p2pstack.identity import vectors

SPEC_KEYS = [
    vectors.ED25519_PRIVATE_HEX,
    vectors.SECP256K1_PRIVATE_HEX,
    vectors.ECDSA_PRIVATE_HEX,
    vectors.RSA_PRIVATE_HEX,
]


def _generated(message: keys_pb2.PublicKey | keys_pb2.PrivateKey, kt: int, data: bytes) -> bytes:
    message.Type = keys_pb2.KeyType.ValueType(kt)
    message.Data = data
    return message.SerializeToString(deterministic=True)


@pytest.mark.parametrize("private_hex", SPEC_KEYS)
def test_spec_keys_encode_as_the_generated_module_does(private_hex: str) -> None:
    key = PrivateKey.from_protobuf(bytes.fromhex(private_hex))
    public = key.public_key
    kt = int(key.key_type)
    assert key.to_protobuf() == _generated(keys_pb2.PrivateKey(), kt, key.to_bytes())
    assert public.to_protobuf() == _generated(keys_pb2.PublicKey(), kt, public.to_bytes())
    assert key.to_protobuf() == bytes.fromhex(private_hex)


@settings(max_examples=200)
@given(st.sampled_from(list(KeyType)), st.binary(max_size=700))
def test_hand_encoding_matches_generated_module(key_type: KeyType, data: bytes) -> None:
    ours = _encode_key_message(key_type, data)
    assert ours == _generated(keys_pb2.PublicKey(), int(key_type), data)
    assert ours == _generated(keys_pb2.PrivateKey(), int(key_type), data)
    assert _decode_canonical(ours) == (key_type, data)


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_fast_path_decodes_as_the_generated_parser(data: bytes) -> None:
    fast = _decode_canonical(data)
    if fast is None:
        return
    message = keys_pb2.PublicKey()
    message.ParseFromString(data)
    assert (int(message.Type), message.Data) == (int(fast[0]), fast[1])


def test_non_canonical_messages_still_go_through_the_parser() -> None:
    # Data before Type, and a non-minimal length varint: valid protobuf, not the canonical form.
    swapped = b"\x12\x02ab\x08\x01"
    padded = b"\x08\x01\x12\x82\x00ab"
    for data in (swapped, padded):
        assert _decode_canonical(data) is None
        assert _decode_key_message(False, data, 100) == (KeyType.ED25519, b"ab")
    with pytest.raises(InvalidKeyError, match="lacks its Type"):
        _decode_key_message(False, b"\x08\x07\x12\x00", 100)
    with pytest.raises(InvalidKeyError, match="over the"):
        _decode_key_message(False, _encode_key_message(KeyType.RSA, bytes(200)), 100)


def test_public_key_round_trip_uses_fast_path() -> None:
    public = PrivateKey.from_protobuf(bytes.fromhex(vectors.ED25519_PRIVATE_HEX)).public_key
    assert PublicKey.from_protobuf(public.to_protobuf()) == public


def test_lazy_exports_are_complete_and_cached() -> None:
    for name in p2pstack.identity.__all__:
        assert getattr(p2pstack.identity, name) is not None
    assert set(p2pstack.identity.__all__) <= set(dir(p2pstack.identity))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = p2pstack.identity.Nope  # type: ignore[attr-defined]


def test_peer_id_needs_no_protobuf_multiaddr_or_key_serialization() -> None:
    code = (
        "import sys\n"
        "from p2pstack.identity import Identity\n"
        "identity = Identity.generate()\n"
        "assert str(identity.peer_id).startswith('12D3KooW')\n"
        "heavy = ('google.protobuf', 'multiaddr', 'anyio',\n"
        "         'cryptography.hazmat.primitives.serialization')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
