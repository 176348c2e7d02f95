"""The four libp2p key types: encodings and signing rules of
https://github.com/libp2p/specs/blob/master/peer-ids/peer-ids.md#key-types, on ``cryptography``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Self

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

# ``cryptography.hazmat.primitives.serialization`` is imported inside the DER key types' methods:
# that package loads the library's SSH and PKCS#12 code too, which Ed25519 (the default key type,
# and all ``p2pstack id`` needs) never uses.
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from p2pstack.errors import InvalidKeyError
from p2pstack.identity._keys import KeyType, PrivateKey, PublicKey

__all__ = [
    "RSA_MAX_BITS",
    "RSA_MIN_BITS",
    "EcdsaPrivateKey",
    "EcdsaPublicKey",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "RsaPrivateKey",
    "RsaPublicKey",
    "Secp256k1PrivateKey",
    "Secp256k1PublicKey",
    "generate_private_key",
    "private_key_from_data",
    "public_key_from_data",
]

#: Order of the secp256k1 group (SEC 2, section 2.4.1).
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
#: RSA sizes accepted, as go-libp2p enforces (MinRsaKeyBits / maxRsaKeyBits); js caps at 8192 too.
RSA_MIN_BITS = 2048
RSA_MAX_BITS = 8192
#: ECDSA curves go and js accept inside a libp2p ECDSA key.
_ECDSA_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_LOAD_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm)


def _ecdsa_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    # The spec points at RFC 6979 (deterministic nonces); use it when OpenSSL has it (3.2+),
    # which also makes secp256k1 signatures reproducible across runs.
    try:
        return key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    except UnsupportedAlgorithm:
        return key.sign(data, ec.ECDSA(hashes.SHA256()))


def _ecdsa_verify(key: ec.EllipticCurvePublicKey, data: bytes, signature: bytes) -> bool:
    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


class Ed25519PublicKey(PublicKey):
    """An Ed25519 public key (``Data`` is the raw 32 bytes)."""

    __slots__ = ("_key", "_raw")
    _KEY_TYPE = KeyType.ED25519

    def __init__(self, key: ed25519.Ed25519PublicKey) -> None:
        self._key = key
        self._raw = key.public_bytes_raw()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse the raw 32-byte key. Raises ``InvalidKeyError``."""
        if len(data) != 32:
            raise InvalidKeyError(f"Ed25519 public key must be 32 bytes, got {len(data)}")
        try:
            return cls(ed25519.Ed25519PublicKey.from_public_bytes(data))
        except _LOAD_ERRORS as exc:
            raise InvalidKeyError(f"invalid Ed25519 public key: {exc}") from exc

    def verify(self, data: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, data)
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_bytes(self) -> bytes:
        return self._raw


