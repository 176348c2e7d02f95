"""Which members a SWIM member keeps connections to (sans-IO).

Probes ride libp2p streams, so each message needs a connection, and a dial inside the 500 ms
probe timeout costs a handshake. A full mesh of N members is N²/2 connections. The policy keeps
the connection set small and predictable:

* **ahead**: connections to the next ``lookahead`` probe targets are opened a period early
  (``SwimCore.upcoming_probe_targets``), so a probe finds its connection ready; with
  ``SwimConfig.gossip_window`` set to the same number, gossip uses them too;
* **on demand**: a message to anyone else (an ack, an indirect probe, a push-pull, a
  refutation) opens a connection when it must;
* **idle close**: a connection outside the ahead set that carried nothing for ``idle_timeout``
  seconds is closed; over ``max_connections``, the least recently used ones outside the ahead
  set are closed first.

Drivers call ``used(peer, now)`` for each message sent or received, ``ahead(core)`` to know what
to open, and ``to_close(core, now, connected)`` periodically. Simulations use the same object
to count connections per member.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from p2pstack.identity import PeerId
    from protocols.membership._core import SwimCore

__all__ = ["ConnectionPolicy"]


@attrs.define
class ConnectionPolicy:
    """The bounded connection set of one member.

    Attributes:
        lookahead: upcoming probe targets connected ahead of their probe.
        idle_timeout: seconds without a message after which a connection outside the ahead
            set is closed.
        max_connections: connections kept at most, beyond the ahead set's, before the least
            recently used are closed.
    """

    lookahead: int = 3
    idle_timeout: float = 5.0
    max_connections: int = 16
    _last_used: dict[PeerId, float] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        if self.lookahead < 0 or self.max_connections < self.lookahead:
            raise ValueError("need 0 <= lookahead <= max_connections")
        if self.idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")

    def used(self, peer: PeerId, now: float) -> None:
        """A message to or from ``peer`` went over its connection at ``now``."""
        self._last_used[peer] = now

    def ahead(self, core: SwimCore) -> list[PeerId]:
        """The peers to be connected to now, before their probe (most urgent first)."""
        return core.upcoming_probe_targets(self.lookahead)

    def to_close(self, core: SwimCore, now: float, connected: Iterable[PeerId]) -> list[PeerId]:
        """Which of the ``connected`` peers to disconnect now (idle, or over the cap)."""
        keep = set(self.ahead(core))
        others = [peer for peer in connected if peer not in keep]
        close = [
            peer
            for peer in others
            if now - self._last_used.get(peer, float("-inf")) >= self.idle_timeout
        ]
        remaining = [peer for peer in others if peer not in set(close)]
        excess = len(keep) + len(remaining) - self.max_connections
        if excess > 0:
            remaining.sort(key=lambda peer: self._last_used.get(peer, float("-inf")))
            close.extend(remaining[:excess])
        for peer in close:
            self._last_used.pop(peer, None)
        return close

    def forget(self, peer: PeerId) -> None:
        """``peer``'s connection closed (by either side)."""
        self._last_used.pop(peer, None)
