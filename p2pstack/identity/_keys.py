"""Key pair base classes and their protobuf serialization, per the libp2p peer-ids spec
(https://github.com/libp2p/specs/blob/master/peer-ids/peer-ids.md#keys).

The concrete key types live in ``_keytypes``; this module holds what every key shares: the
``KeyType`` enum, the deterministic ``PublicKey``/``PrivateKey`` protobuf envelope and the
dispatch from a decoded protobuf to the right key class.
"""

from __future__ import annotations

import abc
import enum
import hmac
from typing import ClassVar

from p2pstack.errors import InvalidKeyError, RemoteProtocolError
from p2pstack.varint import IncompleteVarint, decode_uvarint, encode_uvarint

__all__ = [
    "MAX_PRIVATE_KEY_PROTOBUF_SIZE",
    "MAX_PUBLIC_KEY_PROTOBUF_SIZE",
    "KeyType",
    "PrivateKey",
    "PublicKey",
]

#: Largest serialized ``PublicKey`` accepted. An 8192-bit RSA key (the largest go and js accept)
#: serializes to about 1.1 KiB; anything past 4 KiB is rejected before parsing.
MAX_PUBLIC_KEY_PROTOBUF_SIZE = 4096
#: Largest serialized ``PrivateKey`` accepted (an 8192-bit PKCS#1 RSA key is about 4.8 KiB).
MAX_PRIVATE_KEY_PROTOBUF_SIZE = 16384


class KeyType(enum.IntEnum):
    """The ``KeyType`` enum of libp2p's ``crypto.proto``."""

    RSA = 0
    ED25519 = 1
    SECP256K1 = 2
    ECDSA = 3


#: The ``Type`` values with a key class (all below 0x80, so each is one varint byte).
_KEY_TYPES = frozenset(int(t) for t in KeyType)


def _encode_key_message(key_type: KeyType, data: bytes) -> bytes:
    """The deterministic ``PublicKey``/``PrivateKey{Type, Data}`` message (both share one
    layout), written by hand so that computing a peer ID needs no protobuf runtime.

    The spec requires a deterministic encoding: tag order (Type then Data), minimal varints,
    every field present (both are ``required``). Field 1 ``Type`` is a varint (tag byte 0x08),
    field 2 ``Data`` length-delimited bytes (tag byte 0x12); the tests check the result against
    the generated module byte for byte.

    Args:
        key_type: the ``Type`` field.
        data: the ``Data`` field.

    Returns:
        The serialized message.
    """
    return b"".join(
        (b"\x08", encode_uvarint(int(key_type)), b"\x12", encode_uvarint(len(data)), data)
    )


def _decode_canonical(data: bytes) -> tuple[KeyType, bytes] | None:
    """The fields of ``data`` when it is exactly the deterministic encoding of a known key
    type (what :func:`_encode_key_message` writes, and what the protobuf runtime would decode
    to the same two fields), else None. This fast path lets a peer ID be validated without
    loading the protobuf runtime; anything else goes through the generated parser.

    Args:
        data: a serialized key message.

    Returns:
        ``(key_type, data_field)``, or None for any other byte string.
    """
    if len(data) < 4 or data[0] != 0x08 or data[2] != 0x12 or data[1] not in _KEY_TYPES:
        return None
    try:
        length, pos = decode_uvarint(data, 3)
    except (IncompleteVarint, RemoteProtocolError):
        return None
    if pos + length != len(data):
        return None
    return KeyType(data[1]), data[pos:]


def _decode_key_message(private: bool, data: bytes, limit: int) -> tuple[KeyType, bytes]:
    """Parse a ``PublicKey`` (or, with ``private``, a ``PrivateKey``) message.

    Args:
        private: which of the two messages ``data`` holds.
        data: the serialized message.
        limit: the largest size accepted.

    Returns:
        ``(key_type, data_field)``.

    Raises:
        InvalidKeyError: over ``limit``, malformed, a field missing or an unknown key type.
    """
    if len(data) > limit:
        raise InvalidKeyError(f"serialized key is {len(data)} bytes, over the {limit} limit")
    canonical = _decode_canonical(data)
    if canonical is not None:
        return canonical
    from google.protobuf.message import DecodeError

    from p2pstack.identity.pb import keys_pb2

    message = keys_pb2.PrivateKey() if private else keys_pb2.PublicKey()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise InvalidKeyError(f"malformed key protobuf: {exc}") from exc
    # Unknown enum values land in the unknown fields, which leaves the required Type unset.
    if not message.HasField("Type") or not message.HasField("Data"):
        raise InvalidKeyError("key protobuf lacks its Type or Data field")
    try:
        key_type = KeyType(message.Type)
    except ValueError as exc:
        raise InvalidKeyError(f"unsupported key type {message.Type}") from exc
    return key_type, message.Data


