"""Data over real peers, both directions: 64 MiB each way on one stream verified by hash, and 100
concurrent streams each echoing 64 KiB."""

from __future__ import annotations

import hashlib
import os

import anyio
import pytest

from p2pstack.events import ConnectionOpened
from p2pstack.host import Host
from p2pstack.identity import PeerId
from tests.interop.conftest import MUXER_IDS, OurHost, Peer, opened_connection
from tests.interop.peers import ECHO, PEERS
from tests.p2pstack.hosts import echo_once

pytestmark = pytest.mark.anyio

BIG = 64 * 1024 * 1024
SMALL = 64 * 1024
STREAMS = 100


async def _echo_many(host: Host, peer: PeerId) -> None:
    failures: list[str] = []

    async def one(i: int) -> None:
        payload = os.urandom(SMALL)
        stream = await host.new_stream(peer, [ECHO])
        if await echo_once(stream, payload) != payload:
            failures.append(f"stream {i} echoed different bytes")

    async with anyio.create_task_group() as tg:
        for i in range(STREAMS):
            tg.start_soon(one, i)
    assert failures == []


@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
@pytest.mark.parametrize("kind", PEERS)
async def test_we_dial_them(kind: str, muxer: str, our_host: OurHost, peer: Peer) -> None:
    async with peer(kind, ["--listen", "/ip4/127.0.0.1/tcp/0", "--muxer", muxer]) as remote:
        listening = await remote.wait_for("listening", 60)
        addr = next(a for a in listening["addrs"] if "/ip4/127.0.0.1/" in a)
        async with our_host([muxer]) as host:
            with anyio.fail_after(240):
                conn = await host.connect(addr)
                assert conn.muxer_protocol == MUXER_IDS[muxer]
                payload = os.urandom(BIG)
                stream = await host.new_stream(conn.remote_peer, [ECHO])
                echoed = await echo_once(stream, payload)
                assert len(echoed) == BIG
                assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()
                await _echo_many(host, conn.remote_peer)
                # the connection that carried all of it is still the one we have
                assert host.connections(conn.remote_peer) == [conn]


@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
@pytest.mark.parametrize("kind", PEERS)
async def test_they_dial_us(kind: str, muxer: str, our_host: OurHost, peer: Peer) -> None:
    async with our_host([muxer]) as host:
        actions = f"echo:{BIG},streams:{STREAMS}:{SMALL}"
        args = ["--dial", str(host.addrs[0]), "--muxer", muxer, "--actions", actions]
        with host.subscribe() as host_events:
            async with peer(kind, args) as remote:
                connected = await remote.wait_for("connected", 60)
                assert connected["muxer"] == MUXER_IDS[muxer]
                await opened_connection(host_events)
                echo = await remote.wait_for("echo", 240)
                assert echo["bytes"] == BIG and echo["ok"] is True
                streams = await remote.wait_for("streams", 240)
                assert streams["count"] == STREAMS and streams["ok"] is True
                await remote.wait_for("done", 60)
            # Everything went over the one connection the peer opened: no other was opened
            # (the peer may hang up after "done", so count openings rather than look).
            later = []
            while True:
                try:
                    later.append(host_events.receive_nowait())
                except anyio.WouldBlock:
                    break
            assert not [e for e in later if isinstance(e, ConnectionOpened)]
