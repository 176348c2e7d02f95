"""CID text to DHT provider keys and back (https://github.com/multiformats/cid,
https://github.com/multiformats/multibase).

Provider records are keyed by the *multihash* of a CID, not the whole CID: go, js and py all send
``cid.multihash.bytes`` in ADD_PROVIDER and GET_PROVIDERS, so a CIDv0 and a CIDv1 (of any codec)
of the same content meet under one key.
"""

from __future__ import annotations

import base64
import binascii
import re

import base58

from p2pstack.errors import RemoteProtocolError
from p2pstack.varint import IncompleteVarint, decode_uvarint, encode_uvarint
from protocols.kad._types import KadError

__all__ = ["MAX_CID_TEXT_LENGTH", "RAW_CODEC", "InvalidCid", "cid_to_key", "key_to_cid"]

#: Longest CID text accepted: a sha2-512 CID is about 110 characters in base32; the bound keeps
#: base58/base36 decoding (quadratic) cheap on hostile input.
MAX_CID_TEXT_LENGTH = 256
#: The ``raw`` multicodec, used by :func:`key_to_cid`.
RAW_CODEC = 0x55
_SHA2_256 = 0x12
_CID_V1 = 1
_BASE36 = re.compile(r"[0-9a-z]+")


class InvalidCid(KadError, ValueError):
    """A CID text or multihash is malformed or uses an unsupported multibase."""


def _read_varint(data: bytes, pos: int, what: str) -> tuple[int, int]:
    try:
        return decode_uvarint(data, pos)
    except (IncompleteVarint, RemoteProtocolError) as exc:
        raise InvalidCid(f"bad {what} varint") from exc


def check_multihash(data: bytes) -> bytes:
    """Check that ``data`` is exactly one multihash (code, length, digest of that length).

    Returns:
        ``data`` unchanged.

    Raises:
        InvalidCid: anything else.
    """
    _, pos = _read_varint(data, 0, "multihash code")
    length, pos = _read_varint(data, pos, "multihash length")
    if len(data) - pos != length:
        raise InvalidCid(f"multihash digest is {len(data) - pos} bytes, its header says {length}")
    return data


def _decode_base32(body: str) -> bytes:
    if not body.isascii():
        raise InvalidCid("base32 text is not ASCII")
    padded = body.upper() + "=" * (-len(body) % 8)
    try:
        data = base64.b32decode(padded)
    except binascii.Error as exc:
        raise InvalidCid(f"bad base32: {exc}") from exc
    if base64.b32encode(data).decode("ascii").rstrip("=") != body.upper():
        raise InvalidCid("non-canonical base32")
    return data


def _decode_base36(body: str) -> bytes:
    if not _BASE36.fullmatch(body):
        raise InvalidCid("bad base36 character")
    # Leading "0" digits stand for leading zero bytes, as in base58btc.
    digits = body.lstrip("0")
    value = int(digits, 36) if digits else 0
    tail = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return b"\x00" * (len(body) - len(digits)) + tail


def _decode_base58(body: str) -> bytes:
    try:
        return base58.b58decode(body)
    except ValueError as exc:
        raise InvalidCid(f"bad base58btc: {exc}") from exc


def _decode_multibase(text: str) -> bytes:
    prefix, body = text[0], text[1:]
    if not body:
        raise InvalidCid("empty multibase body")
    if prefix == "b":
        return _decode_base32(body) if body == body.lower() else _raise_case(prefix)
    if prefix == "B":
        return _decode_base32(body) if body == body.upper() else _raise_case(prefix)
    if prefix == "k":
        return _decode_base36(body)
    if prefix == "K":
        return _decode_base36(body.lower()) if body == body.upper() else _raise_case(prefix)
    if prefix == "z":
        return _decode_base58(body)
    raise InvalidCid(f"unsupported multibase prefix {prefix!r} (use b, B, k, K or z)")


def _raise_case(prefix: str) -> bytes:
    raise InvalidCid(f"mixed case in a {prefix!r} multibase CID")


def cid_to_key(text: str) -> bytes:
    """The provider key of a CID: its multihash bytes.

    Accepts CIDv0 (``Qm...``, base58btc sha2-256) and CIDv1 in base32 (``b``/``B``), base36
    (``k``/``K``) or base58btc (``z``) multibase, of any codec and hash function.

    Raises:
        InvalidCid: not such a CID.
    """
    if not isinstance(text, str) or not 0 < len(text) <= MAX_CID_TEXT_LENGTH:
        raise InvalidCid("CID text is not a string of a plausible length")
    if len(text) == 46 and text.startswith("Qm"):
        data = _decode_base58(text)
        if len(data) != 34 or data[:2] != bytes((_SHA2_256, 32)):
            raise InvalidCid("CIDv0 is not a sha2-256 multihash")
        return data
    data = _decode_multibase(text)
    version, pos = _read_varint(data, 0, "CID version")
    if version != _CID_V1:
        raise InvalidCid(f"unsupported CID version {version}")
    _, pos = _read_varint(data, pos, "CID codec")
    return check_multihash(data[pos:])


def key_to_cid(multihash: bytes, *, codec: int = RAW_CODEC) -> str:
    """A CIDv1 text for a provider key: base32 multibase, ``raw`` codec unless told otherwise.

    Raises:
        InvalidCid: ``multihash`` is not one multihash; ``codec`` is not a valid varint value.
    """
    check_multihash(multihash)
    try:
        header = encode_uvarint(_CID_V1) + encode_uvarint(codec)
    except ValueError as exc:
        raise InvalidCid(f"bad codec {codec}") from exc
    return "b" + base64.b32encode(header + multihash).decode("ascii").rstrip("=").lower()
