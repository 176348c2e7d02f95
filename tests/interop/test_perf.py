"""/perf/1.0.0 against js-libp2p and py-libp2p peers, both directions: byte counts exact."""

from __future__ import annotations

import anyio
import pytest

from protocols.perf import Perf
from tests.interop.conftest import OurHost, Peer
from tests.interop.peers import PEERS

pytestmark = pytest.mark.anyio

UP = 8 * 1024 * 1024
DOWN = 16 * 1024 * 1024


@pytest.mark.parametrize("kind", PEERS)
async def test_we_measure_them(kind: str, our_host: OurHost, peer: Peer) -> None:
    async with peer(kind, ["--listen", "/ip4/127.0.0.1/tcp/0"]) as remote:
        listening = await remote.wait_for("listening", 60)
        addr = next(a for a in listening["addrs"] if "/ip4/127.0.0.1/" in a)
        async with our_host(["yamux"]) as host:
            with anyio.fail_after(120):
                conn = await host.connect(addr)
                result = await host.service(Perf).measure(
                    conn.remote_peer, upload_bytes=UP, download_bytes=DOWN
                )
            assert (result.upload_bytes, result.download_bytes) == (UP, DOWN)
            assert result.total_seconds > 0


@pytest.mark.parametrize("kind", PEERS)
async def test_they_measure_us(kind: str, our_host: OurHost, peer: Peer) -> None:
    async with our_host(["yamux"]) as host:
        args = ["--dial", str(host.addrs[0]), "--actions", f"perf:{UP}:{DOWN}"]
        async with peer(kind, args) as remote:
            events = await remote.collect_until_done(120)
            (perf,) = events["perf"]
            assert (perf["upload_bytes"], perf["download_bytes"]) == (UP, DOWN)
