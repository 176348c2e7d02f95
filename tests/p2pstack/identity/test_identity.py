"""Identity: derived IDs, deterministic generation and key files."""

from __future__ import annotations

import os
import random
import stat
import sys
from pathlib import Path

import pytest

from p2pstack.errors import IdentityError
from p2pstack.identity import KEY_FILE_MODE, Identity, KeyType, PeerId, PrivateKey
from tests.p2pstack.identity import vectors


def test_identity_derives_public_key_and_peer_id() -> None:
    key = PrivateKey.from_protobuf(bytes.fromhex(vectors.ED25519_PRIVATE_HEX))
    identity = Identity.from_private_key(key)
    assert identity.public_key == key.public_key
    assert identity.peer_id == PeerId.from_public_key(key.public_key)
    assert identity.peer_id is identity.peer_id  # computed once
    assert identity == Identity(key)
    assert str(identity.peer_id) in repr(identity)
    assert key.to_bytes()[:32].hex() not in repr(identity)


def test_generate_defaults_to_ed25519() -> None:
    identity = Identity.generate()
    assert identity.private_key.key_type is KeyType.ED25519
    assert str(identity.peer_id).startswith("12D3KooW")


def test_generate_with_seeded_randomness_is_reproducible() -> None:
    first = Identity.generate(random_bytes=random.Random(42).randbytes)
    second = Identity.generate(random_bytes=random.Random(42).randbytes)
    assert first.peer_id == second.peer_id
    k1 = Identity.generate(KeyType.SECP256K1, random_bytes=random.Random(42).randbytes)
    assert k1.peer_id != first.peer_id
    assert str(k1.peer_id).startswith("16Uiu2")


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    identity = Identity.generate()
    path = tmp_path / "node.key"
    identity.save(path)
    assert path.read_bytes() == identity.private_key.to_protobuf()
    loaded = Identity.load(path)
    assert loaded == identity
    assert loaded.peer_id == identity.peer_id
    assert sorted(os.listdir(tmp_path)) == ["node.key"]  # no temporary file left behind


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_key_file_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    old_umask = os.umask(0)  # the file must be 0o600 even under a permissive umask
    try:
        Identity.generate().save(str(path))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == KEY_FILE_MODE == 0o600


def test_save_refuses_to_overwrite_without_flag(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    first = Identity.generate()
    first.save(path)
    with pytest.raises(FileExistsError):
        Identity.generate().save(path)
    assert Identity.load(path) == first
    assert sorted(os.listdir(tmp_path)) == ["node.key"]
    second = Identity.generate()
    second.save(path, overwrite=True)
    assert Identity.load(path) == second


def test_load_accepts_key_files_from_other_implementations(tmp_path: Path) -> None:
    path = tmp_path / "go.key"
    path.write_bytes(bytes.fromhex(vectors.ECDSA_PRIVATE_HEX))
    assert Identity.load(path).private_key.key_type is KeyType.ECDSA


def test_load_missing_file_raises_identity_error(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="cannot read key file"):
        Identity.load(tmp_path / "absent.key")


@pytest.mark.parametrize(
    "content", [b"", b"not a key", b"\x08\x01\x12\x03abc", b"\x08\x01\x12" + bytes(70000)]
)
def test_load_corrupt_file_raises_identity_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(IdentityError, match="not a valid libp2p key"):
        Identity.load(path)
