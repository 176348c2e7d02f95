"""Unsigned LEB128 varints as used across libp2p (https://github.com/multiformats/unsigned-varint).

Bounded to 64-bit values (at most 10 bytes, per the multiformats spec's practical limit of 9 bytes
for 63-bit values; we accept the 10th byte only for the top bit of a u64).
"""

from __future__ import annotations

from p2pstack.errors import RemoteProtocolError

__all__ = ["MAX_UVARINT_LEN", "IncompleteVarint", "decode_uvarint", "encode_uvarint"]

#: The longest encoding accepted: 10 bytes holds a full u64.
MAX_UVARINT_LEN = 10
_U64_MAX = (1 << 64) - 1


class IncompleteVarint(Exception):
    """The buffer ends inside a varint: read more bytes and try again (not a wire error)."""


def encode_uvarint(value: int) -> bytes:
    """Encode a non-negative integer below 2**64.

    Raises:
        ValueError: ``value`` is negative or does not fit in 64 bits.
    """
    if value < 0 or value > _U64_MAX:
        raise ValueError(f"uvarint out of range: {value}")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_uvarint(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Decode one uvarint starting at ``pos``.

    Returns:
        ``(value, new_pos)`` where ``new_pos`` is the index just past the varint.

    Raises:
        IncompleteVarint: the buffer ends before the varint does.
        RemoteProtocolError: the varint is longer than 10 bytes, overflows 64 bits, or is not
            minimally encoded (a trailing zero byte), as the multiformats spec requires.
    """
    result = 0
    shift = 0
    end = len(buf)
    start = pos
    while True:
        if pos >= end:
            raise IncompleteVarint
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and pos - start > 1:
                raise RemoteProtocolError("uvarint is not minimally encoded")
            if result > _U64_MAX:
                raise RemoteProtocolError("uvarint overflows 64 bits")
            return result, pos
        shift += 7
        if pos - start >= MAX_UVARINT_LEN:
            raise RemoteProtocolError("uvarint longer than 10 bytes")
