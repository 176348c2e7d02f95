"""Byte-stream helpers shared by every layer: an in-process connected pair (the basis of the
memory transport and of tests) and a wrapper that replays bytes read ahead during negotiation."""

from __future__ import annotations

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from multiaddr import Multiaddr

from p2pstack.interfaces import Buffer, RawConnection

__all__ = ["MemoryConnection", "PrefixedConnection", "memory_connection_pair"]

#: Default number of chunks each direction of a memory pipe buffers before ``send`` blocks.
DEFAULT_PIPE_CHUNKS = 64


class MemoryConnection:
    """One end of an in-process, bounded, ordered byte pipe (a ``RawConnection``)."""

    def __init__(
        self,
        send_stream: MemoryObjectSendStream[bytes],
        receive_stream: MemoryObjectReceiveStream[bytes],
        local: Multiaddr,
        remote: Multiaddr,
    ) -> None:
        self._send = send_stream
        self._recv = receive_stream
        self._local = local
        self._remote = remote
        self._pending = b""
        self._eof_sent = False
        self._closed = False

    @property
    def local_multiaddr(self) -> Multiaddr:
        return self._local

    @property
    def remote_multiaddr(self) -> Multiaddr:
        return self._remote

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._closed:
            raise anyio.ClosedResourceError
        if not self._pending:
            try:
                self._pending = await self._recv.receive()
            except anyio.EndOfStream:
                raise anyio.EndOfStream from None
            except anyio.ClosedResourceError:
                raise anyio.ClosedResourceError from None
        data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return data

    async def send(self, item: Buffer) -> None:
        if self._closed or self._eof_sent:
            raise anyio.ClosedResourceError
        if not item:
            return
        try:
            await self._send.send(bytes(item))
        except anyio.BrokenResourceError:
            raise anyio.BrokenResourceError from None

    async def send_eof(self) -> None:
        self._eof_sent = True
        await self._send.aclose()

    async def aclose(self) -> None:
        self._closed = True
        self._eof_sent = True
        await self._send.aclose()
        await self._recv.aclose()


def memory_connection_pair(
    local: Multiaddr | None = None,
    remote: Multiaddr | None = None,
    *,
    max_chunks: int = DEFAULT_PIPE_CHUNKS,
) -> tuple[MemoryConnection, MemoryConnection]:
    """Two connected ``RawConnection`` ends; what one sends, the other receives.

    Each direction buffers at most ``max_chunks`` sends before ``send`` blocks.
    """
    a_addr = local or Multiaddr("/memory/1")
    b_addr = remote or Multiaddr("/memory/2")
    a_to_b_send, a_to_b_recv = anyio.create_memory_object_stream[bytes](max_chunks)
    b_to_a_send, b_to_a_recv = anyio.create_memory_object_stream[bytes](max_chunks)
    return (
        MemoryConnection(a_to_b_send, b_to_a_recv, a_addr, b_addr),
        MemoryConnection(b_to_a_send, a_to_b_recv, b_addr, a_addr),
    )


class PrefixedConnection:
    """A ``RawConnection`` that first returns ``prefix`` (bytes read ahead while negotiating),
    then reads from ``inner``."""

    def __init__(self, inner: RawConnection, prefix: bytes) -> None:
        self.inner = inner
        self._prefix = prefix

    @property
    def local_multiaddr(self) -> Multiaddr:
        return self.inner.local_multiaddr

    @property
    def remote_multiaddr(self) -> Multiaddr:
        return self.inner.remote_multiaddr

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix[:max_bytes], self._prefix[max_bytes:]
            return data
        return await self.inner.receive(max_bytes)

    async def send(self, item: Buffer) -> None:
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()
