"""The DHT random walk: periodic random lookups offered as the "dht" discovery source."""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio
import attrs
import pytest

from p2pstack.discovery import PeerDiscovered
from p2pstack.identity import PeerId
from protocols.discovery import DialPolicyConfig, Discovery, DiscoveryConfig
from protocols.kad import Kad, KadConfig
from tests.protocols.kad._network import TEST_CONFIG, kad, kad_network, open_kad_host
from transports.memory import MemoryNetwork

pytestmark = pytest.mark.anyio


async def test_a_walk_offers_the_peers_it_met() -> None:
    async with kad_network(6) as hosts:
        walker = kad(hosts[1])
        reader = walker.discovery.discovered()
        with anyio.fail_after(30):
            count = await walker.random_walk()
            found = [await reader.__anext__() for _ in range(count)]
        assert count >= 3
        assert {f.source for f in found} == {"dht"}
        ids = {f.peer_id for f in found}
        assert hosts[1].peer_id not in ids
        assert ids <= {h.peer_id for h in hosts}
        assert all(f.addrs for f in found)
        assert walker.discovery.walks == 1


async def test_the_walk_runs_periodically_and_feeds_discovery() -> None:
    net = MemoryNetwork()
    walking = attrs.evolve(TEST_CONFIG, random_walk_interval=0.2)
    kad_service = Kad(walking)
    discovery = Discovery(
        [kad_service.discovery], DiscoveryConfig(policy=DialPolicyConfig(min_connections=0))
    )
    async with AsyncExitStack() as stack:
        others = [await stack.enter_async_context(open_kad_host(net)) for _ in range(4)]
        for host in others[1:]:
            with anyio.fail_after(30):
                await kad(host).bootstrap([others[0].addrs[0]])
        me = await stack.enter_async_context(
            open_kad_host(net, walking, service=kad_service, extra=[discovery])
        )
        seen: set[PeerId] = set()
        with me.events.subscribe(PeerDiscovered) as sub:
            with anyio.fail_after(30):
                await kad_service.bootstrap([others[0].addrs[0]])
                while seen != {h.peer_id for h in others}:
                    event = await sub.receive()
                    assert event.peer.source == "dht"
                    seen.add(event.peer.peer_id)
        assert kad_service.discovery.walks >= 1


def test_the_interval_is_validated() -> None:
    with pytest.raises(ValueError):
        KadConfig(random_walk_interval=0)
    assert KadConfig().random_walk_interval is None
