"""One QUIC stream as the host's ``MuxedStream`` (RFC 9000 section 3: a bidirectional stream
with a FIN per direction, RESET_STREAM and STOP_SENDING), on top of ``QuicMuxedConnection``.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Protocol

import anyio

from p2pstack.errors import StreamReset
from p2pstack.sync import Signal

if TYPE_CHECKING:
    from p2pstack.interfaces import Buffer

__all__ = ["QuicStream", "StreamOwner"]


class StreamOwner(Protocol):
    """What a stream needs from its connection (``QuicMuxedConnection``)."""

    def stream_consumed(self, stream_id: int, amount: int) -> None:
        """The application read (or dropped) ``amount`` bytes: the window may move on."""
        ...

    def stream_send(self, stream_id: int, data: Buffer, *, end: bool) -> None:
        """Queue ``data`` (and FIN if ``end``); raises ``StreamReset`` if it cannot be sent."""
        ...

    def stream_buffered(self, stream_id: int) -> int:
        """Bytes queued on the stream and not yet acknowledged by the peer."""
        ...

    def stream_blocked(self, stream: QuicStream) -> None:
        """``stream`` waits for ``stream_buffered`` to drop: set its ``send_signal`` then."""
        ...

    def stream_abort(self, stream_id: int, *, send: bool, receive: bool) -> None:
        """Send RESET_STREAM (``send``) and/or STOP_SENDING (``receive``); forget the stream
        once both directions are done. Never raises."""
        ...


class QuicStream:
    """One QUIC stream (a ``MuxedStream``). Made by ``QuicMuxedConnection``, not by users.

    The receive buffer holds at most the stream's window (``QuicConfig.stream_window``): the
    peer may not send more than that beyond what was read. ``send`` blocks while more than
    ``send_limit`` bytes wait to be acknowledged. ``aclose`` sends FIN if not yet sent and
    STOP_SENDING if the peer's direction is still open, so that its writer sees a reset.
    """

    __slots__ = (
        "_broken",
        "_buffer",
        "_closed",
        "_head",
        "_id",
        "_owner",
        "_recv_signal",
        "_send_error",
        "_send_limit",
        "remote_fin",
        "send_closed",
        "send_signal",
    )

    def __init__(self, owner: StreamOwner, stream_id: int, *, send_limit: int) -> None:
        self._owner = owner
        self._id = stream_id
        self._send_limit = send_limit
        self._buffer: deque[bytes] = deque()
        self._head = 0  # bytes of _buffer[0] already returned
        self._recv_signal = Signal()
        self.send_signal = Signal()
        self.remote_fin = False
        self.send_closed = False
        self._closed = False
        self._broken: Exception | None = None  # reading ended: peer's RESET_STREAM, or death
        self._send_error: Exception | None = None  # writing ended: STOP_SENDING, or death

    @property
    def stream_id(self) -> int:
        """The QUIC stream ID (RFC 9000 section 2.1: the low bits say who opened it)."""
        return self._id

    # -- called by the connection ------------------------------------------------------------

    def data_received(self, data: bytes, end: bool) -> None:
        """Queue bytes (and the FIN) that arrived for this stream."""
        if data:
            if self._closed:  # read side stopped: count it as read so the window moves on
                self._owner.stream_consumed(self._id, len(data))
            else:
                self._buffer.append(data)
        if end:
            self.remote_fin = True
        self._recv_signal.set()

    def broken(self, reason: Exception, *, receive: bool = True, send: bool = True) -> None:
        """Mark directions of the stream reset: ``receive`` when the peer reset its side
        (RESET_STREAM; unread data is dropped), ``send`` when it asked us to stop sending
        (STOP_SENDING), both when the connection ended."""
        if receive and self._broken is None:
            self._broken = reason
            self._buffer.clear()
            self._recv_signal.set()
        if send and self._send_error is None:
            self._send_error = reason
            self.send_signal.set()

    @property
    def is_done(self) -> bool:
        """Whether neither direction can carry more data from the application's view."""
        receiving_done = self._closed or self._broken is not None
        return receiving_done and (self.send_closed or self._send_error is not None)

    # -- ByteStream ---------------------------------------------------------------------------

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Return 1..``max_bytes`` bytes; cancel-safe.

        Raises:
            anyio.EndOfStream: the peer sent FIN and everything was read.
            StreamReset: the stream was reset or the connection ended.
            anyio.ClosedResourceError: the stream was closed locally.
        """
        buffer = self._buffer
        while not buffer:
            if self._broken is not None:
                raise StreamReset(str(self._broken)) from self._broken
            if self._closed:
                raise anyio.ClosedResourceError
            if self.remote_fin:
                raise anyio.EndOfStream
            await self._recv_signal.wait()
        data = self._take(max_bytes)
        self._owner.stream_consumed(self._id, len(data))
        return data

    def _take(self, max_bytes: int) -> bytes:
        # Each chunk is one packet's payload (~1.4 KB): join as many as fit, so that a reader
        # asking for 64 KiB makes one call per 64 KiB rather than one per packet.
        buffer = self._buffer
        chunk = buffer[0]
        head = self._head
        available = len(chunk) - head
        if available > max_bytes:
            self._head = head + max_bytes
            return chunk[head : head + max_bytes]
        buffer.popleft()
        self._head = 0
        first = chunk[head:] if head else chunk
        if not buffer or available + len(buffer[0]) > max_bytes:
            return first
        parts = [first]
        room = max_bytes - available
        while buffer and len(buffer[0]) <= room:
            chunk = buffer.popleft()
            parts.append(chunk)
            room -= len(chunk)
        return b"".join(parts)

    async def send(self, item: Buffer) -> None:
        """Queue ``item``; block while the stream's unacknowledged data is over its limit.

        Raises:
            anyio.ClosedResourceError: after ``send_eof`` or ``aclose``.
            StreamReset: the peer stopped the stream (STOP_SENDING), or it was reset.
        """
        while True:
            if self.send_closed:
                raise anyio.ClosedResourceError
            if self._send_error is not None:
                raise StreamReset(str(self._send_error)) from self._send_error
            if self._owner.stream_buffered(self._id) < self._send_limit:
                break
            self._owner.stream_blocked(self)
            await self.send_signal.wait()
        if item:
            self._owner.stream_send(self._id, item, end=False)

    async def send_eof(self) -> None:
        """Send FIN: the peer sees end of stream. Idempotent while the stream is intact."""
        if self.send_closed or self._send_error is not None:
            return
        self.send_closed = True
        self._owner.stream_send(self._id, b"", end=True)

    async def aclose(self) -> None:
        """Send FIN and stop reading (STOP_SENDING if the peer was still sending). Never raises."""
        if self._closed:
            return
        self._closed = True
        stop_receiving = not self.remote_fin and self._broken is None
        unread = sum(len(chunk) for chunk in self._buffer) - self._head
        self._buffer.clear()
        self._head = 0
        if unread:
            self._owner.stream_consumed(self._id, unread)
        await self.send_eof()
        self._owner.stream_abort(self._id, send=False, receive=stop_receiving)
        self._recv_signal.set()
        self.send_signal.set()

    async def reset(self) -> None:
        """Abort both directions; the peer sees a reset. Idempotent, never raises."""
        if self._broken is not None and self._send_error is not None:
            return
        self.send_closed = True
        self.broken(StreamReset("stream reset locally"))
        self._owner.stream_abort(self._id, send=True, receive=not self.remote_fin)
