"""What a peer can make us store through identify is bounded per peer and expires once it is
gone (the 58 KB identify message that used to cost ~83 KiB forever)."""

from __future__ import annotations

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.builder import open_host
from p2pstack.events import PeerConnected, PeerDisconnected
from p2pstack.host import HostConfig
from p2pstack.identity import Identity, PeerId
from p2pstack.peerstore import Peerstore, PeerstoreLimits, forget_if_anonymous
from protocols.identify import Identify, PeerIdentified
from tests.p2pstack.hosts import echo_handler, stack
from transports.memory import MemoryTransport

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_identify_flood_is_bounded_and_expires() -> None:
    clock = Clock()
    limits = PeerstoreLimits(max_bytes_per_peer=16 * 1024)
    store = Peerstore(limits=limits, clock=clock)
    sec_a, mux_a = stack()
    sec_b, mux_b = stack()
    hostile = HostConfig(agent_version="a" * 5000)
    async with (
        open_host(
            transports=[MemoryTransport()],
            security=sec_a,
            muxers=mux_a,
            services=[Identify()],
            listen=["/memory/0"],
            peerstore=store,
        ) as a,
        open_host(
            transports=[MemoryTransport()],
            security=sec_b,
            muxers=mux_b,
            services=[Identify()],
            listen=["/memory/0"],
            config=hostile,
        ) as b,
    ):
        for i in range(280):  # ~58 KB of protocol IDs in b's identify message
            b.set_stream_handler(f"/flood/{i}/" + "x" * 200, echo_handler)
        identified = anyio.Event()
        gone = anyio.Event()
        a.events.on(PeerIdentified, lambda _event: identified.set())
        a.events.on(PeerDisconnected, lambda _event: gone.set())
        with anyio.fail_after(20):
            await a.connect(b.addrs[0])
            await identified.wait()
            kept = store.protocols(b.peer_id)
            assert 0 < len(kept) < 280
            assert store.statistics().approx_bytes <= limits.max_bytes_per_peer
            assert store.is_pinned(b.peer_id)
            clock.now += 10 * 3600  # connected: nothing expires
            assert store.protocols(b.peer_id) == kept
            await a.disconnect(b.peer_id)
            await gone.wait()
        assert not store.is_pinned(b.peer_id)
        clock.now += 3 * 3600  # past the connected-address TTL and forget_after
        assert b.peer_id not in store
        assert store.statistics().approx_bytes == 0


async def _disconnect_inbound(*, b_identifies: bool) -> tuple[Peerstore, PeerId]:
    """``b`` dials ``a`` (which runs identify), then ``a`` drops it; returns a's peerstore and
    b's peer ID."""
    store = Peerstore()
    sec_a, mux_a = stack()
    sec_b, mux_b = stack()
    async with (
        open_host(
            transports=[MemoryTransport()],
            security=sec_a,
            muxers=mux_a,
            services=[Identify()],
            listen=["/memory/0"],
            peerstore=store,
        ) as a,
        open_host(
            transports=[MemoryTransport()],
            security=sec_b,
            muxers=mux_b,
            services=[Identify()] if b_identifies else [],
            listen=[],
        ) as b,
    ):
        identified = anyio.Event()
        connected, gone = anyio.Event(), anyio.Event()
        a.events.on(PeerIdentified, lambda _event: identified.set())
        a.events.on(PeerConnected, lambda _event: connected.set())
        a.events.on(PeerDisconnected, lambda _event: gone.set())
        with anyio.fail_after(10):
            await b.connect(a.addrs[0].encapsulate(f"/p2p/{a.peer_id}"))
            if b_identifies:
                await identified.wait()
            await connected.wait()
            assert store.public_key(b.peer_id) is not None
            await a.disconnect(b.peer_id)
            await gone.wait()
        return store, b.peer_id


async def test_inbound_peer_that_never_identified_costs_nothing_once_gone() -> None:
    store, peer = await _disconnect_inbound(b_identifies=False)
    assert peer not in store
    assert store.statistics().approx_bytes == 0


async def test_identified_inbound_peer_is_remembered() -> None:
    store, peer = await _disconnect_inbound(b_identifies=True)
    assert peer in store
    assert store.protocols(peer)


def test_forget_if_anonymous_keeps_pinned_and_known_peers() -> None:
    store = Peerstore()
    identity = Identity.generate()
    key, peer = identity.public_key, identity.peer_id
    store.set_public_key(peer, key)
    store.pin(peer, "protected")
    assert not forget_if_anonymous(store, peer)
    store.unpin(peer, "protected")
    store.set_protocols(peer, ["/ipfs/ping/1.0.0"])
    assert not forget_if_anonymous(store, peer)
    store.set_protocols(peer, [])
    store.add_addrs(peer, [Multiaddr("/ip4/127.0.0.1/tcp/4001")], 60.0)
    assert not forget_if_anonymous(store, peer)
    store.clear_addrs(peer)
    assert forget_if_anonymous(store, peer)
    assert peer not in store
    assert not forget_if_anonymous(store, peer)
