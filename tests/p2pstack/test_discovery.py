from __future__ import annotations

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.discovery import DiscoveredPeer, DiscoveryFeed, PeerDiscovery
from p2pstack.identity import Identity

pytestmark = pytest.mark.anyio


def found(n: int) -> list[DiscoveredPeer]:
    return [
        DiscoveredPeer(
            peer_id=Identity.generate().peer_id,
            addrs=(Multiaddr(f"/ip4/127.0.0.1/tcp/{4000 + i}"),),
            source="test",
        )
        for i in range(n)
    ]


class Static:
    source = "static"

    def __init__(self, feed: DiscoveryFeed) -> None:
        self.feed = feed

    def discovered(self):  # type: ignore[no-untyped-def]  # checked against the Protocol below
        return self.feed.discovered()


async def test_first_reader_gets_the_backlog_then_live_offers() -> None:
    feed = DiscoveryFeed()
    peers = found(3)
    feed.offer(peers[0])
    got: list[DiscoveredPeer] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def read() -> None:
                async for peer in feed.discovered():
                    got.append(peer)

            tg.start_soon(read)
            await anyio.wait_all_tasks_blocked()
            feed.offer(peers[1])
            feed.offer(peers[2])
            feed.close()
    assert got == peers
    feed.offer(peers[0])  # ignored once closed
    assert [p async for p in feed.discovered()] == []


async def test_every_reader_sees_live_offers_and_a_slow_one_drops_the_oldest() -> None:
    feed = DiscoveryFeed(max_size=2)
    first, second = feed.discovered(), feed.discovered()
    peers = found(3)
    with anyio.fail_after(5):
        for peer in peers:
            feed.offer(peer)
        feed.close()
        assert [p async for p in first] == peers[1:]
        assert [p async for p in second] == peers[1:]
    assert feed.dropped == 2
    third = feed.discovered()
    await third.aclose()  # type: ignore[attr-defined]  # readers can stop early


def test_feed_size_must_be_positive_and_static_is_a_discoverer() -> None:
    with pytest.raises(ValueError, match="max_size"):
        DiscoveryFeed(max_size=0)
    discoverer: PeerDiscovery = Static(DiscoveryFeed())
    assert discoverer.source == "static"
