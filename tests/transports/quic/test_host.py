"""Hosts on QUIC: ping and identify through the default stack, a host listening on TCP and
QUIC at once, and the dialer choosing QUIC for a peer that has both."""

from __future__ import annotations

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.multiaddrs import with_peer_id
from p2pstack.peerstore import ADDR_TTL_CONNECTED
from p2pstack.roots.defaults import open_default_host
from protocols.identify import Identify
from protocols.ping import Ping

pytestmark = pytest.mark.anyio

QUIC4 = "/ip4/127.0.0.1/udp/0/quic-v1"
TCP4 = "/ip4/127.0.0.1/tcp/0"


@pytest.mark.parametrize("listen", [QUIC4, "/ip6/::1/udp/0/quic-v1"])
async def test_ping_and_identify(listen: str) -> None:
    async with open_default_host(listen=[listen]) as server, open_default_host() as client:
        with anyio.fail_after(20):
            conn = await client.connect(server.addrs[0])
            assert conn.info.transport == "quic-v1"
            rtts = await client.service(Ping).ping(server.peer_id, count=3)
            assert len(rtts) == 3
            info = await client.service(Identify).identify(server.peer_id)
        assert server.listen_addrs[0] in info.listen_addrs
        assert info.observed_addr is not None
        assert "/udp/" in str(info.observed_addr) and str(info.observed_addr).endswith("quic-v1")


async def test_tcp_and_quic_at_once_and_quic_preferred() -> None:
    async with open_default_host(listen=[TCP4, QUIC4]) as server, open_default_host() as client:
        kinds = sorted("udp" if "/udp/" in str(a) else "tcp" for a in server.listen_addrs)
        assert kinds == ["tcp", "udp"]
        client.peerstore.add_addrs(server.peer_id, server.listen_addrs, ADDR_TTL_CONNECTED)
        with anyio.fail_after(20):
            conn = await client.dial_peer(server.peer_id)
            assert conn.info.transport == "quic-v1"
            await client.service(Ping).ping(server.peer_id)
            tcp = next(a for a in server.listen_addrs if "/tcp/" in str(a))
            # The TCP listener serves too (a second, explicit dial over it).
            async with open_default_host() as other:
                tcp_conn = await other.connect(with_peer_id(tcp, server.peer_id))
                assert tcp_conn.info.transport == "tcp"


async def test_falls_back_to_tcp_when_quic_is_dead() -> None:
    async with open_default_host(listen=[TCP4, QUIC4]) as server, open_default_host() as client:
        tcp = next(a for a in server.listen_addrs if "/tcp/" in str(a))
        dead_quic = Multiaddr("/ip4/127.0.0.1/udp/9/quic-v1")
        client.peerstore.add_addrs(server.peer_id, [dead_quic, tcp], ADDR_TTL_CONNECTED)
        with anyio.fail_after(30):
            conn = await client.dial_peer(server.peer_id)
        assert conn.info.transport == "tcp"
