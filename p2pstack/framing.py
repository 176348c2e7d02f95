"""Length-prefixed messages: an unsigned-varint byte count, then that many bytes
(https://github.com/multiformats/unsigned-varint; the framing of identify, plaintext, kad,
pubsub, relay and most other libp2p protocols that carry protobufs), always with a size bound.

Two layers, like the rest of the stack:

* sans-IO: ``encode_lp`` and ``LpDecoder`` (bytes in, whole messages out), for cores and for
  parsers that already hold the bytes;
* stream helpers: ``read_lp`` / ``write_lp`` and the protobuf forms ``read_lp_message`` /
  ``write_lp_message``, for drivers over a ``ByteStream``. ``read_lp`` never reads past the
  end of its message, so whatever follows stays in the stream for the next reader.

A length above the bound, or a varint that is longer than 10 bytes, overflows 64 bits or is
not minimally encoded, raises ``RemoteProtocolError`` as soon as the prefix is seen: nothing
of an oversized message is buffered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import anyio
from google.protobuf.message import DecodeError, Message

from p2pstack.errors import RemoteProtocolError
from p2pstack.varint import MAX_UVARINT_LEN, IncompleteVarint, decode_uvarint, encode_uvarint

if TYPE_CHECKING:
    from p2pstack.interfaces import Buffer, ByteStream

__all__ = [
    "LpDecoder",
    "encode_lp",
    "read_lp",
    "read_lp_message",
    "write_lp",
    "write_lp_message",
]

M = TypeVar("M", bound=Message)


def encode_lp(data: Buffer) -> bytes:
    """Prefix ``data`` with its length as an unsigned varint.

    Args:
        data: the message body.

    Returns:
        The framed message.
    """
    return encode_uvarint(len(data)) + bytes(data)


def _check_size(length: int, max_size: int) -> None:
    if length > max_size:
        raise RemoteProtocolError(
            f"length-prefixed message of {length} bytes is larger than the {max_size}-byte limit"
        )


class LpDecoder:
    """Sans-IO decoder of a sequence of length-prefixed messages.

    Bounds: it buffers at most one partial message (``max_size`` + 10 bytes of prefix) between
    calls; with ``max_messages`` set, the bytes that follow the last message are kept as they
    are (``take_remaining``) and the caller bounds them by what it feeds.

    Args:
        max_size: the largest message body accepted, in bytes.
        max_messages: stop decoding after this many messages (``None``: no limit).

    Raises:
        ValueError: ``max_size`` is negative or ``max_messages`` is not positive.
    """

    __slots__ = ("_buf", "_left", "_max_size")

    def __init__(self, max_size: int, *, max_messages: int | None = None) -> None:
        if max_size < 0 or (max_messages is not None and max_messages < 1):
            raise ValueError("max_size must be >= 0 and max_messages >= 1")
        self._max_size = max_size
        self._left = max_messages
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held: a partial message, or what followed the last one (``max_messages``)."""
        return len(self._buf)

    @property
    def done(self) -> bool:
        """Whether ``max_messages`` messages were decoded."""
        return self._left == 0

    def feed(self, data: Buffer) -> list[bytes]:
        """Add received bytes.

        Args:
            data: the next bytes of the stream.

        Returns:
            The messages completed by ``data``, in order (possibly none).

        Raises:
            RemoteProtocolError: a length prefix is malformed or over ``max_size``; the decoder
                must not be used afterwards.
        """
        self._buf += data
        buf = self._buf
        out: list[bytes] = []
        pos = 0
        while self._left != 0 and pos < len(buf):
            try:
                length, start = decode_uvarint(buf, pos)
            except IncompleteVarint:
                break
            _check_size(length, self._max_size)
            end = start + length
            if end > len(buf):
                break
            out.append(bytes(buf[start:end]))
            pos = end
            if self._left is not None:
                self._left -= 1
        del buf[:pos]
        return out

    def take_remaining(self) -> bytes:
        """Remove and return the bytes held (those after the last message decoded)."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest


async def read_lp(stream: ByteStream, *, max_size: int) -> bytes:
    """Read one length-prefixed message, and not one byte more.

    Args:
        stream: the stream to read from.
        max_size: the largest body accepted, in bytes.

    Returns:
        The message body.

    Raises:
        anyio.EndOfStream: the stream ended before the first byte of a message.
        RemoteProtocolError: the prefix is malformed or over ``max_size``, or the stream ended
            inside the message.
        BaseException: what ``stream.receive`` raises (``StreamReset``, ...).
    """
    prefix = bytearray()
    while True:
        try:
            prefix += await stream.receive(1)
        except anyio.EndOfStream:
            if not prefix:
                raise
            raise RemoteProtocolError("stream ended inside a length prefix") from None
        try:
            length, _ = decode_uvarint(prefix)
            break
        except IncompleteVarint:
            if len(prefix) >= MAX_UVARINT_LEN:  # (decode_uvarint raises first; belt and braces)
                raise RemoteProtocolError("length prefix longer than 10 bytes") from None
    _check_size(length, max_size)
    body = bytearray()
    while len(body) < length:
        try:
            body += await stream.receive(length - len(body))
        except anyio.EndOfStream:
            raise RemoteProtocolError(
                f"stream ended after {len(body)} of {length} message bytes"
            ) from None
    return bytes(body)


async def write_lp(stream: ByteStream, data: Buffer) -> None:
    """Send ``data`` with its length prefix, in one ``send``.

    Args:
        stream: the stream to write to.
        data: the message body.

    Raises:
        BaseException: what ``stream.send`` raises.
    """
    await stream.send(encode_lp(data))


async def read_lp_message(stream: ByteStream, message_type: type[M], *, max_size: int) -> M:
    """Read one length-prefixed protobuf message.

    Args:
        stream: the stream to read from.
        message_type: the generated protobuf class to parse into.
        max_size: the largest encoded message accepted, in bytes.

    Returns:
        The parsed message (unknown fields kept, as protobuf does).

    Raises:
        anyio.EndOfStream: the stream ended before the message began.
        RemoteProtocolError: bad framing, over ``max_size``, or not a valid ``message_type``.
    """
    body = await read_lp(stream, max_size=max_size)
    message = message_type()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise RemoteProtocolError(f"invalid {message_type.__name__} message: {exc}") from None
    return message


async def write_lp_message(stream: ByteStream, message: Message) -> None:
    """Serialise ``message`` and send it length-prefixed.

    Args:
        stream: the stream to write to.
        message: the protobuf message.

    Raises:
        BaseException: what ``stream.send`` raises.
    """
    await write_lp(stream, message.SerializeToString())
