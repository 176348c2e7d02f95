"""The DHT random walk as a peer-discovery source (``"dht"``): every
``KadConfig.random_walk_interval`` the ``Kad`` service looks up a random key, and the peers
that lookup met are offered here (``p2pstack.discovery.PeerDiscovery``; the discovery service
reads it without this package knowing it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

from p2pstack.discovery import DiscoveredPeer, DiscoveryFeed

if TYPE_CHECKING:
    from p2pstack.identity import PeerId
    from protocols.kad._types import KadPeer

__all__ = ["SOURCE", "RandomWalk"]

#: The discovery source name of the walk.
SOURCE = "dht"


class RandomWalk:
    """The peers random lookups found, as a ``PeerDiscovery`` (``kad.discovery``).

    Attributes:
        walks: random lookups completed.
        found: peers offered in total.
    """

    source = SOURCE

    def __init__(self) -> None:
        self._feed = DiscoveryFeed()
        self.walks = 0
        self.found = 0

    def discovered(self) -> AsyncIterator[DiscoveredPeer]:
        """The peers of each walk, as they are found."""
        return self._feed.discovered()

    def offer(self, local: PeerId, peers: Iterable[KadPeer]) -> int:
        """Offer the peers one lookup met (``local`` is skipped).

        Returns:
            How many were offered.
        """
        self.walks += 1
        count = 0
        for peer in peers:
            if peer.peer_id == local:
                continue
            self._feed.offer(DiscoveredPeer(peer_id=peer.peer_id, addrs=peer.addrs, source=SOURCE))
            count += 1
        self.found += count
        return count

    def close(self) -> None:
        """End the readers' iteration (the service stopped)."""
        self._feed.close()
