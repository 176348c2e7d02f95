"""Listening on the bare ``/p2p-circuit`` address: accept circuits from any relay, with or
without a reservation this transport made (go-libp2p's client does; p2pd's clients reserve by
hand, writing a hop RESERVE on a stream of their own, and then expect the relay to reach them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.relay._inbox import ConnectionInbox

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.interfaces import Upgrader

__all__ = ["ANY_RELAY", "UnreservedListener"]

#: The listen address that asks for circuits from any relay.
ANY_RELAY = "/p2p-circuit"


class UnreservedListener(ConnectionInbox):
    """An ``UpgradedListener`` with no address of its own: it holds no reservation, it takes the
    circuits that relays open to us without one of the per-relay listeners.

    Args:
        upgrader: upgrades the relayed streams (as responder).
        max_pending: upgraded connections not yet taken by the host.
    """

    def __init__(self, upgrader: Upgrader, *, max_pending: int) -> None:
        super().__init__(max_pending)
        self.upgrader = upgrader

    @property
    def multiaddrs(self) -> list[Multiaddr]:
        """None: a peer reaches us through a relay's address, not through this listener."""
        return []

    async def aclose(self) -> None:
        """Stop accepting. Idempotent."""
        self._close_inbox()
