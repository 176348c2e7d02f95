"""Per-peer bounds on inbound ping streams, kept apart from the service so that they can move
onto the host's resource scopes (a per-peer protocol limit) without touching the echo logic."""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["PeerSlots"]


class PeerSlots:
    """How many of one resource each peer holds, with a cap per peer.

    Holds one counter per peer that holds at least one slot, so its size is bounded by the
    number of peers with a stream open.
    """

    def __init__(self, per_peer: int) -> None:
        """Args:
        per_peer: most slots one peer may hold at once.

        Raises:
            ValueError: ``per_peer`` is less than 1.
        """
        if per_peer < 1:
            raise ValueError("per_peer must be at least 1")
        self._per_peer = per_peer
        self._held: dict[Hashable, int] = {}

    def acquire(self, peer: Hashable) -> bool:
        """Take a slot for ``peer``.

        Returns:
            ``False`` (and nothing taken) when ``peer`` already holds ``per_peer`` slots.
        """
        held = self._held.get(peer, 0)
        if held >= self._per_peer:
            return False
        self._held[peer] = held + 1
        return True

    def release(self, peer: Hashable) -> None:
        """Give back one slot that ``acquire`` granted to ``peer``."""
        held = self._held[peer] - 1
        if held:
            self._held[peer] = held
        else:
            del self._held[peer]

    def held(self, peer: Hashable) -> int:
        """Slots ``peer`` holds now."""
        return self._held.get(peer, 0)
