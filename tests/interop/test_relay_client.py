"""Circuit relay v2, our client side against js-libp2p (@libp2p/circuit-relay-v2 4.2.13) and
py-libp2p 0.8.1 (libp2p.relay.circuit_v2) relays: we listen through their relay and a js
dialer echoes with us; we dial a js and a py listener through their relay; without a reservation our
dial fails naming NO_RESERVATION. Peers: js/relay_peer.mjs, py/relay_peer.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.builder import open_host
from p2pstack.errors import DialError
from p2pstack.events import ConnectionOpened
from p2pstack.host import Host, HostConfig
from p2pstack.identity import Identity
from protocols.identify import Identify
from protocols.ping import Ping
from protocols.relay import CircuitRelayTransport
from tests.interop.peers import ECHO, JS_NODE, PY_PYTHON, PeerProcess, spawn
from tests.p2pstack.hosts import echo_handler
from transports.noise import Noise
from transports.tcp import TcpTransport
from transports.yamux import Yamux

pytestmark = pytest.mark.anyio

HERE = Path(__file__).resolve().parent
SCRIPTS = {"js": [str(JS_NODE), str(HERE / "js" / "relay_peer.mjs")]}
SCRIPTS["py"] = [str(PY_PYTHON), str(HERE / "py" / "relay_peer.py")]
TIMEOUT = 45


@pytest.fixture
def anyio_backend() -> str:
    """One backend: these tests exercise the wire against other implementations (the unit
    tests in tests/protocols/relay run on both), and CI time is shared."""
    return "asyncio"


@asynccontextmanager
async def relay_peer(kind: str, args: Sequence[str], tmp_path: Path) -> AsyncIterator[PeerProcess]:
    """Run ``relay_peer`` of ``kind`` with ``args``; terminated when the block ends."""
    async with spawn(kind, [*SCRIPTS[kind], *args], log_dir=tmp_path, label="relay") as peer:
        yield peer


@asynccontextmanager
async def relay(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """A relay of ``kind``; yields its address (``.../p2p/<id>``)."""
    async with relay_peer(kind, ["--role", "relay"], tmp_path) as peer:
        listening = await peer.wait_for("listening", TIMEOUT)
        yield str(listening["addrs"][0])


@asynccontextmanager
async def our_host() -> AsyncIterator[Host]:
    async with open_host(
        transports=[TcpTransport(), CircuitRelayTransport()],
        security=[Noise()],
        muxers=[Yamux()],
        services=[Identify(), Ping()],
        config=HostConfig(upgrade_timeout=30.0),
    ) as host:
        host.set_stream_handler(ECHO, echo_handler, allow_limited=True)
        yield host


@pytest.mark.parametrize("relay_kind", ["js", "py"])
async def test_listen_dial_and_refusal_through_relay(relay_kind: str, tmp_path: Path) -> None:
    """One relay of each kind serves the three exchanges (a relay start costs seconds)."""
    async with relay(relay_kind, tmp_path) as relay_addr, our_host() as host:
        await js_dialer_reaches_us(host, relay_addr, tmp_path)
        await we_reach_listener("js", host, relay_addr, tmp_path)
        await we_reach_listener("py", host, relay_addr, tmp_path)
        await dial_without_reservation_says_no_reservation(host, relay_addr)


async def js_dialer_reaches_us(host: Host, relay_addr: str, tmp_path: Path) -> None:
    with anyio.fail_after(TIMEOUT):
        bound = await host.listen([f"{relay_addr}/p2p-circuit"])
    assert bound, "no circuit address after the reservation"
    target = f"{relay_addr}/p2p-circuit/p2p/{host.peer_id}"
    assert target in [str(a) for a in host.addrs]
    dial_args = ["--role", "dialer", "--dial", target, "--bytes", "4096"]
    with host.events.subscribe(ConnectionOpened) as opened:
        async with relay_peer("js", dial_args, tmp_path) as dialer:
            echo = await dialer.wait_for("echo", TIMEOUT)
        assert echo == {"event": "echo", "ok": True, "bytes": 4096, "limited": True}
        with anyio.fail_after(TIMEOUT):
            conn = (await opened.receive()).connection
    assert conn.limited and conn.direction == "inbound"
    assert conn.remote_multiaddr == Multiaddr(f"{relay_addr}/p2p-circuit/p2p/{conn.remote_peer}")
    async with relay_peer("py", dial_args, tmp_path) as py_dialer:
        done = await py_dialer.collect_until_done(TIMEOUT)
    assert done.get("echo") == [{"event": "echo", "ok": True, "bytes": 4096}], done


async def we_reach_listener(kind: str, host: Host, relay_addr: str, tmp_path: Path) -> None:
    """A ``kind`` peer reserves at the relay; we dial its circuit address and echo."""
    listen_args = ["--role", "listener", "--relay", relay_addr]
    async with relay_peer(kind, listen_args, tmp_path) as listener:
        listening = await listener.wait_for("listening", TIMEOUT)
        circuit = str(listening["addrs"][0])
        assert circuit.startswith(f"{relay_addr}/p2p-circuit/p2p/")
        with anyio.fail_after(TIMEOUT):
            conn = await host.connect(circuit)
            assert conn.limited and conn.direction == "outbound"
            assert conn.info.transport == "p2p-circuit"
            stream = await host.new_stream(conn.remote_peer, ECHO, allow_limited=True)
            payload = bytes(range(256)) * 8
            await stream.send(payload)
            await stream.send_eof()
            received = b""
            while len(received) < len(payload):
                received += await stream.receive()
            await stream.aclose()
        assert received == payload
        if kind == "py":  # the py listener reports each stream it echoed
            served = await listener.next_event(TIMEOUT)
            assert served == {"event": "served", "bytes": len(payload)}


async def dial_without_reservation_says_no_reservation(host: Host, relay_addr: str) -> None:
    nobody = Identity.generate().peer_id
    with anyio.fail_after(TIMEOUT), pytest.raises(DialError, match="NO_RESERVATION"):
        await host.connect(f"{relay_addr}/p2p-circuit/p2p/{nobody}")
