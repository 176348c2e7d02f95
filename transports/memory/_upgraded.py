"""A memory transport that delivers upgraded connections: the reference ``UpgradedTransport``
(``p2pstack.interfaces``), so that the host's path for transports that secure and multiplex
by themselves (QUIC) or that need the host (a relay) runs, and its conformance suite
``p2pstack.testing.check_upgraded_transport`` is exercised, without those transports.

It upgrades ``/memory/<id>`` connections with the upgrader it is given, and can mark them
``limited`` like a relayed connection.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import attrs
from multiaddr import Multiaddr

from p2pstack.errors import P2PError
from p2pstack.interfaces import UpgradedConnection, Upgrader
from transports.memory._memory import (
    DEFAULT_BACKLOG,
    DEFAULT_MAX_CHUNKS,
    MemoryListener,
    MemoryNetwork,
    MemoryTransport,
)

if TYPE_CHECKING:
    from p2pstack.identity import PeerId

__all__ = ["UpgradedMemoryListener", "UpgradedMemoryTransport"]

log = logging.getLogger("transports.memory")


def _mark(upgraded: UpgradedConnection, limited: bool) -> UpgradedConnection:
    info = attrs.evolve(upgraded.info, limited=limited, transport="memory")
    return attrs.evolve(upgraded, info=info)


class UpgradedMemoryListener:
    """An ``UpgradedListener`` on one ``/memory/<id>`` address.

    It upgrades accepted connections one at a time, inside ``accept`` (bounded by the
    upgrader's deadlines): a reference for tests, not a listener for hostile networks.
    """

    def __init__(self, inner: MemoryListener, upgrader: Upgrader, *, limited: bool) -> None:
        self._inner = inner
        self._upgrader = upgrader
        self._limited = limited

    @property
    def multiaddrs(self) -> Sequence[Multiaddr]:
        return self._inner.multiaddrs

    async def accept(self) -> UpgradedConnection:
        """Wait for the next inbound connection and upgrade it; failed upgrades are skipped.

        Returns:
            The upgraded connection (its muxer not yet running).

        Raises:
            anyio.ClosedResourceError: the listener was closed.
        """
        while True:
            raw = await self._inner.accept()
            try:
                upgraded = await self._upgrader.upgrade_inbound(raw)
            except P2PError as exc:
                log.debug("inbound upgrade on %s failed: %s", self._inner.multiaddrs[0], exc)
                continue
            return _mark(upgraded, self._limited)

    async def aclose(self) -> None:
        """Stop listening. Idempotent."""
        await self._inner.aclose()


class UpgradedMemoryTransport:
    """Dials and listens on ``/memory/<id>`` and delivers upgraded connections.

    Args:
        network: the registry to use; the process-wide default if omitted.
        limited: mark every connection ``limited`` (as a relayed one is).
        backlog: connections a listener queues before further dials fail.
        max_chunks: sends each direction of a connection buffers before ``send`` blocks.
    """

    delivers_upgraded: Literal[True] = True

    def __init__(
        self,
        network: MemoryNetwork | None = None,
        *,
        limited: bool = False,
        backlog: int = DEFAULT_BACKLOG,
        max_chunks: int = DEFAULT_MAX_CHUNKS,
    ) -> None:
        self._raw = MemoryTransport(network, backlog=backlog, max_chunks=max_chunks)
        self.network = self._raw.network
        self.limited = limited

    def can_dial(self, addr: Multiaddr) -> bool:
        """Whether ``addr`` is ``/memory/<id>``."""
        return self._raw.can_dial(addr)

    def can_listen(self, addr: Multiaddr) -> bool:
        """Whether ``addr`` is ``/memory/<id>``; id 0 picks a free id."""
        return self._raw.can_listen(addr)

    async def dial(
        self, addr: Multiaddr, *, remote_peer: PeerId | None, upgrader: Upgrader
    ) -> UpgradedConnection:
        """Connect to ``addr`` and upgrade the connection with ``upgrader``.

        Raises:
            TransportError: nothing listens on ``addr`` or its backlog is full.
            SecurityError, NegotiationError, UpgradeError, P2PTimeoutError: the upgrade failed.
        """
        raw = await self._raw.dial(addr)
        upgraded = await upgrader.upgrade_outbound(raw, remote_peer=remote_peer)
        return _mark(upgraded, self.limited)

    async def listen(self, addr: Multiaddr, *, upgrader: Upgrader) -> UpgradedMemoryListener:
        """Listen on ``addr``; ``/memory/0`` picks a free id.

        Raises:
            TransportError: not a memory address, or the id is taken.
        """
        inner = await self._raw.listen(addr)
        return UpgradedMemoryListener(inner, upgrader, limited=self.limited)
