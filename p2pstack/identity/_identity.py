"""A node's identity (key pair + peer ID) and its key file, which holds the serialized
``PrivateKey`` protobuf as go and js libp2p store it
(https://github.com/libp2p/specs/blob/master/peer-ids/peer-ids.md#keys).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable

import attrs

from p2pstack.errors import IdentityError, InvalidKeyError
from p2pstack.identity._keys import MAX_PRIVATE_KEY_PROTOBUF_SIZE, KeyType, PrivateKey, PublicKey
from p2pstack.identity._keytypes import generate_private_key
from p2pstack.identity._peer_id import PeerId

__all__ = ["KEY_FILE_MODE", "Identity"]

#: Permissions of a newly written key file: owner read/write only.
KEY_FILE_MODE = 0o600


def _peer_id_of(identity: Identity) -> PeerId:
    return PeerId.from_public_key(identity.private_key.public_key)


def _move_no_clobber(tmp: str, target: str) -> None:
    # link() fails if the target exists, which makes the no-clobber check atomic.
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError:
        # Filesystems without hard links: fall back to check-then-rename (a narrow race).
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "key file exists", target) from None
        os.replace(tmp, target)


@attrs.frozen(repr=False)
class Identity:
    """A node's private key with its public key and peer ID (derived once).

    Attributes:
        private_key: the node's key; everything else is derived from it.
    """

    private_key: PrivateKey
    _peer_id: PeerId = attrs.field(
        init=False, eq=False, default=attrs.Factory(_peer_id_of, takes_self=True)
    )

    @property
    def public_key(self) -> PublicKey:
        """The node's public key."""
        return self.private_key.public_key

    @property
    def peer_id(self) -> PeerId:
        """The node's peer ID."""
        return self._peer_id

    @classmethod
    def generate(
        cls,
        key_type: KeyType = KeyType.ED25519,
        *,
        random_bytes: Callable[[int], bytes] | None = None,
    ) -> Identity:
        """Make a fresh identity.

        Args:
            key_type: the key type (Ed25519 by default, as go and js use).
            random_bytes: deterministic randomness for Ed25519 and secp256k1 keys (see
                ``generate_private_key``).

        Raises:
            ValueError: ``random_bytes`` given for RSA or ECDSA.
        """
        return cls(generate_private_key(key_type, random_bytes=random_bytes))

    @classmethod
    def from_private_key(cls, key: PrivateKey) -> Identity:
        """Wrap an existing private key."""
        return cls(key)

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the key file: the serialized ``PrivateKey`` protobuf, mode 0o600.

        The file is written to a temporary file in the same directory, flushed to disk and then
        moved into place, so a crash never leaves a truncated key behind.

        Args:
            path: where to write.
            overwrite: replace an existing file; without it an existing file is left alone.

        Raises:
            FileExistsError: ``path`` exists and ``overwrite`` is false.
            OSError: the file could not be written.
        """
        target = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(target))
        fd, tmp = tempfile.mkstemp(prefix=".key-", suffix=".tmp", dir=directory)
        try:
            # mkstemp already creates the file 0o600; chmod again in case of an odd platform.
            if hasattr(os, "fchmod"):
                os.fchmod(fd, KEY_FILE_MODE)
            with os.fdopen(fd, "wb") as handle:
                handle.write(self.private_key.to_protobuf())
                handle.flush()
                os.fsync(handle.fileno())
            if overwrite:
                os.replace(tmp, target)
            else:
                _move_no_clobber(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Identity:
        """Read a key file written by ``save`` (or by go/js libp2p: same format).

        The file's permissions are not checked; keep key files owner-only (``save`` does).

        Raises:
            IdentityError: the file is missing, unreadable, too large or not a valid key.
        """
        target = os.fspath(path)
        try:
            with open(target, "rb") as handle:
                data = handle.read(MAX_PRIVATE_KEY_PROTOBUF_SIZE + 1)
        except OSError as exc:
            raise IdentityError(f"cannot read key file {target}: {exc.strerror or exc}") from exc
        try:
            key = PrivateKey.from_protobuf(data)
        except InvalidKeyError as exc:
            raise IdentityError(f"key file {target} is not a valid libp2p key: {exc}") from exc
        return cls(key)

    def __repr__(self) -> str:
        return f"Identity(peer_id={self.peer_id}, key_type={self.private_key.key_type.name})"
