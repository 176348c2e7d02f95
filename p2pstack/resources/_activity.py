"""The hook between a raw connection and the pending-upgrade pool: the first byte received
marks the connection's scope active, so that the pool evicts silent connections first."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.interfaces import Buffer, RawConnection
    from p2pstack.resources._scopes import ConnectionScope

__all__ = ["ActivityWatcher"]


class ActivityWatcher:
    """A ``RawConnection`` that calls ``scope.mark_active()`` when the first byte arrives, then
    only forwards. Wrap an accepted connection with it before the upgrade.

    Args:
        inner: the accepted raw connection.
        scope: its connection scope from ``ResourceManager.open_connection``.
    """

    def __init__(self, inner: RawConnection, scope: ConnectionScope) -> None:
        self.inner = inner
        self._scope: ConnectionScope | None = scope

    @property
    def local_multiaddr(self) -> Multiaddr:
        return self.inner.local_multiaddr

    @property
    def remote_multiaddr(self) -> Multiaddr:
        return self.inner.remote_multiaddr

    async def receive(self, max_bytes: int = 65536) -> bytes:
        data = await self.inner.receive(max_bytes)
        if self._scope is not None:
            self._scope.mark_active()
            self._scope = None
        return data

    async def send(self, item: Buffer) -> None:
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()
