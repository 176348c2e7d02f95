"""A yamux stream as an anyio-style byte stream (``MuxedStream``): receive buffer, half-close
and reset on top of the connection driver
(https://github.com/hashicorp/yamux/blob/master/spec.md#closing-a-stream)."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import anyio

from p2pstack.errors import ResourceLimitExceeded, StreamReset
from p2pstack.sync import Signal

if TYPE_CHECKING:
    from p2pstack.interfaces import Buffer
    from p2pstack.resources import BufferReservation
    from transports.yamux._connection import YamuxConnection

__all__ = ["YamuxStream"]


class YamuxStream:
    """One yamux stream (a ``MuxedStream``). Made by ``YamuxConnection``, not by users.

    The receive buffer holds at most the window granted to the peer (256 KiB, or up to
    ``YamuxConfig.max_window`` once auto-tuned): the peer may not send more. With a memory
    budget, buffered bytes are reserved in it (``memory``) as they arrive and released as they
    are read; a refused reservation resets the stream (``receive`` then raises ``StreamReset``
    naming the limit).

    ``aclose()`` sends FIN if not yet sent and stops reading: the stream is then done locally
    without waiting for the peer. Data the peer still sends is dropped and answered with RST
    (its writer sees ``StreamReset``), while data and FIN we sent before stay deliverable, so a
    request/response exchange that closes early loses nothing.
    """

    def __init__(
        self,
        connection: YamuxConnection,
        stream_id: int,
        memory: BufferReservation | None = None,
    ) -> None:
        self._conn = connection
        self._id = stream_id
        self.memory = memory
        self._buffered = 0  # bytes in _buffer (counted only with a memory budget)
        self._reset_reason: Exception | None = None
        # Views into the connection's read buffers, or bytes; at most the granted window.
        self._buffer: deque[bytes | memoryview] = deque()
        self._head = 0  # bytes of _buffer[0] already returned
        self._recv_signal = Signal()
        self.send_signal = Signal()
        self.remote_fin = False
        self._reset = False
        self._send_broken = False
        self.send_closed = False
        self._closed = False

    @property
    def stream_id(self) -> int:
        return self._id

    def __repr__(self) -> str:
        return f"<YamuxStream {self._id}>"

    # -- ByteStream --------------------------------------------------------------------------

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Wait for data; return 1 to ``max_bytes`` bytes. Cancel-safe.

        Raises:
            anyio.EndOfStream: the peer half-closed and the buffer is empty.
            StreamReset: the stream was reset, or its connection ended before the peer's FIN.
            anyio.ClosedResourceError: ``aclose`` was called.
        """
        while not self._buffer:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._reset:
                self._raise_reset()
            if self.remote_fin:
                raise anyio.EndOfStream
            await self._recv_signal.wait()
        data = self._take(max_bytes)
        if (memory := self.memory) is not None:
            self._buffered -= len(data)
            if not self._buffer:
                memory.drained()
        self._conn.consumed(self._id, len(data))
        return data

    def _raise_reset(self) -> None:
        cause = self._reset_reason
        if cause is None:
            raise StreamReset(f"yamux stream {self._id} was reset")
        raise StreamReset(f"yamux stream {self._id} was reset: {cause}") from cause

    def _take(self, max_bytes: int) -> bytes:
        """Remove up to ``max_bytes`` buffered bytes, joining pieces (frames arrive split at
        Noise frame boundaries) with one copy; a whole ``bytes`` piece is returned as is."""
        buffer, head = self._buffer, self._head
        chunk = buffer[0]
        avail = len(chunk) - head
        if avail >= max_bytes or len(buffer) == 1:
            take = min(avail, max_bytes)
            if take == avail:
                buffer.popleft()
                self._head = 0
            else:
                self._head = head + take
            if head == 0 and take == len(chunk) and isinstance(chunk, bytes):
                return chunk
            return bytes(chunk[head : head + take])
        parts: list[bytes | memoryview] = []
        want = max_bytes
        while buffer and want:
            chunk = buffer[0]
            avail = len(chunk) - head
            if avail <= want:
                buffer.popleft()
                parts.append(chunk[head:] if head else chunk)
                want -= avail
                head = 0
            else:
                parts.append(chunk[head : head + want])
                head += want
                want = 0
        self._head = head
        return b"".join(parts)

    async def send(self, item: Buffer) -> None:
        """Send all of ``item``; waits while the peer's window or our write buffer is full.

        Raises:
            anyio.ClosedResourceError: after ``send_eof`` or ``aclose``.
            StreamReset: the stream was reset or the connection ended.
        """
        self.check_writable()
        if not isinstance(item, bytes):
            item = bytes(item)  # the frame is queued by reference: it must not change
        if item:
            await self._conn.send_stream_data(self, item)

    async def send_eof(self) -> None:
        """Half-close: queue FIN; receiving still works. Idempotent.

        Raises:
            StreamReset: the stream was reset or the connection ended.
        """
        if self.send_closed or self._closed:
            return
        if self._reset or self._send_broken:
            raise StreamReset(f"yamux stream {self._id} was reset")
        self.send_closed = True
        self._conn.end_stream(self)

    async def aclose(self) -> None:
        """Send FIN if needed and stop reading (see the class docstring). Never raises."""
        if self._closed:
            return
        self._closed = True
        self._drop_buffer()
        if not self._reset and not self._send_broken:
            self.send_closed = True
            self._conn.close_stream(self)
        self._wake()

    async def reset(self) -> None:
        """Abort both directions; the peer sees RST. Idempotent, never raises."""
        if self._reset or self._closed:
            return
        self._reset = True
        self._drop_buffer()
        self._conn.reset_stream(self)
        self._wake()

    # -- driver side -------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Raise the error ``send`` must raise now, if any."""
        if self._closed or self.send_closed:
            raise anyio.ClosedResourceError
        if self._reset or self._send_broken:
            self._raise_reset()

    def on_data(self, data: bytes | memoryview) -> None:
        if self._closed:
            return
        if (memory := self.memory) is not None:
            buffered = self._buffered + len(data)
            if buffered > memory.reserved:
                try:
                    memory.cover(buffered)
                except (ResourceLimitExceeded, ValueError) as exc:
                    self._conn.memory_refused(self, exc)
                    return
            self._buffered = buffered
        self._buffer.append(data)
        self._recv_signal.set()

    def on_fin(self) -> None:
        self.remote_fin = True
        if self.memory is not None:
            self.memory.floor = 0  # no more data comes: only what is buffered stays reserved
            if not self._buffer:
                self.memory.drained()
        self._recv_signal.set()

    def on_reset(self, reason: Exception | None = None) -> None:
        self._reset = True
        self._reset_reason = reason
        self._drop_buffer()
        self._wake()

    def on_connection_lost(self) -> None:
        # Data fully received (FIN seen) stays readable; anything else is cut off.
        if not self.remote_fin:
            self._reset = True
            self._drop_buffer()
        self._send_broken = True
        self._wake()

    def _drop_buffer(self) -> None:
        self._buffer.clear()
        self._head = 0
        if self.memory is not None:
            self._buffered = 0
            self.memory.close()

    def _wake(self) -> None:
        self._recv_signal.set()
        self.send_signal.set()
