"""The Discovery service and the bootstrap list over memory and TCP hosts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.builder import open_host
from p2pstack.discovery import DiscoveredPeer, DiscoveryFeed, PeerDiscovered
from p2pstack.events import PeerConnected
from p2pstack.host import Host
from p2pstack.identity import Identity, PeerId
from p2pstack.interfaces import Service
from p2pstack.multiaddrs import with_peer_id
from p2pstack.sim import run_virtual
from protocols.discovery import (
    Bootstrap,
    BootstrapConfig,
    DialPolicyConfig,
    DialPolicyStatistics,
    Discovery,
    DiscoveryConfig,
)
from tests.p2pstack.hosts import memory_hosts
from tests.protocols.discovery.dns_server import dns_server
from transports.noise import Noise
from transports.tcp import TcpTransport
from transports.yamux import Yamux

pytestmark = pytest.mark.anyio


class Static:
    source = "static"

    def __init__(self, peers: list[DiscoveredPeer]) -> None:
        self.feed = DiscoveryFeed()
        for peer in peers:
            self.feed.offer(peer)

    def discovered(self) -> AsyncIterator[DiscoveredPeer]:
        return self.feed.discovered()


def found(host: Host, source: str = "static") -> DiscoveredPeer:
    return DiscoveredPeer(peer_id=host.peer_id, addrs=tuple(host.bound_addrs), source=source)


def config(minimum: int) -> DiscoveryConfig:
    return DiscoveryConfig(policy=DialPolicyConfig(min_connections=minimum, backoff_base=0.2))


async def wait_connected(host: Host, peers: set[PeerId]) -> None:
    with anyio.fail_after(20), host.events.subscribe(PeerConnected) as sub:
        while not peers <= {c.remote_peer for c in host.connections()}:
            await sub.receive()


async def test_records_announces_and_dials_up_to_the_minimum() -> None:
    async with memory_hosts(3) as peers:
        source = Static([])
        service = Discovery([source], config(2))
        async with memory_hosts(1, services=[[service]]) as (me,):
            with me.events.subscribe(PeerDiscovered) as sub:
                for peer in [*peers, peers[0]]:
                    source.feed.offer(found(peer))
                source.feed.offer(found(me))  # ourselves: ignored
                with anyio.fail_after(10):
                    events = [await sub.receive() for _ in range(3)]
            assert [e.peer.peer_id for e in events] == [p.peer_id for p in peers]
            assert me.peerstore.addrs(peers[2].peer_id) == list(peers[2].bound_addrs)
            await wait_connected(me, {peers[0].peer_id, peers[1].peer_id})
            stats = service.statistics()
            assert stats.discovered == 4
            assert stats.announced == 3
            assert stats.policy.dials == 2
            assert [f.peer_id for f in service.announced()] == [p.peer_id for p in peers]
            assert not me.connections(peers[2].peer_id)
            # One connection ends: the policy dials again to keep two.
            await me.disconnect(peers[0].peer_id)
            with anyio.fail_after(20), me.events.subscribe(PeerConnected) as sub:
                while len({c.remote_peer for c in me.connections()}) < 2:
                    await sub.receive()
            assert service.statistics().policy.dials == 3


async def test_bootstrap_dials_at_start_and_when_connections_fall() -> None:
    async with memory_hosts(1) as (boot,):
        addr = with_peer_id(boot.addrs[0], boot.peer_id)
        bootstrap = Bootstrap(BootstrapConfig(peers=[addr], retry_base=0.2))
        service = Discovery([bootstrap], config(0))  # eager: dialed even with min 0
        async with memory_hosts(1, services=[[service]]) as (me,):
            await wait_connected(me, {boot.peer_id})
            await me.disconnect(boot.peer_id)
            await wait_connected(me, {boot.peer_id})
            assert bootstrap.rounds >= 2
        assert bootstrap.errors == {}


async def test_bootstrap_resolves_dnsaddr_over_tcp() -> None:

    def tcp_host(services: list[Service]) -> AbstractAsyncContextManager[Host]:
        return open_host(
            transports=[TcpTransport()],
            security=[Noise()],
            muxers=[Yamux()],
            services=services,
            listen=["/ip4/127.0.0.1/tcp/0"],
        )

    async with tcp_host([]) as boot:
        zone = {
            "_dnsaddr.boot.test": ["dnsaddr=/dnsaddr/nodes.boot.test"],
            "_dnsaddr.nodes.boot.test": [f"dnsaddr={with_peer_id(boot.addrs[0], boot.peer_id)}"],
        }
        async with dns_server(zone) as (server, queries):
            entries = ["/dnsaddr/boot.test", "/dnsaddr/missing.test"]
            bootstrap = Bootstrap(BootstrapConfig(peers=entries, nameserver=server))
            service = Discovery([bootstrap], config(1))
            async with tcp_host([service]) as me:
                with me.events.subscribe(PeerDiscovered) as sub:
                    await wait_connected(me, {boot.peer_id})
                    with anyio.fail_after(10):
                        event = await sub.receive()
                assert event.peer.peer_id == boot.peer_id
                assert event.peer.source == "bootstrap"
                assert list(event.peer.addrs) == boot.listen_addrs
            assert bootstrap.errors == {"DnsNameNotFound": 1}
            assert "_dnsaddr.nodes.boot.test" in queries


def test_bootstrap_entries_are_checked() -> None:
    peer = Identity.generate().peer_id
    BootstrapConfig(peers=[f"/dnsaddr/x.test/p2p/{peer}", f"/ip4/1.2.3.4/tcp/1/p2p/{peer}"])
    with pytest.raises(ValueError, match="p2p"):
        BootstrapConfig(peers=["/ip4/1.2.3.4/tcp/1"])
    for bad in ["not an address", "/", "/dnsaddr/x.test/tcp/1", f"/p2p/{peer}"]:
        with pytest.raises(ValueError):
            BootstrapConfig(peers=[bad])


def test_backoff_of_a_dead_peer_in_virtual_time() -> None:
    ghost = Identity.generate().peer_id
    dead = DiscoveredPeer(peer_id=ghost, addrs=(Multiaddr("/memory/999999"),), source="static")
    bootstrap = Bootstrap(BootstrapConfig(peers=[f"/memory/999998/p2p/{ghost}"]))
    # One peer from two sources has one backoff: 1 s doubling to 300 s (the defaults). The
    # bootstrap list offers it again after 5 s, doubling to 300 s, while no peer is connected.
    service = Discovery([Static([dead]), bootstrap], DiscoveryConfig())
    stats: list[object] = []

    async def main() -> None:
        async with memory_hosts(1, services=[[service]]):
            await anyio.sleep(1000.0)
            stats.append(service.statistics().policy)
            stats.append(bootstrap.rounds)

    run_virtual(main)
    policy, rounds = stats
    # Dials at 0, 1, 3, 7, 15, 31, 63, 127, 255, 511, 811 s.
    assert isinstance(policy, DialPolicyStatistics)
    assert policy.dial_failures == 11
    # Offers at 0, 5, 15, 35, 75, 155, 315, 615, 915 s.
    assert rounds == 9


async def test_announcement_records_are_bounded() -> None:
    ids = [Identity.generate().peer_id for _ in range(5)]
    source = Static([DiscoveredPeer(peer_id=p, source="static") for p in ids])
    limits = DialPolicyConfig(min_connections=0, max_candidates=2)
    service = Discovery([source], DiscoveryConfig(policy=limits, dial=False))
    async with memory_hosts(1, services=[[service]]) as (me,):
        with me.events.subscribe(PeerDiscovered) as sub, anyio.fail_after(10):
            while service.statistics().announced < len(ids):
                await sub.receive()
        assert [f.peer_id for f in service.announced()] == ids[-2:]
        assert service.statistics().policy.candidates == 0  # dial=False: no candidates


async def test_addresses_of_one_discovery_are_bounded() -> None:
    peer = Identity.generate().peer_id
    many = tuple(Multiaddr(f"/ip4/127.0.0.1/tcp/{1000 + i}") for i in range(50))
    source = Static([DiscoveredPeer(peer_id=peer, addrs=many + many, source="static")])
    service = Discovery([source], DiscoveryConfig(dial=False, max_addrs=4))
    async with memory_hosts(1, services=[[service]]) as (me,):
        with me.events.subscribe(PeerDiscovered) as sub, anyio.fail_after(10):
            while not service.announced():
                await sub.receive()
        (found,) = service.announced()
        assert found.addrs == many[:4]
        assert sorted(map(str, me.peerstore.addrs(peer))) == sorted(map(str, many[:4]))
