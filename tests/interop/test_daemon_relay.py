"""Circuit relay v2 through ``p2pstack daemon`` processes, driven by ``DaemonClient`` as the
interop suite drives them: a CONNECT through a relay without a reservation fails naming
``NO_RESERVATION``; after a RESERVE written by hand on a hop stream the same CONNECT succeeds and
a stream runs over the relayed connection; ``-relay=false`` serves no hop protocol."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from p2pstack.framing import LpDecoder, encode_lp
from p2pstack.p2pd import DaemonClient, DaemonError
from protocols.relay import HOP_PROTOCOL_ID, HopMessage, HopType, Status, decode_hop, encode_hop
from tests.interop.daemons import run_daemon
from tests.interop.test_daemon_client import ECHO_B, daemons, echo, echo_roundtrip

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_connect_through_our_relay(tmp_path: Path) -> None:
    async with (
        daemons("p2pstack", 1, [], tmp_path) as (dr,),
        daemons("p2pstack", 2, ["-noListenAddrs"], tmp_path) as (da, db),
        DaemonClient(da.control) as a,
        DaemonClient(db.control) as b,
        DaemonClient(dr.control) as r,
    ):
        with anyio.fail_after(120):
            relay, target = await r.identify(), await b.identify()
            circuit = relay.addrs[0].encapsulate(f"/p2p/{relay.peer_id}/p2p-circuit")
            await b.connect(relay.peer_id, relay.addrs)
            with pytest.raises(DaemonError, match="NO_RESERVATION"):
                await a.connect(target.peer_id, [circuit])

            _info, hop = await b.stream_open(relay.peer_id, [HOP_PROTOCOL_ID])
            async with hop:
                await hop.send(encode_lp(encode_hop(HopMessage(type=HopType.RESERVE))))
                decoder, answers = LpDecoder(4096), list[bytes]()
                while not answers:
                    answers = decoder.feed(await hop.receive())
                assert decode_hop(answers[0]).status is Status.OK

            await b.stream_handler([ECHO_B], echo)
            await a.connect(target.peer_id, [circuit])
            assert target.peer_id in {p.peer_id for p in await a.list_peers()}
            _info, stream = await a.stream_open(target.peer_id, [ECHO_B])
            async with stream:
                assert await echo_roundtrip(stream, b"over the relay") == b"over the relay"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_relay_false_serves_no_hop(tmp_path: Path) -> None:
    async with (
        run_daemon("p2pstack", ["-relay=false"], log_dir=tmp_path) as dr,
        daemons("p2pstack", 1, ["-noListenAddrs"], tmp_path) as (db,),
        DaemonClient(dr.control) as r,
        DaemonClient(db.control) as b,
    ):
        with anyio.fail_after(60):
            relay = await r.identify()
            await b.connect(relay.peer_id, relay.addrs)
            with pytest.raises(DaemonError):
                await b.stream_open(relay.peer_id, [HOP_PROTOCOL_ID], timeout=10)
