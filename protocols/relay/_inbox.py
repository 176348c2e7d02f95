"""The queue both relay listeners hand their relayed connections over in: ``deliver`` from the
stop handler, ``accept`` from the host's accept loop."""

from __future__ import annotations

import anyio

from p2pstack.interfaces import UpgradedConnection

__all__ = ["ConnectionInbox"]


class ConnectionInbox:
    """At most ``max_pending`` upgraded connections waiting for the host.

    Args:
        max_pending: connections delivered and not yet accepted.
    """

    def __init__(self, max_pending: int) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[UpgradedConnection](
            max_pending
        )
        self.closed = False

    def deliver(self, upgraded: UpgradedConnection) -> bool:
        """Queue a relayed connection for ``accept``; ``False`` if the queue is full or closed."""
        try:
            self._send.send_nowait(upgraded)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        return True

    async def accept(self) -> UpgradedConnection:
        """The next connection relayed to us.

        Raises:
            anyio.ClosedResourceError: the listener was closed.
        """
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            raise anyio.ClosedResourceError from None

    def _close_inbox(self) -> None:
        self.closed = True
        self._send.close()
