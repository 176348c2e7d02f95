"""Circuit relay v2 role combinations with p2pstack on two of the three roles, against
js-libp2p (@libp2p/circuit-relay-v2 4.2.13) and py-libp2p 0.8.1 (libp2p.relay.circuit_v2):

- our relay, our listener, a js/py dialer; our relay, a js/py listener, our dialer (one test per
  peer kind, one relay for both directions);
- a js/py relay between our listener and our dialer.

Peers: js/relay_client_peer.mjs, py/relay_client_peer.py (clients), js/relay_peer.mjs,
py/relay_peer.py (relays). The other combinations are in test_relay_hop.py and
test_relay_client.py."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from p2pstack.events import ConnectionOpened
from p2pstack.host import Host
from protocols.ping import Ping
from protocols.relay import CircuitOpened
from tests.interop.peers import ECHO
from tests.interop.relay_peers import relay_host, run_relay_client
from tests.interop.test_relay_client import our_host, relay

pytestmark = pytest.mark.anyio

KINDS = ("js", "py")
#: Generous: the peers start a Node or Python runtime on a loaded machine.
TIMEOUT = 60.0


@pytest.fixture
def anyio_backend() -> str:
    """One backend: the peers are what is tested here (tests/protocols/relay runs both)."""
    return "asyncio"


async def echo_through(host: Host, circuit: str, size: int) -> None:
    """Dial ``circuit``, check the connection is limited, echo ``size`` bytes on it."""
    conn = await host.connect(circuit)
    assert conn.limited and conn.info.transport == "p2p-circuit"
    stream = await host.new_stream(conn.remote_peer, ECHO, allow_limited=True)
    payload = bytes(range(256)) * (size // 256)
    await stream.send(payload)
    received = b""
    while len(received) < len(payload):
        received += await stream.receive()
    await stream.aclose()
    assert received == payload


@pytest.mark.parametrize("kind", KINDS)
async def test_our_relay_and_node_with_a_peer_on_either_end(kind: str, tmp_path: Path) -> None:
    async with relay_host() as our_relay, our_host() as ours:
        addr = str(our_relay.addrs[0])
        with (
            our_relay.events.subscribe(CircuitOpened) as opened,
            ours.events.subscribe(ConnectionOpened) as accepted,
        ):
            # Our listener, their dialer.
            with anyio.fail_after(TIMEOUT):
                bound = await ours.listen([f"{addr}/p2p-circuit"])
            assert [str(a) for a in bound] == [f"{addr}/p2p-circuit"]
            args = ["--relay", addr, "--dial", str(ours.peer_id), "--size", "20000"]
            async with run_relay_client(kind, args, log_dir=tmp_path) as dialer:
                echoed = await dialer.wait_for("echoed", TIMEOUT)
            assert echoed["bytes"] == 20000
            with anyio.fail_after(TIMEOUT):
                first = await opened.receive()
                conn = (await accepted.receive()).connection
                while conn.remote_peer != first.source:  # first the connection to the relay
                    conn = (await accepted.receive()).connection
            assert first.target == ours.peer_id
            assert conn.limited and conn.direction == "inbound"
            assert conn.remote_peer == first.source
            # Their listener, our dialer.
            listen_args = ["--relay", addr, "--listen"]
            async with run_relay_client(kind, listen_args, log_dir=tmp_path) as listener:
                listening = await listener.wait_for("listening", TIMEOUT)
                target = str(listening["peer_id"])
                with anyio.fail_after(TIMEOUT):
                    await echo_through(ours, f"{addr}/p2p-circuit/p2p/{target}", 8192)
                    second = await opened.receive()
            assert (str(second.source), str(second.target)) == (str(ours.peer_id), target)


@pytest.mark.parametrize("kind", KINDS)
async def test_their_relay_between_our_nodes(kind: str, tmp_path: Path) -> None:
    async with relay(kind, tmp_path) as relay_addr, our_host() as listener, our_host() as dialer:
        with anyio.fail_after(TIMEOUT):
            bound = await listener.listen([f"{relay_addr}/p2p-circuit"])
            assert bound, "no circuit address after the reservation"
            circuit = f"{relay_addr}/p2p-circuit/p2p/{listener.peer_id}"
            await echo_through(dialer, circuit, 8192)
            assert len(await dialer.service(Ping).ping(listener.peer_id)) == 1
            inbound = listener.connections(dialer.peer_id)
            assert [c.limited for c in inbound] == [True]
