"""A relayed stream seen as a raw connection: after the relay answered ``OK`` (hop CONNECT) or we
answered ``OK`` (stop CONNECT), the stream carries the end-to-end connection, which is then
upgraded with security and a muxer like any raw connection
(https://github.com/libp2p/specs/blob/master/relay/circuit-v2.md#connection-initiation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from p2pstack.errors import StreamReset

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.connection import Stream
    from p2pstack.interfaces import Buffer

__all__ = ["RelayedConnection"]


class RelayedConnection:
    """A ``RawConnection`` over a relay stream. A reset of the stream is a broken connection
    (``anyio.BrokenResourceError``), as the ``RawConnection`` contract says.

    Args:
        stream: the hop (dialer) or stop (listener) stream, after the ``OK``.
        local: our address on the circuit.
        remote: the peer's address on the circuit.
    """

    def __init__(self, stream: Stream, *, local: Multiaddr, remote: Multiaddr) -> None:
        self._stream = stream
        self._local = local
        self._remote = remote
        self.closed = anyio.Event()

    @property
    def local_multiaddr(self) -> Multiaddr:
        return self._local

    @property
    def remote_multiaddr(self) -> Multiaddr:
        return self._remote

    async def receive(self, max_bytes: int = 65536) -> bytes:
        try:
            return await self._stream.receive(max_bytes)
        except StreamReset as exc:
            raise anyio.BrokenResourceError("the relayed stream was reset") from exc

    async def send(self, item: Buffer) -> None:
        try:
            await self._stream.send(item)
        except StreamReset as exc:
            raise anyio.BrokenResourceError("the relayed stream was reset") from exc

    async def send_eof(self) -> None:
        try:
            await self._stream.send_eof()
        except StreamReset as exc:
            raise anyio.BrokenResourceError("the relayed stream was reset") from exc

    async def aclose(self) -> None:
        """Close the relay stream; wakes whoever waits on ``closed``. Never raises."""
        try:
            await self._stream.aclose()
        finally:
            self.closed.set()