class Ed25519PrivateKey(PrivateKey):
    """An Ed25519 private key (``Data`` is the 32-byte seed followed by the public key)."""

    __slots__ = ("_key", "_public")
    _KEY_TYPE = KeyType.ED25519

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key
        self._public = Ed25519PublicKey(key.public_key())

    @classmethod
    def from_seed(cls, seed: bytes) -> Self:
        """Derive the key from a 32-byte RFC 8032 seed. Raises ``InvalidKeyError``."""
        if len(seed) != 32:
            raise InvalidKeyError(f"Ed25519 seed must be 32 bytes, got {len(seed)}")
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse ``seed || public`` (64 bytes) or the legacy ``seed || public || public`` (96).

        Raises:
            InvalidKeyError: wrong length, or the embedded public key does not match the seed.
        """
        if len(data) == 96:
            # Legacy form: the spec says to accept it only if both public key copies agree.
            if data[32:64] != data[64:96]:
                raise InvalidKeyError("legacy 96-byte Ed25519 key has two different public keys")
            data = data[:64]
        if len(data) != 64:
            raise InvalidKeyError(f"Ed25519 private key must be 64 bytes, got {len(data)}")
        key = cls.from_seed(data[:32])
        if key.public_key.to_bytes() != data[32:]:
            raise InvalidKeyError("Ed25519 private key's public half does not match its seed")
        return key

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def to_bytes(self) -> bytes:
        return self._key.private_bytes_raw() + self._public.to_bytes()


class Secp256k1PublicKey(PublicKey):
    """A secp256k1 public key (``Data`` is the 33-byte compressed point; the 65-byte
    uncompressed form is accepted on input, as go's btcec does)."""

    __slots__ = ("_key", "_raw")
    _KEY_TYPE = KeyType.SECP256K1

    def __init__(self, key: ec.EllipticCurvePublicKey) -> None:
        self._key = key
        from cryptography.hazmat.primitives import serialization

        self._raw = key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse a SEC1 point. Raises ``InvalidKeyError``."""
        if len(data) not in (33, 65):
            raise InvalidKeyError(f"secp256k1 public key must be 33 or 65 bytes, got {len(data)}")
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), data)
        except _LOAD_ERRORS as exc:
            raise InvalidKeyError(f"invalid secp256k1 public key: {exc}") from exc
        return cls(key)

    def verify(self, data: bytes, signature: bytes) -> bool:
        return _ecdsa_verify(self._key, data, signature)

    def to_bytes(self) -> bytes:
        return self._raw


class Secp256k1PrivateKey(PrivateKey):
    """A secp256k1 private key (``Data`` is the 32-byte big-endian scalar)."""

    __slots__ = ("_key", "_public")
    _KEY_TYPE = KeyType.SECP256K1

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(key.curve, ec.SECP256K1):
            raise InvalidKeyError(f"not a secp256k1 key: {key.curve.name}")
        self._key = key
        self._public = Secp256k1PublicKey(key.public_key())

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse the 32-byte scalar. Raises ``InvalidKeyError`` (wrong length, 0 or >= n)."""
        if len(data) != 32:
            raise InvalidKeyError(f"secp256k1 private key must be 32 bytes, got {len(data)}")
        scalar = int.from_bytes(data, "big")
        if not 0 < scalar < _SECP256K1_N:
            raise InvalidKeyError("secp256k1 private key out of range")
        return cls(ec.derive_private_key(scalar, ec.SECP256K1()))

    @property
    def public_key(self) -> Secp256k1PublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        r, s = decode_dss_signature(_ecdsa_sign(self._key, data))
        # Bitcoin signatures (BIP 62, which the spec cites) use the low-S form; js (noble) rejects
        # high-S signatures on secp256k1, so normalise.
        if s > _SECP256K1_N // 2:
            s = _SECP256K1_N - s
        return encode_dss_signature(r, s)

    def to_bytes(self) -> bytes:
        return self._key.private_numbers().private_value.to_bytes(32, "big")


class EcdsaPublicKey(PublicKey):
    """An ECDSA public key on P-256, P-384 or P-521 (``Data`` is DER SubjectPublicKeyInfo)."""

    __slots__ = ("_key", "_raw")
    _KEY_TYPE = KeyType.ECDSA

    def __init__(self, key: ec.EllipticCurvePublicKey) -> None:
        if not isinstance(key.curve, _ECDSA_CURVES):
            raise InvalidKeyError(f"unsupported ECDSA curve {key.curve.name}")
        self._key = key
        from cryptography.hazmat.primitives import serialization

        self._raw = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse DER SubjectPublicKeyInfo. Raises ``InvalidKeyError``."""
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_der_public_key(data)
        except _LOAD_ERRORS as exc:
            raise InvalidKeyError(f"invalid ECDSA public key: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise InvalidKeyError("ECDSA public key data holds a non-EC key")
        return cls(key)

    def verify(self, data: bytes, signature: bytes) -> bool:
        return _ecdsa_verify(self._key, data, signature)

    def to_bytes(self) -> bytes:
        return self._raw


class EcdsaPrivateKey(PrivateKey):
    """An ECDSA private key (``Data`` is SEC1 ``ECPrivateKey`` DER, as go writes it; PKCS#8 is
    accepted on input)."""

    __slots__ = ("_key", "_public")
    _KEY_TYPE = KeyType.ECDSA

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._public = EcdsaPublicKey(key.public_key())
        self._key = key

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse SEC1 or PKCS#8 DER. Raises ``InvalidKeyError``."""
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_der_private_key(data, password=None)
        except _LOAD_ERRORS as exc:
            raise InvalidKeyError(f"invalid ECDSA private key: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InvalidKeyError("ECDSA private key data holds a non-EC key")
        return cls(key)

    @property
    def public_key(self) -> EcdsaPublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        return _ecdsa_sign(self._key, data)

    def to_bytes(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self._key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )


def _check_rsa_size(bits: int) -> None:
    if not RSA_MIN_BITS <= bits <= RSA_MAX_BITS:
        raise InvalidKeyError(f"RSA key of {bits} bits outside {RSA_MIN_BITS}..{RSA_MAX_BITS}")


class RsaPublicKey(PublicKey):
    """An RSA public key of 2048 to 8192 bits (``Data`` is DER SubjectPublicKeyInfo)."""

    __slots__ = ("_key", "_raw")
    _KEY_TYPE = KeyType.RSA

    def __init__(self, key: rsa.RSAPublicKey) -> None:
        _check_rsa_size(key.key_size)
        self._key = key
        from cryptography.hazmat.primitives import serialization

        self._raw = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse DER SubjectPublicKeyInfo. Raises ``InvalidKeyError``."""
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_der_public_key(data)
        except _LOAD_ERRORS as exc:
            raise InvalidKeyError(f"invalid RSA public key: {exc}") from exc
        if not isinstance(key, rsa.RSAPublicKey):
            raise InvalidKeyError("RSA public key data holds a non-RSA key")
        return cls(key)

    def verify(self, data: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_bytes(self) -> bytes:
        return self._raw


class RsaPrivateKey(PrivateKey):
    """An RSA private key (``Data`` is PKCS#1 DER; PKCS#8 is accepted on input)."""

    __slots__ = ("_key", "_public")
    _KEY_TYPE = KeyType.RSA

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._public = RsaPublicKey(key.public_key())
        self._key = key

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse PKCS#1 or PKCS#8 DER. Raises ``InvalidKeyError``."""
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_der_private_key(data, password=None)
        except _LOAD_ERRORS as exc:
            raise InvalidKeyError(f"invalid RSA private key: {exc}") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise InvalidKeyError("RSA private key data holds a non-RSA key")
        return cls(key)

    @property
    def public_key(self) -> RsaPublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def to_bytes(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self._key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )


_PUBLIC_DECODERS: dict[KeyType, Callable[[bytes], PublicKey]] = {
    KeyType.ED25519: Ed25519PublicKey.from_bytes,
    KeyType.SECP256K1: Secp256k1PublicKey.from_bytes,
    KeyType.ECDSA: EcdsaPublicKey.from_bytes,
    KeyType.RSA: RsaPublicKey.from_bytes,
}
_PRIVATE_DECODERS: dict[KeyType, Callable[[bytes], PrivateKey]] = {
    KeyType.ED25519: Ed25519PrivateKey.from_bytes,
    KeyType.SECP256K1: Secp256k1PrivateKey.from_bytes,
    KeyType.ECDSA: EcdsaPrivateKey.from_bytes,
    KeyType.RSA: RsaPrivateKey.from_bytes,
}


def public_key_from_data(key_type: KeyType, data: bytes) -> PublicKey:
    """Build a public key from its type and ``Data`` field. Raises ``InvalidKeyError``."""
    return _PUBLIC_DECODERS[key_type](data)


def private_key_from_data(key_type: KeyType, data: bytes) -> PrivateKey:
    """Build a private key from its type and ``Data`` field. Raises ``InvalidKeyError``."""
    return _PRIVATE_DECODERS[key_type](data)


def _draw(random_bytes: Callable[[int], bytes], size: int) -> bytes:
    data = random_bytes(size)
    if len(data) != size:
        raise ValueError(f"random_bytes({size}) returned {len(data)} bytes")
    return data


def generate_private_key(
    key_type: KeyType = KeyType.ED25519,
    *,
    random_bytes: Callable[[int], bytes] | None = None,
    rsa_bits: int = 2048,
) -> PrivateKey:
    """Generate a new private key.

    Args:
        key_type: which libp2p key type to make.
        random_bytes: a source of randomness (for example a seeded RNG in a deterministic
            simulation). Honoured for Ed25519 (a 32-byte seed) and secp256k1 (32-byte scalars
            drawn until one is in range); the system CSPRNG is used when it is ``None``.
        rsa_bits: RSA modulus size, 2048 to 8192.

    Returns:
        The new key; ECDSA keys are on P-256.

    Raises:
        ValueError: ``random_bytes`` given for RSA or ECDSA (their generators cannot take one),
            ``random_bytes`` returned the wrong length, or ``rsa_bits`` is out of range.
    """
    if random_bytes is not None and key_type in (KeyType.RSA, KeyType.ECDSA):
        raise ValueError("random_bytes is only supported for Ed25519 and secp256k1 keys")
    draw = random_bytes or os.urandom
    if key_type is KeyType.ED25519:
        return Ed25519PrivateKey.from_seed(_draw(draw, 32))
    if key_type is KeyType.SECP256K1:
        # A uniform 32-byte string is out of range with probability ~2**-128; 64 misses in a row
        # means the source is broken, not unlucky.
        for _ in range(64):
            scalar = int.from_bytes(_draw(draw, 32), "big")
            if 0 < scalar < _SECP256K1_N:
                return Secp256k1PrivateKey(ec.derive_private_key(scalar, ec.SECP256K1()))
        raise ValueError("random_bytes produced no valid secp256k1 scalar in 64 draws")
    if key_type is KeyType.ECDSA:
        return EcdsaPrivateKey(ec.generate_private_key(ec.SECP256R1()))
    if not RSA_MIN_BITS <= rsa_bits <= RSA_MAX_BITS:
        raise ValueError(f"rsa_bits must be within {RSA_MIN_BITS}..{RSA_MAX_BITS}")
    return RsaPrivateKey(rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits))
