"""Bootstrap, the DHT random walk and the dial policy together, in virtual time: nodes that
know only one seed end up with at least ``min_connections`` peers each."""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio
import attrs

from p2pstack.host import Host
from p2pstack.sim import run_virtual
from protocols.discovery import (
    Bootstrap,
    BootstrapConfig,
    DialPolicyConfig,
    Discovery,
    DiscoveryConfig,
)
from protocols.kad import Kad
from tests.protocols.kad._network import TEST_CONFIG, open_kad_host
from transports.memory import MemoryNetwork

NODES = 16
MIN_CONNECTIONS = 5


def test_nodes_that_know_one_seed_reach_the_minimum() -> None:
    walking = attrs.evolve(TEST_CONFIG, random_walk_interval=30.0)
    counts: list[int] = []
    sources: set[str] = set()

    async def main() -> None:
        net = MemoryNetwork()
        async with AsyncExitStack() as stack:
            seed = await stack.enter_async_context(open_kad_host(net, walking))
            hosts: list[Host] = []
            for _ in range(NODES):
                kad = Kad(walking)
                boot = Bootstrap(BootstrapConfig(peers=[seed.addrs[0]]))
                policy = DialPolicyConfig(min_connections=MIN_CONNECTIONS)
                discovery = Discovery([boot, kad.discovery], DiscoveryConfig(policy=policy))
                host = await stack.enter_async_context(
                    open_kad_host(net, walking, service=kad, extra=[discovery])
                )
                hosts.append(host)
            await anyio.sleep(120.0)
            for host in hosts:
                counts.append(len({c.remote_peer for c in host.connections()}))
                sources.update(p.source for p in host.service(Discovery).announced())

    run_virtual(main)
    assert min(counts) >= MIN_CONNECTIONS, counts
    assert sources == {"bootstrap", "dht"}