class PublicKey(abc.ABC):
    """A public key of one of the four libp2p key types.

    Equal and hashable by ``(key_type, to_bytes())``.
    """

    __slots__ = ()
    _KEY_TYPE: ClassVar[KeyType]

    @property
    def key_type(self) -> KeyType:
        """The libp2p key type."""
        return self._KEY_TYPE

    @abc.abstractmethod
    def verify(self, data: bytes, signature: bytes) -> bool:
        """Check a signature made by the matching private key over ``data``.

        Returns:
            ``True`` if the signature is valid. A malformed or wrong signature gives ``False``;
            this method never raises for bad signature bytes.
        """

    @abc.abstractmethod
    def to_bytes(self) -> bytes:
        """The key's ``Data`` field per the peer-ids spec (raw 32 bytes for Ed25519, 33-byte
        compressed point for secp256k1, DER SubjectPublicKeyInfo for ECDSA and RSA)."""

    def to_protobuf(self) -> bytes:
        """The deterministic serialized ``PublicKey{Type, Data}`` message, as hashed into peer
        IDs."""
        return _encode_key_message(self.key_type, self.to_bytes())

    @staticmethod
    def from_protobuf(data: bytes) -> PublicKey:
        """Decode a serialized ``PublicKey`` message.

        Args:
            data: at most ``MAX_PUBLIC_KEY_PROTOBUF_SIZE`` bytes.

        Raises:
            InvalidKeyError: malformed message, unsupported type or invalid key data.
        """
        from p2pstack.identity import _keytypes

        key_type, key_data = _decode_key_message(False, data, MAX_PUBLIC_KEY_PROTOBUF_SIZE)
        return _keytypes.public_key_from_data(key_type, key_data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return self.key_type == other.key_type and self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash((self.key_type, self.to_bytes()))

    def __repr__(self) -> str:
        raw = self.to_bytes().hex()
        shown = raw if len(raw) <= 80 else f"{raw[:32]}...{raw[-32:]}"
        return f"{type(self).__name__}({shown})"


class PrivateKey(abc.ABC):
    """A private key of one of the four libp2p key types.

    Equal when the key material is equal (compared in constant time); hashable by its public
    key. ``repr`` shows only the public key.
    """

    __slots__ = ()
    _KEY_TYPE: ClassVar[KeyType]

    @property
    def key_type(self) -> KeyType:
        """The libp2p key type."""
        return self._KEY_TYPE

    @property
    @abc.abstractmethod
    def public_key(self) -> PublicKey:
        """The matching public key."""

    @abc.abstractmethod
    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` as the peer-ids spec prescribes for this key type.

        Returns:
            Ed25519: the 64-byte signature; secp256k1 and ECDSA: a DER ECDSA signature over
            SHA-256 (low-S for secp256k1); RSA: RSASSA-PKCS1-v1_5 with SHA-256.
        """

    @abc.abstractmethod
    def to_bytes(self) -> bytes:
        """The key's ``Data`` field (Ed25519: 64 bytes seed + public key; secp256k1: 32-byte
        scalar; ECDSA: SEC1 DER; RSA: PKCS#1 DER)."""

    def to_protobuf(self) -> bytes:
        """The serialized ``PrivateKey{Type, Data}`` message (the key file format)."""
        return _encode_key_message(self.key_type, self.to_bytes())

    @staticmethod
    def from_protobuf(data: bytes) -> PrivateKey:
        """Decode a serialized ``PrivateKey`` message.

        Args:
            data: at most ``MAX_PRIVATE_KEY_PROTOBUF_SIZE`` bytes.

        Raises:
            InvalidKeyError: malformed message, unsupported type or invalid key data.
        """
        from p2pstack.identity import _keytypes

        key_type, key_data = _decode_key_message(True, data, MAX_PRIVATE_KEY_PROTOBUF_SIZE)
        return _keytypes.private_key_from_data(key_type, key_data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivateKey):
            return NotImplemented
        return self.key_type == other.key_type and hmac.compare_digest(
            self.to_bytes(), other.to_bytes()
        )

    def __hash__(self) -> int:
        return hash(self.public_key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(public_key={self.public_key!r})"
