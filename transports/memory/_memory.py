"""The in-process memory transport: ``/memory/<id>`` addresses connected through a registry of
listeners (the ``memory`` multiaddr protocol of the multiformats table,
https://github.com/multiformats/multiaddr/blob/master/protocols.csv).

For tests and simulations: no sockets, both anyio backends, deterministic addresses.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from multiaddr import Multiaddr

from p2pstack.errors import TransportError
from p2pstack.multiaddrs import memory_id
from p2pstack.streams import MemoryConnection, memory_connection_pair

__all__ = [
    "DEFAULT_BACKLOG",
    "DEFAULT_MAX_CHUNKS",
    "DEFAULT_NETWORK",
    "MemoryListener",
    "MemoryNetwork",
    "MemoryTransport",
]

#: Connections dialed but not yet accepted that a listener holds before dials fail.
DEFAULT_BACKLOG = 64
#: Sends each direction of a connection buffers before ``send`` blocks.
DEFAULT_MAX_CHUNKS = 64


class MemoryNetwork:
    """A registry of memory listeners by id: the "network" memory transports share.

    Dialers also get an id from here, so each connection end has a distinct local address.
    """

    def __init__(self) -> None:
        self._listeners: dict[int, MemoryListener] = {}
        self._next_id = 1

    def _allocate(self) -> int:
        while self._next_id in self._listeners:
            self._next_id += 1
        ident = self._next_id
        self._next_id += 1
        return ident

    def _bind(self, ident: int, backlog: int, max_chunks: int) -> MemoryListener:
        if ident == 0:
            ident = self._allocate()
        elif ident in self._listeners:
            raise TransportError(f"/memory/{ident} is already in use")
        listener = MemoryListener(self, ident, backlog, max_chunks)
        self._listeners[ident] = listener
        return listener

    def _unbind(self, ident: int) -> None:
        self._listeners.pop(ident, None)

    def _lookup(self, ident: int) -> MemoryListener | None:
        return self._listeners.get(ident)


#: The process-wide network used by ``MemoryTransport()`` when none is given.
DEFAULT_NETWORK = MemoryNetwork()


class MemoryListener:
    """A ``Listener`` on one ``/memory/<id>`` address."""

    def __init__(self, network: MemoryNetwork, ident: int, backlog: int, max_chunks: int) -> None:
        self._network = network
        self._addr = Multiaddr(f"/memory/{ident}")
        self._ident = ident
        self._max_chunks = max_chunks
        self._send: MemoryObjectSendStream[MemoryConnection]
        self._recv: MemoryObjectReceiveStream[MemoryConnection]
        self._send, self._recv = anyio.create_memory_object_stream[MemoryConnection](backlog)
        self._closed = False

    @property
    def multiaddrs(self) -> Sequence[Multiaddr]:
        return (self._addr,)

    def _connect(self, local: Multiaddr) -> MemoryConnection:
        """Queue the listener's end of a new connection and return the dialer's end."""
        dialer_end, listener_end = memory_connection_pair(
            local, self._addr, max_chunks=self._max_chunks
        )
        try:
            self._send.send_nowait(listener_end)
        except anyio.WouldBlock:
            raise TransportError(f"{self._addr} refused a connection: backlog full") from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise TransportError(f"{self._addr} is closed") from None
        return dialer_end

    async def accept(self) -> MemoryConnection:
        """Wait for the next inbound connection.

        Raises:
            anyio.ClosedResourceError: the listener was closed (also wakes a pending accept).
        """
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            return await self._recv.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise anyio.ClosedResourceError from None

    async def aclose(self) -> None:
        """Stop accepting and close connections dialed but never accepted. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._network._unbind(self._ident)
        # Closing the send side wakes pending accepts with EndOfStream.
        self._send.close()
        while True:
            try:
                pending = self._recv.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
            await pending.aclose()
        self._recv.close()


class MemoryTransport:
    """Dials and listens on ``/memory/<id>`` within one ``MemoryNetwork``."""

    def __init__(
        self,
        network: MemoryNetwork | None = None,
        *,
        backlog: int = DEFAULT_BACKLOG,
        max_chunks: int = DEFAULT_MAX_CHUNKS,
    ) -> None:
        """Args:
        network: the registry to use; the process-wide ``DEFAULT_NETWORK`` if omitted.
        backlog: connections a listener queues before further dials fail.
        max_chunks: sends each direction of a connection buffers before ``send`` blocks.
        """
        self.network = network if network is not None else DEFAULT_NETWORK
        self._backlog = backlog
        self._max_chunks = max_chunks

    def can_dial(self, addr: Multiaddr) -> bool:
        """Whether ``addr`` is ``/memory/<id>`` (``/p2p/<id>`` ok)."""
        return memory_id(addr) is not None

    def can_listen(self, addr: Multiaddr) -> bool:
        """Whether ``addr`` is ``/memory/<id>``; id 0 picks a free id."""
        return memory_id(addr) is not None

    async def dial(self, addr: Multiaddr) -> MemoryConnection:
        """Connect to the listener at ``addr``.

        Raises:
            TransportError: not a memory address, nothing listens there, or its backlog is full.
        """
        await anyio.lowlevel.checkpoint()
        ident = memory_id(addr)
        if ident is None:
            raise TransportError(f"not a memory address: {addr}")
        listener = self.network._lookup(ident)
        if listener is None:
            raise TransportError(f"nothing listens on {addr}")
        local = Multiaddr(f"/memory/{self.network._allocate()}")
        return listener._connect(local)

    async def listen(self, addr: Multiaddr) -> MemoryListener:
        """Listen on ``addr``; ``/memory/0`` picks a free id.

        Raises:
            TransportError: not a memory address, or the id is taken.
        """
        await anyio.lowlevel.checkpoint()
        ident = memory_id(addr)
        if ident is None:
            raise TransportError(f"cannot listen on {addr}: not a memory address")
        return self.network._bind(ident, self._backlog, self._max_chunks)
