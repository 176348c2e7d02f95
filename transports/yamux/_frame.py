"""yamux frame headers: ``version(1) type(1) flags(2) stream_id(4) length(4)``, big-endian
(https://github.com/hashicorp/yamux/blob/master/spec.md#framing and
https://github.com/libp2p/specs/blob/master/yamux/README.md).

Pure: encodes and decodes the 12-byte header; never touches I/O, time or randomness.
"""

from __future__ import annotations

import enum
import struct

import attrs

from p2pstack.errors import RemoteProtocolError

__all__ = [
    "HEADER_LEN",
    "INITIAL_WINDOW",
    "MAX_U32",
    "PROTOCOL_ID",
    "PROTOCOL_VERSION",
    "Flag",
    "FrameType",
    "GoAwayCode",
    "Header",
    "decode_header",
    "encode_header",
]

PROTOCOL_ID = "/yamux/1.0.0"

#: "the field is always set to 0, to indicate the initial version" (spec: Version Field).
PROTOCOL_VERSION = 0
#: Every frame starts with a 12-byte header.
HEADER_LEN = 12
#: "each stream [starts] with a 256KB window size" (spec: Flow Control).
INITIAL_WINDOW = 256 * 1024
MAX_U32 = 0xFFFF_FFFF

_HEADER = struct.Struct(">BBHII")


class FrameType(enum.IntEnum):
    """The frame type field (spec: Type Field)."""

    DATA = 0
    WINDOW_UPDATE = 1
    PING = 2
    GO_AWAY = 3


class Flag(enum.IntFlag):
    """The flags field (spec: Flag Field); SYN/ACK/FIN/RST ride on Data or WindowUpdate frames,
    SYN/ACK also mark a Ping as request/response."""

    NONE = 0
    SYN = 1
    ACK = 2
    FIN = 4
    RST = 8


class GoAwayCode(enum.IntEnum):
    """The Length of a GoAway frame (spec: Session termination)."""

    NORMAL = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


@attrs.frozen(slots=True)
class Header:
    """One decoded frame header.

    Attributes:
        type: the frame type.
        flags: the flag bits (unknown bits are kept; the spec defines only the low four).
        stream_id: the stream, or 0 for session frames (Ping, GoAway).
        length: payload length (Data), window delta (WindowUpdate), opaque value (Ping) or
            error code (GoAway).
    """

    type: FrameType
    flags: int
    stream_id: int
    length: int


def encode_header(frame_type: FrameType, flags: int, stream_id: int, length: int) -> bytes:
    """Encode one 12-byte frame header.

    Args:
        frame_type: the frame type.
        flags: bitwise OR of ``Flag`` values.
        stream_id: 0 .. 2**32-1.
        length: 0 .. 2**32-1 (see ``Header.length``).

    Returns:
        The header bytes.

    Raises:
        struct.error: a field is out of range (a bug in the caller).
    """
    return _HEADER.pack(PROTOCOL_VERSION, frame_type, flags, stream_id, length)


def decode_header(data: bytes | bytearray | memoryview, offset: int = 0) -> Header:
    """Decode the 12-byte header at ``data[offset:]``.

    Args:
        data: a buffer holding at least ``offset + 12`` bytes.
        offset: where the header starts.

    Returns:
        The decoded header.

    Raises:
        RemoteProtocolError: the version is not 0 or the type is unknown.
        ValueError: fewer than 12 bytes are available (a bug in the caller).
    """
    if len(data) - offset < HEADER_LEN:
        raise ValueError("a yamux header needs 12 bytes")
    version, frame_type, flags, stream_id, length = _HEADER.unpack_from(data, offset)
    if version != PROTOCOL_VERSION:
        raise RemoteProtocolError(f"yamux: unsupported version {version}")
    if frame_type > FrameType.GO_AWAY:
        raise RemoteProtocolError(f"yamux: unknown frame type {frame_type}")
    return Header(FrameType(frame_type), flags, stream_id, length)
