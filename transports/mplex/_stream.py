"""One stream of an mplex connection, as the application sees it: a receive buffer fed by the
connection's reader and a send side that queues messages into the connection's core
(https://github.com/libp2p/specs/blob/master/mplex/README.md#writing-to-a-stream).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import anyio

from p2pstack.errors import ResourceLimitExceeded, StreamReset

from ._core import StreamKey

if TYPE_CHECKING:
    from p2pstack.interfaces import Buffer
    from p2pstack.resources import BufferReservation

    from ._mplex import MplexConnection

__all__ = ["MplexStream"]


class MplexStream:
    """One mplex stream (a ``MuxedStream``). Created by ``MplexConnection`` only.

    With a memory budget, buffered bytes are reserved in it (``memory``) as they arrive and
    released as they are read; a refused reservation resets the stream.
    """

    def __init__(
        self, conn: MplexConnection, key: StreamKey, memory: BufferReservation | None = None
    ) -> None:
        self._conn = conn
        self._key = key
        self.memory = memory
        self._buffered = 0  # bytes in _chunks (counted only with a memory budget)
        self._chunks: deque[bytes] = deque()
        self._head = 0  # bytes of _chunks[0] already returned
        self._eof = False  # the peer closed its side
        self._send_closed = False  # send_eof() or aclose() called
        self._closed = False  # aclose() called
        self._recv_error: str | None = None  # why receive() raises StreamReset
        self._send_error: str | None = None  # why send() raises StreamReset
        self._readable = anyio.Event()

    @property
    def stream_id(self) -> int:
        """The stream number on the wire (scoped by ``key.local``)."""
        return self._key.stream_id

    @property
    def key(self) -> StreamKey:
        """The stream number and which side opened it."""
        return self._key

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Return between 1 and ``max_bytes`` buffered bytes, waiting for some if needed.

        Returns without yielding when data is already buffered. Cancel-safe. The caller
        bounds the wait (mplex streams have no deadline of their own).

        Raises:
            anyio.EndOfStream: the peer closed its side and every byte was read.
            anyio.ClosedResourceError: the stream was closed locally.
            StreamReset: the stream was reset, or the connection ended before the peer closed.
        """
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._recv_error is not None:
                raise StreamReset(self._recv_error)
            if self._chunks:
                return self._take(max_bytes)
            if self._eof:
                raise anyio.EndOfStream
            event = self._readable
            if event.is_set():
                event = self._readable = anyio.Event()
            await event.wait()

    def _take(self, max_bytes: int) -> bytes:
        chunk = self._chunks[0]
        head = self._head
        available = len(chunk) - head
        if head == 0 and available <= max_bytes:
            self._chunks.popleft()
            data = chunk
        else:
            n = min(available, max_bytes)
            data = chunk[head : head + n]
            if n == available:
                self._chunks.popleft()
                self._head = 0
            else:
                self._head = head + n
        if (memory := self.memory) is not None:
            self._buffered -= len(data)
            if not self._chunks:
                memory.drained()
        self._conn._core.consumed(self._key, len(data))
        self._conn._on_consumed()
        return data

    async def send(self, item: Buffer) -> None:
        """Send ``item`` (split into messages of at most ``max_message_size``).

        Returns once the bytes were handed to the underlying connection. mplex has no flow
        control: the peer buffers what it has not read yet (and may reset the stream when its
        buffer is full).

        Raises:
            anyio.ClosedResourceError: after ``send_eof`` or ``aclose``.
            StreamReset: the stream was reset or the connection ended.
        """
        if self._send_closed:
            raise anyio.ClosedResourceError
        if self._send_error is not None:
            raise StreamReset(self._send_error)
        if not item:
            return
        self._conn._core.send_data(self._key, item)
        await self._conn._flush()
        if self._send_error is not None:
            raise StreamReset(self._send_error)

    async def send_eof(self) -> None:
        """Half-close (``Close``): the peer reads to end of stream; we may still receive.
        Idempotent.

        Raises:
            StreamReset: the stream was reset or the connection ended.
        """
        if self._send_closed:
            return
        if self._send_error is not None:
            raise StreamReset(self._send_error)
        self._send_closed = True
        self._conn._core.close_stream(self._key)
        self._conn._forget_if_done(self)
        await self._conn._flush()
        if self._send_error is not None:
            raise StreamReset(self._send_error)

    async def aclose(self) -> None:
        """Close our side and stop reading (what still arrives is dropped). Idempotent, never
        raises."""
        if self._closed:
            return
        self._closed = True
        self._send_closed = True
        self._drop_buffer()
        self._readable.set()
        self._conn._core.release(self._key)
        self._conn._on_consumed()
        self._conn._streams.pop(self._key, None)
        await self._conn._flush_quietly()

    async def reset(self) -> None:
        """Abort both directions; the peer sees ``StreamReset``. Idempotent, never raises."""
        if self._recv_error is None or self._send_error is None:
            self._on_reset("stream reset locally")
            self._conn._core.reset_stream(self._key)
            self._conn._streams.pop(self._key, None)
            self._conn._on_consumed()
            await self._conn._flush_quietly()

    # Called by the connection ---------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        if self._closed or self._recv_error is not None:
            return
        if (memory := self.memory) is not None:
            buffered = self._buffered + len(data)
            if buffered > memory.reserved:
                try:
                    memory.cover(buffered)
                except (ResourceLimitExceeded, ValueError) as exc:
                    self._conn._memory_refused(self, exc)
                    return
            self._buffered = buffered
        self._chunks.append(data)
        self._readable.set()

    def _on_eof(self) -> None:
        self._eof = True
        self._readable.set()

    def _on_reset(self, reason: str) -> None:
        # The spec: "any data queued or in flight should be dropped".
        self._recv_error = self._send_error = reason
        self._drop_buffer()
        self._readable.set()

    def _on_connection_lost(self, reason: str) -> None:
        # A stream whose peer already closed keeps what it received: the data is complete.
        if not self._eof:
            self._recv_error = reason
            self._drop_buffer()
        self._send_error = reason
        self._readable.set()

    def _drop_buffer(self) -> None:
        self._chunks.clear()
        self._head = 0
        if self.memory is not None:
            self._buffered = 0
            self.memory.close()
