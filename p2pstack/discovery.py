"""The peer-discovery interface: what every way of finding peers (a bootstrap list, mDNS,
rendezvous, a DHT random walk) hands to the host.

A discoverer is any object with a ``source`` name and a ``discovered()`` method returning an
async iterator of ``DiscoveredPeer``; most are also ``Service``s (they need the host to announce
themselves or open streams). The discovery service in ``protocols.discovery`` runs several of
them, records what they find in the peerstore, emits ``PeerDiscovered`` on the host's event bus
and, by policy, dials.

``DiscoveryFeed`` is the buffer a discoverer usually puts behind ``discovered()``: ``offer`` never
blocks (a full feed drops its oldest entry), and each call to ``discovered()`` is one reader.

Example::

    class Static:
        source = "static"

        def __init__(self, peers: list[DiscoveredPeer]) -> None:
            self._feed = DiscoveryFeed()
            for peer in peers:
                self._feed.offer(peer)

        def discovered(self) -> AsyncIterator[DiscoveredPeer]:
            return self._feed.discovered()
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

import attrs

from p2pstack.sync import Signal

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.identity import PeerId

__all__ = ["DiscoveredPeer", "DiscoveryFeed", "PeerDiscovered", "PeerDiscovery"]

#: Discoveries a feed holds for a slow reader before it drops the oldest.
DEFAULT_FEED_SIZE = 1024


@attrs.frozen(kw_only=True)
class DiscoveredPeer:
    """A peer some discoverer found.

    Attributes:
        peer_id: the peer.
        addrs: the addresses it was found with (without ``/p2p/``), possibly none (a DHT walk
            may learn only the ID).
        source: the discoverer's name: ``"bootstrap"``, ``"mdns"``, ``"rendezvous"``, ``"dht"``
            or an application's own.
    """

    peer_id: PeerId
    addrs: tuple[Multiaddr, ...] = ()
    source: str


@attrs.frozen(kw_only=True)
class PeerDiscovered:
    """Host event: a discoverer found ``peer`` (emitted by the discovery service once it has
    recorded the addresses in the peerstore)."""

    peer: DiscoveredPeer


class PeerDiscovery(Protocol):
    """Something that finds peers.

    ``discovered()`` may be called before the discoverer is started (it then yields once there
    is something to yield); it ends when the discoverer stops for good.
    """

    @property
    def source(self) -> str: ...

    def discovered(self) -> AsyncIterator[DiscoveredPeer]: ...


class DiscoveryFeed:
    """A bounded buffer of discoveries for one or more readers.

    Args:
        max_size: discoveries kept per reader when it falls behind (the oldest are dropped and
            counted in ``dropped``).

    Raises:
        ValueError: ``max_size`` is below 1.
    """

    def __init__(self, max_size: int = DEFAULT_FEED_SIZE) -> None:
        if max_size < 1:
            raise ValueError("a discovery feed needs max_size >= 1")
        self._max = max_size
        self._readers: list[deque[DiscoveredPeer]] = []
        self._backlog: deque[DiscoveredPeer] = deque(maxlen=max_size)
        self._signal = Signal()
        self._closed = False
        #: Discoveries dropped because a reader fell ``max_size`` behind.
        self.dropped = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, peer: DiscoveredPeer) -> None:
        """Hand ``peer`` to every reader (or keep it for the first one). Never blocks; ignored
        once the feed is closed."""
        if self._closed:
            return
        queues = self._readers or [self._backlog]
        for queue in queues:
            if len(queue) == self._max:
                self.dropped += 1
            queue.append(peer)
        self._signal.set()

    def close(self) -> None:
        """End every reader's iteration once it has drained what it holds. Idempotent."""
        self._closed = True
        self._signal.set()

    def discovered(self) -> AsyncIterator[DiscoveredPeer]:
        """A new reader of discoveries from now on (the first reader also gets those offered
        before any reader existed). It ends when the feed is closed and it has drained; call
        its ``aclose()`` to stop reading early."""
        queue: deque[DiscoveredPeer] = deque(maxlen=self._max)
        if not self._readers:
            queue.extend(self._backlog)
            self._backlog.clear()
        self._readers.append(queue)
        return _Reader(self, queue)

    def _forget(self, queue: deque[DiscoveredPeer]) -> None:
        if queue in self._readers:
            self._readers.remove(queue)


class _Reader:
    __slots__ = ("_feed", "_queue")

    def __init__(self, feed: DiscoveryFeed, queue: deque[DiscoveredPeer]) -> None:
        self._feed = feed
        self._queue = queue

    def __aiter__(self) -> _Reader:
        return self

    async def __anext__(self) -> DiscoveredPeer:
        while not self._queue:
            if self._feed.closed:
                self._feed._forget(self._queue)
                raise StopAsyncIteration
            await self._feed._signal.wait()
        return self._queue.popleft()

    async def aclose(self) -> None:
        self._feed._forget(self._queue)
