"""mplex message framing: ``uvarint(stream_id << 3 | flag) uvarint(length) data``
(https://github.com/libp2p/specs/blob/master/mplex/README.md#message-format).

This module is pure: it encodes frame headers and splits a byte buffer into whole messages.
It never touches I/O, time or randomness.
"""

from __future__ import annotations

import enum

import attrs

from p2pstack.errors import RemoteProtocolError
from p2pstack.varint import IncompleteVarint, decode_uvarint, encode_uvarint

__all__ = ["MAX_HEADER_LEN", "Flag", "Frame", "encode_header", "parse_frame"]

#: The longest header a frame can have: two 10-byte uvarints (stream ID + flag, length).
MAX_HEADER_LEN = 20


class Flag(enum.IntEnum):
    """The low three bits of a message header
    (https://github.com/libp2p/specs/blob/master/mplex/README.md#flag-values).

    "Initiator" flags are sent by the side that opened the stream, "Receiver" flags by the
    other side; that is how the same stream ID can name two different streams.
    """

    NEW_STREAM = 0
    MESSAGE_RECEIVER = 1
    MESSAGE_INITIATOR = 2
    CLOSE_RECEIVER = 3
    CLOSE_INITIATOR = 4
    RESET_RECEIVER = 5
    RESET_INITIATOR = 6

    @property
    def sent_by_initiator(self) -> bool:
        """Whether the sender of this flag is the stream's initiator (``NEW_STREAM`` included)."""
        return not self & 1


@attrs.frozen(slots=True)
class Frame:
    """One decoded message.

    Attributes:
        stream_id: the stream number, scoped by the stream's initiator.
        flag: what the message does.
        data: the payload (a stream name for ``NEW_STREAM``, bytes for messages, usually
            empty for close and reset).
    """

    stream_id: int
    flag: Flag
    data: bytes


def encode_header(stream_id: int, flag: Flag, length: int) -> bytes:
    """Encode the header that precedes ``length`` bytes of payload.

    Args:
        stream_id: the stream number (non-negative, below 2**61).
        flag: the message flag.
        length: the payload length in bytes.

    Returns:
        The two uvarints of the header, concatenated.

    Raises:
        ValueError: ``stream_id`` or ``length`` is out of range.
    """
    return encode_uvarint(stream_id << 3 | flag) + encode_uvarint(length)


def parse_frame(
    buf: bytes | bytearray | memoryview, pos: int, max_message_size: int
) -> tuple[Frame, int] | None:
    """Decode the message that starts at ``pos`` in ``buf``, if it is complete.

    Args:
        buf: received bytes.
        pos: where the next message starts.
        max_message_size: the largest payload accepted; a header announcing more fails at once,
            before its payload arrives, so a peer cannot make us buffer it.

    Returns:
        ``(frame, new_pos)`` with ``new_pos`` just past the message, or ``None`` when ``buf``
        ends before the message does (read more and call again with the same ``pos``).

    Raises:
        RemoteProtocolError: a malformed varint, an unknown flag (7), or a payload larger than
            ``max_message_size``.
    """
    try:
        header, p = decode_uvarint(buf, pos)
        length, p = decode_uvarint(buf, p)
    except IncompleteVarint:
        return None
    flag_bits = header & 0x07
    if flag_bits == 7:
        raise RemoteProtocolError("mplex: unknown message flag 7")
    if length > max_message_size:
        raise RemoteProtocolError(
            f"mplex: message of {length} bytes exceeds the limit of {max_message_size}"
        )
    end = p + length
    if end > len(buf):
        return None
    return Frame(header >> 3, _FLAGS[flag_bits], bytes(buf[p:end])), end


# Indexed by the low header bits: cheaper than calling the enum on every message.
_FLAGS = tuple(Flag)
