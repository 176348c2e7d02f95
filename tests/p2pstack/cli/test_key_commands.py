"""``p2pstack key generate`` and ``p2pstack id`` (README, "The command line")."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from p2pstack.identity import Identity, PeerId
from tests.p2pstack.cli.runner import assert_one_line_error, run_cli

# Peer ID text by key type: keys of at most 42 bytes are inlined (identity multihash), so
# Ed25519 IDs start 12D3KooW and secp256k1 IDs 16Uiu2; ECDSA and RSA keys are hashed (Qm...).
PREFIXES = {"ed25519": "12D3KooW", "secp256k1": "16Uiu2", "ecdsa": "Qm", "rsa": "Qm"}


def _generate(path: Path, *options: str) -> str:
    result = run_cli("key", "generate", str(path), *options)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    return lines[0]


@pytest.mark.parametrize("key_type", sorted(PREFIXES))
def test_generate_each_type_and_id_prints_the_same(tmp_path: Path, key_type: str) -> None:
    path = tmp_path / f"{key_type}.key"
    printed = _generate(path, "--type", key_type)
    assert printed.startswith(PREFIXES[key_type]), printed
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The file holds the key whose peer ID was printed...
    assert str(Identity.load(path).peer_id) == printed
    assert str(PeerId.from_string(printed)) == printed
    # ...and ``id --key`` reads it back to the same ID.
    shown = run_cli("id", "--key", str(path))
    assert (shown.returncode, shown.stdout, shown.stderr) == (0, printed + "\n", "")


def test_generate_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    first = _generate(path)
    before = path.read_bytes()
    line = assert_one_line_error(run_cli("key", "generate", str(path)), str(path), "--force")
    assert "exists" in line
    assert path.read_bytes() == before
    second = _generate(path, "--force")
    assert second != first
    assert path.read_bytes() != before
    assert str(Identity.load(path).peer_id) == second
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_id_without_key_prints_a_fresh_ed25519_id() -> None:
    result = run_cli("id")
    assert result.returncode == 0, result.stderr
    peer_id = result.stdout.strip()
    assert peer_id.startswith("12D3KooW")
    assert str(PeerId.from_string(peer_id)) == peer_id


def test_id_with_missing_key_file() -> None:
    assert_one_line_error(run_cli("id", "--key", "/nonexistent/p2pstack.key"), "/nonexistent")


def test_id_with_a_file_that_is_not_a_key(tmp_path: Path) -> None:
    path = tmp_path / "junk.key"
    path.write_bytes(b"not a key\n")
    path.chmod(0o600)
    assert_one_line_error(run_cli("id", "--key", str(path)), str(path))


def test_generate_into_a_missing_directory_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "node.key"
    assert_one_line_error(run_cli("key", "generate", str(path)), str(path))
