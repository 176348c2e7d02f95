"""js-libp2p dialing p2pstack with either muxer preferred, against p2pstack listeners with either
preference: inlined muxer negotiation must end with both sides on the same muxer (see
docs/architecture.md, "Inlined muxer negotiation and the js-libp2p difference")."""

from __future__ import annotations

import pytest

from tests.interop.conftest import MUXER_IDS, OurHost, Peer, opened_connection

pytestmark = pytest.mark.anyio

ORDERS = [["yamux", "mplex"], ["mplex", "yamux"]]


@pytest.mark.parametrize("ours", ORDERS, ids=["we-prefer-yamux", "we-prefer-mplex"])
@pytest.mark.parametrize("theirs", ORDERS, ids=["js-prefers-yamux", "js-prefers-mplex"])
async def test_js_dialer_and_we_agree(
    ours: list[str], theirs: list[str], our_host: OurHost, peer: Peer
) -> None:
    async with our_host(ours) as host:
        muxer_args = [arg for name in theirs for arg in ("--muxer", name)]
        args = ["--dial", str(host.addrs[0]), *muxer_args, "--actions", "ping:3,echo:1048576"]
        with host.subscribe() as host_events:
            async with peer("js", args) as remote:
                connected = await remote.wait_for("connected", 60)
                events = await remote.collect_until_done(60)
            conn = await opened_connection(host_events)
        assert len(events["ping"]) == 3
        assert events["echo"][0]["ok"] is True
        # Both ends agree, and the responder's (our) first choice is the one used.
        assert connected["muxer"] == conn.muxer_protocol == MUXER_IDS[ours[0]]


@pytest.mark.parametrize("theirs", ORDERS, ids=["js-prefers-yamux", "js-prefers-mplex"])
async def test_we_dial_js_with_our_preference(
    theirs: list[str], our_host: OurHost, peer: Peer
) -> None:
    """As initiator we choose from our own list among the muxers the js responder offers."""
    muxer_args = [arg for name in theirs for arg in ("--muxer", name)]
    async with peer("js", ["--listen", "/ip4/127.0.0.1/tcp/0", *muxer_args]) as remote:
        listening = await remote.wait_for("listening", 60)
        addr = next(a for a in listening["addrs"] if "/ip4/127.0.0.1/" in a)
        for ours in ORDERS:
            async with our_host(ours) as host:
                conn = await host.connect(addr)
                inbound = await remote.wait_for("inbound", 30)
                assert inbound["muxer"] == conn.muxer_protocol == MUXER_IDS[ours[0]]
