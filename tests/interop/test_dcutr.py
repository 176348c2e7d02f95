"""DCUtR (``/libp2p/dcutr``) against js-libp2p's @libp2p/dcutr 3.0.28 and py-libp2p 0.8.1's
``libp2p.relay.circuit_v2.dcutr`` on loopback.

js ignores private and loopback addresses in CONNECT (``isPublicAndDialable``), so: with our
loopback addresses js ends the exchange without answering; with a DNS name (js takes DNS
addresses as "probably public"; ``/dns4/localhost`` still resolves to loopback) it answers
with its own addresses and dials us. js as the spec's B is started by the peer script
(``--initiate``), because js only starts DCUtR by itself on relayed connections. py refuses
the exchange whenever it already has a direct connection to the peer, as it has here.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.builder import open_host
from p2pstack.errors import NETWORK_ERRORS
from p2pstack.framing import LpDecoder
from p2pstack.host import Host
from protocols.dcutr import (
    MAX_MESSAGE_SIZE,
    PROTOCOL_ID,
    Dcutr,
    DcutrMessage,
    HolePunchFinished,
    MessageType,
    decode_message,
    encode_message,
)
from protocols.identify import Identify
from tests.interop.peers import HERE, JS_NODE, PY_PYTHON, PeerProcess, spawn
from transports.noise import Noise
from transports.tcp import TcpTransport
from transports.yamux import Yamux

pytestmark = pytest.mark.anyio
JS_DCUTR_PEER = HERE / "js" / "dcutr_peer.mjs"
PY_DCUTR_PEER = HERE / "py" / "dcutr_peer.py"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def peer_process(kind: str, log_dir: Path, *args: str) -> AsyncIterator[PeerProcess]:
    """The js or py DCUtR peer script, ended when the block exits."""
    argv = (JS_NODE, JS_DCUTR_PEER) if kind == "js" else (PY_PYTHON, PY_DCUTR_PEER)
    async with spawn(kind, [*argv, *args], log_dir=log_dir, label="dcutr") as peer:
        yield peer


def js_peer(log_dir: Path, *args: str) -> AbstractAsyncContextManager[PeerProcess]:
    return peer_process("js", log_dir, *args)


@asynccontextmanager
async def our_host(*, auto: bool = True, by_name: bool = False) -> AsyncIterator[Host]:
    """Our host; ``by_name``: offer our TCP address as ``/dns4/localhost/tcp/PORT``."""
    started: list[Host] = []

    def by_dns_name() -> list[Multiaddr]:
        return [dns_name(started[0])]

    dcutr = Dcutr(
        allow_private_addresses=True,
        auto=auto,
        address_source=by_dns_name if by_name else None,
        unilateral_first=False,  # we connect to js directly: the exchange itself is tested
    )
    async with open_host(
        transports=[TcpTransport(port_reuse=True)],
        security=[Noise()],
        muxers=[Yamux()],
        services=[Identify(), dcutr],
        listen=["/ip4/127.0.0.1/tcp/0"],
    ) as host:
        started.append(host)
        yield host


def dns_name(host: Host) -> Multiaddr:
    """Our TCP listen address as ``/dns4/localhost/tcp/PORT`` (passes js's address filter)."""
    port = str(host.listen_addrs[0]).rsplit("/", 1)[1]
    return Multiaddr(f"/dns4/localhost/tcp/{port}")


async def exchange_connect(host: Host, js_addr: str, offered: Multiaddr) -> DcutrMessage | None:
    """Open a DCUtR stream to js, send CONNECT offering ``offered``; js's answer, or ``None``
    if js ended the stream without one."""
    conn = await host.connect(js_addr)
    stream = await conn.new_stream([PROTOCOL_ID])
    await stream.send(encode_message(DcutrMessage(MessageType.CONNECT, (offered,))))
    decoder = LpDecoder(MAX_MESSAGE_SIZE)
    try:
        while True:
            bodies = decoder.feed(await stream.receive())
            if bodies:
                return decode_message(bodies[0])
    except NETWORK_ERRORS:
        return None
    finally:
        await stream.reset()


async def test_js_ignores_loopback_addresses(tmp_path: Path) -> None:
    async with js_peer(tmp_path) as js, our_host(auto=False) as host:
        listening = await js.wait_for("listening", 30)
        with anyio.fail_after(20):
            answer = await exchange_connect(host, listening["addrs"][0], host.listen_addrs[0])
        assert answer is None  # "DCUtR connect message had no dialable multiaddrs"
        with anyio.move_on_after(1):
            while True:
                event = await js.next_event(2)
                assert event.get("direction") != "outbound", "js dialed a loopback address"


async def test_js_answers_connect_with_its_addresses(tmp_path: Path) -> None:
    async with js_peer(tmp_path) as js, our_host(auto=False) as host:
        listening = await js.wait_for("listening", 30)
        with anyio.fail_after(20):
            answer = await exchange_connect(host, listening["addrs"][0], dns_name(host))
        assert answer is not None and answer.type is MessageType.CONNECT
        # js sends its listen addresses, loopback and all, each with /p2p/<its id>.
        assert sorted(str(a) for a in answer.addrs) == sorted(listening["addrs"])


async def test_we_initiate_and_js_dials_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # On failure pytest shows both sides' DCUtR logs: ours (captured) and js's (printed).
    caplog.set_level(logging.DEBUG, logger="protocols.dcutr")
    caplog.set_level(logging.DEBUG, logger="p2pstack.host")
    monkeypatch.setenv("DEBUG", "libp2p:dcutr*,libp2p:connection-manager:dial-queue*")
    async with js_peer(tmp_path) as js, our_host(auto=False, by_name=True) as host:
        try:
            await _we_initiate_and_js_dials_back(js, host)
        finally:
            log = js.stderr_path.read_text(errors="replace")[-6000:]
            print(f"js events: {js.events}\njs log (tail):\n{log}")


async def _we_initiate_and_js_dials_back(js: PeerProcess, host: Host) -> None:
    listening = await js.wait_for("listening", 30)
    with anyio.fail_after(30):
        relayed = await host.connect(listening["addrs"][0])
        result = await host.service(Dcutr).upgrade(relayed)
        assert result.outcome == "direct", result.reason
        assert result.attempts == 1 and result.rtt is not None
        # js (A) dialed the name we offered, as initiator: a new outbound connection of
        # js's; then it closed the connection the exchange ran over.
        await js.wait_for("connection", 10)  # the carrier (inbound at js)
        dialed = await js.wait_for("connection", 10)
        assert dialed["direction"] == "outbound"
        # (our host may also close js's new connection: one connection per peer)
        closed = [await js.wait_for("closed", 10)]
        if closed[0]["direction"] != "inbound":
            closed.append(await js.wait_for("closed", 10))
        assert closed[-1]["direction"] == "inbound"


async def test_js_initiates_and_we_connect_directly(tmp_path: Path) -> None:
    async with js_peer(tmp_path, "--initiate", "--timeout", "2000") as js:
        listening = await js.wait_for("listening", 30)
        async with our_host(by_name=True) as host:
            outcomes: list[HolePunchFinished] = []
            got = anyio.Event()

            def on(ev: HolePunchFinished) -> None:
                outcomes.append(ev)
                got.set()

            host.events.on(HolePunchFinished, on)
            with anyio.fail_after(30):
                await host.connect(listening["addrs"][0])
                await got.wait()
            (result,) = outcomes[:1]
            # js (B) sent CONNECT with its loopback addresses, we answered, js sent SYNC and
            # we dialed it at once, as A does.
            assert result.role == "responder" and result.outcome == "direct", result.reason
            assert result.connection is not None
            assert str(result.connection.remote_multiaddr) in {
                a.rsplit("/p2p/", 1)[0] for a in listening["addrs"]
            }


@pytest.mark.parametrize("offered", ["loopback", "dns"])
async def test_py_refuses_dcutr_over_a_direct_connection(tmp_path: Path, offered: str) -> None:
    async with peer_process("py", tmp_path) as py, our_host(auto=False) as host:
        listening = await py.wait_for("listening", 30)
        addr = host.listen_addrs[0] if offered == "loopback" else dns_name(host)
        with anyio.fail_after(20):
            answer = await exchange_connect(host, listening["addrs"][0], addr)
        assert answer is None  # "Already have direct connection": the stream is closed
        with anyio.move_on_after(1):
            while True:
                event = await py.next_event(2)
                assert event.get("direction") != "OUTBOUND", "py dialed"
