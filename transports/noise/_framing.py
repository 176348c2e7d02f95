"""Sans-IO framing of Noise messages: every message on the wire is prefixed with its length as a
2-byte big-endian integer (https://github.com/libp2p/specs/blob/master/noise/README.md#wire-format).
"""

from __future__ import annotations

import struct

from p2pstack.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["LENGTH_PREFIX_SIZE", "MAX_FRAME_SIZE", "FrameDecoder", "encode_frame"]

#: "noise-libp2p messages are limited to 65535 bytes" (the largest 2-byte length).
MAX_FRAME_SIZE = 65535
#: Bytes of the big-endian length prefix.
LENGTH_PREFIX_SIZE = 2

_LENGTH = struct.Struct(">H")


def encode_frame(message: bytes | bytearray | memoryview) -> bytes:
    """Prefix one Noise message with its 2-byte big-endian length.

    Args:
        message: the (already encrypted) Noise message, at most ``MAX_FRAME_SIZE`` bytes.

    Returns:
        The bytes to put on the wire.

    Raises:
        LocalProtocolError: ``message`` is longer than ``MAX_FRAME_SIZE``.
    """
    if len(message) > MAX_FRAME_SIZE:
        raise LocalProtocolError(f"Noise message of {len(message)} bytes exceeds {MAX_FRAME_SIZE}")
    return _LENGTH.pack(len(message)) + bytes(message)


class FrameDecoder:
    """Splits a byte stream into length-prefixed Noise messages.

    The receive buffer is bounded: ``feed`` refuses to hold more than ``max_buffer`` bytes
    (by default room for two maximal frames), so a caller that feeds only when ``next_frame``
    returns ``None`` never trips the bound, and a peer cannot make us buffer without limit.

    Args:
        max_frame: the largest message accepted; a longer announced length is a remote error.
        max_buffer: the most bytes buffered at once.
    """

    def __init__(
        self,
        *,
        max_frame: int = MAX_FRAME_SIZE,
        max_buffer: int = 2 * (LENGTH_PREFIX_SIZE + MAX_FRAME_SIZE),
    ) -> None:
        if not 0 <= max_frame <= MAX_FRAME_SIZE:
            raise ValueError(f"max_frame must be in [0, {MAX_FRAME_SIZE}]")
        if max_buffer < LENGTH_PREFIX_SIZE + max_frame:
            raise ValueError("max_buffer must hold at least one maximal frame")
        self._max_frame = max_frame
        self._max_buffer = max_buffer
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """How many bytes are buffered and not yet returned as frames."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes received from the network.

        Raises:
            RemoteProtocolError: the buffer would exceed ``max_buffer`` bytes.
        """
        if len(self._buf) + len(data) > self._max_buffer:
            raise RemoteProtocolError(f"Noise receive buffer would exceed {self._max_buffer} bytes")
        self._buf += data

    def next_frame(self) -> bytes | None:
        """Remove and return the next complete message (without its prefix), or ``None``.

        Raises:
            RemoteProtocolError: the announced length is larger than ``max_frame``.
        """
        if len(self._buf) < LENGTH_PREFIX_SIZE:
            return None
        (length,) = _LENGTH.unpack_from(self._buf)
        if length > self._max_frame:
            raise RemoteProtocolError(f"Noise frame of {length} bytes exceeds {self._max_frame}")
        end = LENGTH_PREFIX_SIZE + length
        if len(self._buf) < end:
            return None
        frame = bytes(self._buf[LENGTH_PREFIX_SIZE:end])
        del self._buf[:end]
        return frame

    def take_remaining(self) -> bytes:
        """Remove and return every buffered byte (the start of whatever follows the frames)."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest
