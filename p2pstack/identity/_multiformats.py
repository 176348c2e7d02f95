"""Tiny multihash, CID and multibase helpers for peer IDs
(https://github.com/multiformats/multihash, https://github.com/multiformats/cid,
https://github.com/multiformats/multibase).

Only what peer IDs need: the ``identity`` and ``sha2-256`` multihashes, CIDv1 with the
``libp2p-key`` codec, and the base58btc, base32, base36 and base16 multibases. Every decoder
raises ``ValueError`` on bad input; callers turn that into the typed error of their layer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

import base58

from p2pstack.errors import RemoteProtocolError
from p2pstack.varint import IncompleteVarint, decode_uvarint, encode_uvarint

__all__ = [
    "CID_V1",
    "IDENTITY",
    "LIBP2P_KEY",
    "SHA2_256",
    "decode_base58",
    "decode_multibase",
    "decode_multihash",
    "encode_base32",
    "encode_base36",
    "encode_multihash",
    "sha256_multihash",
]

#: multicodec table codes (https://github.com/multiformats/multicodec/blob/master/table.csv).
IDENTITY = 0x00
SHA2_256 = 0x12
LIBP2P_KEY = 0x72
CID_V1 = 0x01

_BASE36_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def encode_multihash(code: int, digest: bytes) -> bytes:
    """Return ``varint(code) + varint(len(digest)) + digest``."""
    return encode_uvarint(code) + encode_uvarint(len(digest)) + digest


def sha256_multihash(data: bytes) -> bytes:
    """Return the sha2-256 multihash of ``data``."""
    return encode_multihash(SHA2_256, hashlib.sha256(data).digest())


def decode_multihash(data: bytes, pos: int = 0) -> tuple[int, bytes]:
    """Split a multihash that must span ``data[pos:]`` exactly.

    Returns:
        ``(code, digest)``.

    Raises:
        ValueError: truncated, over-long or badly encoded multihash.
    """
    try:
        code, pos = decode_uvarint(data, pos)
        length, pos = decode_uvarint(data, pos)
    except (IncompleteVarint, RemoteProtocolError) as exc:
        raise ValueError("bad multihash varint") from exc
    if len(data) - pos != length:
        raise ValueError(f"multihash digest length {length} does not match {len(data) - pos}")
    return code, bytes(data[pos:])


def encode_base32(data: bytes) -> str:
    """RFC 4648 base32, lower case, no padding (the multibase ``b`` alphabet, without prefix)."""
    return base64.b32encode(data).decode("ascii").lower().rstrip("=")


def _decode_base32(text: str) -> bytes:
    padded = text.upper() + "=" * (-len(text) % 8)
    try:
        data = base64.b32decode(padded)
    except binascii.Error as exc:
        raise ValueError("invalid base32") from exc
    # b32decode ignores non-zero trailing bits; insist on the one canonical spelling so that one
    # peer ID has exactly one base32 text form.
    if encode_base32(data) != text.lower():
        raise ValueError("non-canonical base32")
    return data


def _encode_base36(data: bytes) -> str:
    zeros = len(data) - len(data.lstrip(b"\x00"))
    value = int.from_bytes(data, "big")
    digits = []
    while value:
        value, rem = divmod(value, 36)
        digits.append(_BASE36_ALPHABET[rem])
    return "0" * zeros + "".join(reversed(digits))


def _decode_base36(text: str) -> bytes:
    lowered = text.lower()
    if any(ch not in _BASE36_ALPHABET for ch in lowered):
        raise ValueError("invalid base36")
    zeros = len(lowered) - len(lowered.lstrip("0"))
    value = int(lowered, 36) if lowered.lstrip("0") else 0
    body = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return b"\x00" * zeros + body


def decode_multibase(text: str) -> bytes:
    """Decode multibase text (prefixes ``b``/``B`` base32, ``k``/``K`` base36, ``z`` base58btc,
    ``f``/``F`` base16).

    Raises:
        ValueError: unknown prefix or invalid digits.
    """
    if not text:
        raise ValueError("empty multibase text")
    prefix, body = text[0], text[1:]
    if prefix in "bB":
        return _decode_base32(body)
    if prefix in "kK":
        return _decode_base36(body)
    if prefix == "z":
        return decode_base58(body)
    if prefix in "fF":
        try:
            return bytes.fromhex(body)
        except ValueError as exc:
            raise ValueError("invalid base16") from exc
    raise ValueError(f"unsupported multibase prefix {prefix!r}")


def encode_base36(data: bytes) -> str:
    """Lower-case base36 (the multibase ``k`` alphabet, without prefix)."""
    return _encode_base36(data)


def decode_base58(text: str) -> bytes:
    """Decode base58btc.

    Raises:
        ValueError: a character outside the bitcoin alphabet.
    """
    if not text.isascii():
        raise ValueError("invalid base58")
    try:
        return base58.b58decode(text)
    except ValueError as exc:
        raise ValueError("invalid base58") from exc
