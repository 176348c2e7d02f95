"""The hook between a raw connection and the pending-upgrade pool: once the remote has sent
``ACTIVE_BYTES`` bytes the connection's scope is marked active, so that the pool evicts silent
and trickling connections first.

Why a byte count and not the first byte: a connection that sends one byte a second is not
silent, yet it holds its pool slot as long as one that sends nothing. An honest dialer sends the
multistream header and its security proposal (27 bytes for ``/noise``) and, one round trip
later, its first Noise message (34 bytes): it passes ``ACTIVE_BYTES`` within about one round
trip, while a 1 byte/s trickler would need 48 s, far past the upgrade's security deadline.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.interfaces import Buffer, RawConnection
    from p2pstack.resources._scopes import ConnectionScope

__all__ = ["ACTIVE_BYTES", "ActivityWatcher"]

#: Bytes a pending connection must send before it counts as active (see the module docstring).
ACTIVE_BYTES = 48


class ActivityWatcher:
    """A ``RawConnection`` that calls ``scope.mark_active()`` once ``active_bytes`` bytes have
    arrived, then only forwards. Wrap an accepted connection with it before the upgrade.

    Args:
        inner: the accepted raw connection.
        scope: its connection scope from ``ResourceManager.open_connection``.
        active_bytes: bytes received before the connection counts as active.
    """

    def __init__(
        self, inner: RawConnection, scope: ConnectionScope, *, active_bytes: int = ACTIVE_BYTES
    ) -> None:
        self.inner = inner
        self._scope: ConnectionScope | None = scope
        self._missing = max(1, active_bytes)

    @property
    def local_multiaddr(self) -> Multiaddr:
        return self.inner.local_multiaddr

    @property
    def remote_multiaddr(self) -> Multiaddr:
        return self.inner.remote_multiaddr

    def receive(self, max_bytes: int = 65536) -> Coroutine[Any, Any, bytes]:
        """Receive like the inner connection (same errors); counts bytes until active.

        Once active this returns the inner connection's own ``receive`` coroutine: no frame of
        its own stays suspended in every idle connection's read.

        Returns:
            A coroutine that receives 1 to ``max_bytes`` bytes.
        """
        if self._scope is None:
            return self.inner.receive(max_bytes)
        return self._receive_counted(max_bytes)

    async def _receive_counted(self, max_bytes: int) -> bytes:
        data = await self.inner.receive(max_bytes)
        if self._scope is not None:
            self._missing -= len(data)
            if self._missing <= 0:
                self._scope.mark_active()
                self._scope = None
        return data

    async def send(self, item: Buffer) -> None:
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()
