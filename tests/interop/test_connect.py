"""Connect over Noise + yamux/mplex with js-libp2p and py-libp2p, both directions: 20 pings and
identify checked field by field."""

from __future__ import annotations

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.multiaddrs import split_peer_id
from protocols.identify import Identify
from protocols.ping import Ping
from tests.interop.conftest import MUXER_IDS, OurHost, Peer, opened_connection
from tests.interop.peers import ECHO, PEERS

pytestmark = pytest.mark.anyio

OUR_PROTOCOLS = {"/ipfs/ping/1.0.0", "/ipfs/id/1.0.0", "/perf/1.0.0", ECHO}


def _strip_p2p(text: str) -> str:
    addr, _ = split_peer_id(Multiaddr(text))
    return str(addr)


@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
@pytest.mark.parametrize("kind", PEERS)
async def test_they_dial_us(kind: str, muxer: str, our_host: OurHost, peer: Peer) -> None:
    async with our_host([muxer]) as host:
        args = ["--dial", str(host.addrs[0]), "--muxer", muxer, "--actions", "ping:20,identify"]
        with host.subscribe() as host_events:
            async with peer(kind, args) as remote:
                connected = await remote.wait_for("connected", 60)
                assert connected["muxer"] == MUXER_IDS[muxer]
                events = await remote.collect_until_done(120)
                pings = events["ping"]
                assert [p["seq"] for p in pings] == list(range(20))
                assert all(isinstance(p["rtt_ms"], int | float) and p["rtt_ms"] >= 0 for p in pings)

                (info,) = events["identify"]
                assert connected["peer_id"] == str(host.peer_id)
                conn = await opened_connection(host_events)
                assert conn.direction == "inbound"
                assert conn.muxer_protocol == MUXER_IDS[muxer]
                assert info["peer_id"] == str(host.peer_id)
                assert info["agent_version"] == host.agent_version
                assert info["protocol_version"] == host.protocol_version
                assert set(info["protocols"]) >= OUR_PROTOCOLS
                assert str(host.listen_addrs[0]) in {_strip_p2p(a) for a in info["listen_addrs"]}
                # what we observed of them is what we told them
                assert _strip_p2p(str(info["observed_addr"])) == str(conn.remote_multiaddr)


@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
@pytest.mark.parametrize("kind", PEERS)
async def test_we_dial_them(kind: str, muxer: str, our_host: OurHost, peer: Peer) -> None:
    args = ["--listen", "/ip4/127.0.0.1/tcp/0", "--muxer", muxer]
    async with peer(kind, args) as remote:
        listening = await remote.wait_for("listening", 60)
        addr = next(a for a in listening["addrs"] if "/ip4/127.0.0.1/" in a)
        async with our_host([muxer]) as host:
            with anyio.fail_after(60):
                conn = await host.connect(addr)
                assert str(conn.remote_peer) == listening["peer_id"]
                assert conn.muxer_protocol == MUXER_IDS[muxer]
                inbound = await remote.wait_for("inbound", 30)
                assert inbound["peer_id"] == str(host.peer_id)
                assert inbound["muxer"] == MUXER_IDS[muxer]

                rtts = await host.service(Ping).ping(conn.remote_peer, count=20)
                assert len(rtts) == 20 and all(0 <= r < 5 for r in rtts)

                info = await host.service(Identify).identify(conn.remote_peer)
            assert info.peer_id == conn.remote_peer
            assert info.public_key is not None and conn.remote_peer.matches(info.public_key)
            assert "libp2p" in info.agent_version
            assert info.protocol_version
            assert {"/ipfs/ping/1.0.0", "/ipfs/id/1.0.0", ECHO} <= set(info.protocols)
            assert _strip_p2p(addr) in {str(a) for a in info.listen_addrs}
            if info.observed_addr is not None:
                assert info.observed_addr == conn.local_multiaddr
            # identify filled the peerstore
            assert "/ipfs/ping/1.0.0" in host.peerstore.protocols(conn.remote_peer)
