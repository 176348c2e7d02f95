"""Connections to js-libp2p and py-libp2p survive 60 s of idleness in both directions: yamux
keep-alives and the peers' own periodic pings are answered, and nothing reconnects."""

from __future__ import annotations

import anyio
import pytest

from protocols.ping import Ping
from tests.interop.conftest import OurHost, Peer, opened_connection
from tests.interop.peers import PEERS

pytestmark = pytest.mark.anyio

IDLE_SECONDS = 60


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_idle_connections_survive(our_host: OurHost, peer: Peer) -> None:
    """Eight connections (each peer dialing us and us dialing each peer, over yamux and over
    mplex) idle at the same time, so the test costs one idle period."""
    with anyio.fail_after(IDLE_SECONDS + 120):
        async with anyio.create_task_group() as tg:
            for muxer in ("yamux", "mplex"):
                tg.start_soon(_scenario, muxer, our_host, peer)


async def _scenario(muxer: str, our_host: OurHost, peer: Peer) -> None:
    async with anyio.create_task_group() as tg:
        for kind in PEERS:
            tg.start_soon(_they_dial, kind, muxer, our_host, peer)
            tg.start_soon(_we_dial, kind, muxer, our_host, peer)


async def _they_dial(kind: str, muxer: str, our_host: OurHost, peer: Peer) -> None:
    # One host per dialer, so that its only inbound connection is that dialer's.
    async with our_host([muxer]) as host:
        actions = f"ping:1,idle:{IDLE_SECONDS},ping:1"
        args = ["--dial", str(host.addrs[0]), "--muxer", muxer, "--actions", actions]
        with host.subscribe() as host_events:
            async with peer(kind, args) as remote:
                await remote.wait_for("connected", 60)
                before = await opened_connection(host_events)
                idle = await remote.wait_for("idle", IDLE_SECONDS + 60)
                assert idle["still_connected"] is True
                assert not before.is_closed
                assert host.connections(before.remote_peer) == [before]
                events = await remote.collect_until_done(60)
                assert len(events["ping"]) == 1  # the ping after the idle period


async def _we_dial(kind: str, muxer: str, our_host: OurHost, peer: Peer) -> None:
    args = ["--listen", "/ip4/127.0.0.1/tcp/0", "--muxer", muxer]
    async with peer(kind, args) as remote, our_host([muxer]) as host:
        listening = await remote.wait_for("listening", 60)
        addr = next(a for a in listening["addrs"] if "/ip4/127.0.0.1/" in a)
        conn = await host.connect(addr)
        await host.service(Ping).ping(conn.remote_peer)
        # The idleness under test: we send nothing for the whole period.
        await anyio.sleep(IDLE_SECONDS)
        assert not conn.is_closed
        assert host.connections(conn.remote_peer) == [conn]
        with anyio.fail_after(10):
            await host.service(Ping).ping(conn.remote_peer)
        assert host.connections(conn.remote_peer) == [conn]
