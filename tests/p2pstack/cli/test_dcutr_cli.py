"""``p2pstack node --dcutr``: the node answers a DCUtR exchange (here over a direct loopback
connection, as a relayed one would carry it), makes the direct connection and prints a
``holepunch`` JSON event; bad option combinations fail with one line."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.builder import open_host
from p2pstack.identity import Identity
from protocols.dcutr import Dcutr, HolePunchFinished, PunchSockets
from tests.p2pstack.cli.runner import NodeProcess, assert_one_line_error, json_node, run_cli
from transports.noise import Noise
from transports.quic import QuicTransport, open_udp_socket
from transports.tcp import TcpTransport
from transports.yamux import Yamux


def _ordered_identities() -> tuple[Identity, Identity]:
    """Two identities, the node's sorting below ours. DCUtR runs over a direct connection here,
    so the new direct connection competes with it in the host's one-connection-per-peer
    tie-break, which keeps the dial of the lower ID: the node's, i.e. the hole-punched one (over
    a relayed connection the direct one always wins)."""
    one, two = Identity.generate(), Identity.generate()
    if one.peer_id.to_bytes() > two.peer_id.to_bytes():
        one, two = two, one
    return one, two


async def _initiate(
    addr: str, listen: str, node: NodeProcess, identity: Identity
) -> tuple[HolePunchFinished, dict[str, object]]:
    """Our outcome as B, and the node's ``holepunch`` event (read while our host still runs:
    closing it at once could close the new connection before the node counts it)."""
    sockets = PunchSockets(open_udp_socket)
    async with open_host(
        identity=identity,
        transports=[TcpTransport(port_reuse=True), QuicTransport(socket_factory=sockets)],
        security=[Noise()],
        muxers=[Yamux()],
        services=[
            Dcutr(
                allow_private_addresses=True,
                auto=False,
                unilateral_first=False,
                udp_punch=sockets.punch,
            )
        ],
        listen=[listen],
    ) as host:
        with anyio.fail_after(20):
            conn = await host.connect(Multiaddr(addr))
            ours = await host.service(Dcutr).upgrade(conn)
        event = await anyio.to_thread.run_sync(node.wait_event, lambda e: e["event"] == "holepunch")
        return ours, event


@pytest.mark.parametrize(
    ("listen", "transport"),
    [("/ip4/127.0.0.1/tcp/0", "tcp"), ("/ip4/127.0.0.1/udp/0/quic-v1", "quic-v1")],
    ids=["tcp", "quic"],
)
def test_node_answers_dcutr_and_prints_the_outcome(
    listen: str, transport: str, tmp_path: Path
) -> None:
    node_identity, ours_identity = _ordered_identities()
    key = tmp_path / "node.key"
    node_identity.save(key)
    args = ("--key", str(key), "--dcutr", "--dcutr-allow-private", "--listen", listen)
    with json_node(*args) as (node, info):
        assert info["event"] == "listening"
        addr = str(info["addrs"][0])  # type: ignore[index]  # JSON event fields are untyped
        assert info["peer_id"] == str(node_identity.peer_id)
        ours, event = anyio.run(_initiate, addr, listen, node, ours_identity)
    assert ours.outcome == "direct", ours.reason
    assert ours.transport == transport
    assert event["outcome"] == "direct", event
    assert event["role"] == "responder"
    assert event["attempts"] == 1
    assert event["transport"] == transport
    assert event["rtt_ms"] is None  # only the initiator measures it
    proto = "tcp" if transport == "tcp" else "udp"
    assert event["peer_id"] and str(event["addr"]).startswith(f"/ip4/127.0.0.1/{proto}/")


def test_allow_private_without_dcutr_fails_with_one_line() -> None:
    result = run_cli("node", "--dcutr-allow-private")
    assert_one_line_error(result, "--dcutr-allow-private needs --dcutr")
