"""``p2pstack node --dcutr``: the node answers a DCUtR exchange (here over a direct loopback
connection, as a relayed one would carry it), makes the direct connection and prints a
``holepunch`` JSON event; bad option combinations fail with one line."""

from __future__ import annotations

import anyio
from multiaddr import Multiaddr

from p2pstack.builder import open_host
from protocols.dcutr import Dcutr, HolePunchFinished
from tests.p2pstack.cli.runner import assert_one_line_error, json_node, run_cli
from transports.noise import Noise
from transports.tcp import TcpTransport
from transports.yamux import Yamux


async def _initiate(addr: str) -> HolePunchFinished:
    async with open_host(
        transports=[TcpTransport(port_reuse=True)],
        security=[Noise()],
        muxers=[Yamux()],
        services=[Dcutr(allow_private_addresses=True, auto=False, unilateral_first=False)],
        listen=["/ip4/127.0.0.1/tcp/0"],
    ) as host:
        with anyio.fail_after(20):
            conn = await host.connect(Multiaddr(addr))
            return await host.service(Dcutr).upgrade(conn)


def test_node_answers_dcutr_and_prints_the_outcome() -> None:
    args = ("--dcutr", "--dcutr-allow-private", "--listen", "/ip4/127.0.0.1/tcp/0")
    with json_node(*args) as (node, info):
        assert info["event"] == "listening"
        addr = str(info["addrs"][0])  # type: ignore[index]  # JSON event fields are untyped
        ours = anyio.run(_initiate, addr)
        assert ours.outcome == "direct", ours.reason
        event = node.wait_event(lambda e: e["event"] == "holepunch")
    assert event["outcome"] == "direct"
    assert event["role"] == "responder"
    assert event["attempts"] == 1
    assert event["transport"] == "tcp"
    assert event["rtt_ms"] is None  # only the initiator measures it
    assert event["peer_id"] and str(event["addr"]).startswith("/ip4/127.0.0.1/tcp/")


def test_allow_private_without_dcutr_fails_with_one_line() -> None:
    result = run_cli("node", "--dcutr-allow-private")
    assert_one_line_error(result, "--dcutr-allow-private needs --dcutr")
