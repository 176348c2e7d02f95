"""AutoNAT v1 and v2 against js-libp2p (@libp2p/autonat 3.0.28, @libp2p/autonat-v2 2.0.15) on
loopback. js never dials private or loopback addresses, so with js as the server the exchange
is checked up to that filter (its refusal codes); with us as the server (private-address
policy switched on), js's requests, built with js's own codecs, get real dial backs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.addresses import AddressConfig
from p2pstack.builder import open_host
from p2pstack.framing import encode_lp, read_lp
from p2pstack.host import Host, HostConfig
from p2pstack.identity import Identity
from protocols.autonat import (
    PROTOCOL_ID,
    AutoNAT,
    AutoNATConfig,
    AutoNATv2,
    NoDialResponse,
    ServerLimits,
    V1Dial,
    V1Status,
    decode_v1,
    encode_v1,
)
from protocols.identify import Identify
from tests.interop.peers import HERE, JS_NODE, PY_PYTHON, Event, PeerProcess, spawn
from tests.protocols.autonat.test_autonat_hosts import Dialer
from transports.noise import Noise
from transports.tcp import TcpTransport
from transports.yamux import Yamux

pytestmark = pytest.mark.anyio

SCRIPTS = {
    "js": (JS_NODE, HERE / "js" / "autonat_peer.mjs"),
    "py": (PY_PYTHON, HERE / "py" / "autonat_peer.py"),
}
#: Our server with the private-address policy switched on (loopback is all we may use).
SERVER = AutoNATConfig(client=False, limits=ServerLimits(allow_private=True))
#: Our client, never probing by itself (the tests call ``probe``).
CLIENT = AutoNATConfig(server=False, allow_private=True)


@pytest.fixture
def anyio_backend() -> str:
    """The peers are subprocesses: one backend is enough (and halves the time)."""
    return "asyncio"


def _log_path(log_dir: Path, kind: str) -> Path:
    log_dir.mkdir(parents=True, exist_ok=True)
    return log_dir / f"{kind}-autonat-{len(list(log_dir.iterdir()))}.stderr"


@asynccontextmanager
async def autonat_peer(kind: str, args: Sequence[str], log_dir: Path) -> AsyncIterator[PeerProcess]:
    async with spawn(kind, SCRIPTS[kind] + tuple(args), log_dir=log_dir, label="autonat") as peer:
        yield peer


@asynccontextmanager
async def our_node(config: AutoNATConfig, dialer: Dialer | None = None) -> AsyncIterator[Host]:
    async with open_host(
        transports=[TcpTransport()],
        security=[Noise()],
        muxers=[Yamux()],
        services=[Identify(), AutoNAT(config, dialer=dialer), AutoNATv2(config, dialer=dialer)],
        listen=["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.2/tcp/0"],
        config=HostConfig(addresses=AddressConfig(distinct_by="peer")),
    ) as host:
        yield host


async def test_js_server_refuses_loopback(tmp_path: Path) -> None:
    async with autonat_peer("js", ["--mode", "serve"], tmp_path) as js, our_node(CLIENT) as host:
        listening = await js.wait_for("listening", 60)
        target = Multiaddr(f"{listening['addrs'][0]}")
        peer = (await host.connect(target)).remote_peer
        mine = host.listen_addrs[0]
        with anyio.fail_after(60):
            answer = await host.service(AutoNAT).probe(peer, [mine])
            async with await host.new_stream(peer, [PROTOCOL_ID]) as stream:
                forged = V1Dial(peer_id=Identity.generate().peer_id.to_bytes(), addrs=(mine,))
                await stream.send(encode_lp(encode_v1(forged)))
                spoofed = decode_v1(await read_lp(stream, max_size=8192))
            with pytest.raises(NoDialResponse):  # js throws on private IPs and just closes
                await host.service(AutoNATv2).probe(peer, [mine])
    assert (answer.status, answer.text) == (V1Status.E_DIAL_REFUSED, "no dialable addresses")
    # (the ignore below: a DIAL_RESPONSE here)
    assert (spoofed.status, spoofed.text) == (V1Status.E_BAD_REQUEST, "peer id mismatch")  # type: ignore[union-attr]


async def _ask(
    mode: str,
    host: Host,
    ask: Sequence[str],
    log: Path,
    *,
    extra: Sequence[str] = (),
    kind: str = "js",
) -> dict[str, list[Event]]:
    args = ["--mode", mode, "--dial", str(host.addrs[0]), *extra]
    for addr in ask:
        args += ["--ask", addr]
    async with autonat_peer(kind, args, log) as peer:
        return await peer.collect_until_done(60)


async def test_js_dial_requests(tmp_path: Path) -> None:
    dialer = Dialer()
    async with our_node(SERVER, dialer) as host:
        # The js peer listens on a fixed pair of loopback ports it asks about.
        ports = _free_ports(2)
        own = f"/ip4/127.0.0.1/tcp/{ports[0]}"
        other_ip = f"/ip4/127.0.0.2/tcp/{ports[1]}"
        listen = ["--listen", own, "--listen", other_ip]
        ok = await _ask("ask-v1", host, [own], tmp_path, extra=listen)
        third_party = await _ask("ask-v1", host, [other_ip], tmp_path, extra=listen)
        forged = await _ask(
            "ask-v1", host, [own], tmp_path, extra=[*listen, "--peer-id", str(host.peer_id)]
        )
        v2 = await _ask("ask-v2", host, [own], tmp_path, extra=listen)
        v2_other = await _ask("ask-v2", host, [other_ip], tmp_path, extra=listen)
    (resp,) = ok["v1_response"]
    assert (resp["status"], resp["addr"]) == ("OK", own)
    (resp,) = third_party["v1_response"]
    assert (resp["status"], resp["status_text"]) == (
        "E_DIAL_REFUSED",
        "no dialable address on the observed IP",
    )
    (resp,) = forged["v1_response"]
    assert (resp["status"], resp["status_text"]) == (
        "E_BAD_REQUEST",
        "peer ID is not the requester's",
    )
    assert v2["dial_back"] == [{"event": "dial_back", "nonce_matches": True}]
    (resp,) = v2["v2_response"]
    assert (resp["status"], resp["addr_idx"], resp["dial_status"]) == ("OK", 0, "OK")
    assert "dial_data_request" not in v2
    (asked,) = v2_other["dial_data_request"]
    assert (asked["addr_idx"], asked["num_bytes"]) == (0, 30_000)
    assert v2_other["dial_back"] == [{"event": "dial_back", "nonce_matches": True}]
    assert v2_other["v2_response"][0]["dial_status"] == "OK"
    assert dialer.opened == 3  # the refused and forged requests never dialed


def _free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


async def test_py_server(tmp_path: Path) -> None:
    async with autonat_peer("py", ["--mode", "serve"], tmp_path) as py, our_node(CLIENT) as host:
        listening = await py.wait_for("listening", 60)
        target = Multiaddr(f"{listening['addrs'][0]}/p2p/{listening['peer_id']}")
        peer = (await host.connect(target)).remote_peer
        mine = host.listen_addrs[0]
        other = next(a for a in host.listen_addrs if "127.0.0.2" in str(a))
        with anyio.fail_after(60):
            ok = await host.service(AutoNAT).probe(peer, [mine])
            third_party = await host.service(AutoNAT).probe(peer, [other])
            dead = Multiaddr(f"/ip4/127.0.0.1/tcp/{_free_ports(1)[0]}")
            not_dialed = await host.service(AutoNAT).probe(peer, [dead])
    assert (ok.status, ok.addr) == (V1Status.OK, mine)
    # py-libp2p 0.8.1 "dials back" with its own host, which reuses the connection already
    # open to us: any address on our IP is reported reachable, even a closed port.
    assert (not_dialed.status, not_dialed.addr) == (V1Status.OK, dead)
    assert (third_party.status, third_party.text) == (
        V1Status.E_DIAL_REFUSED,
        "no advertised address matches the observed IP",
    )


async def test_py_client(tmp_path: Path) -> None:
    dialer = Dialer()
    async with our_node(SERVER, dialer) as host:
        port = _free_ports(1)[0]
        own = f"/ip4/127.0.0.1/tcp/{port}"
        listen = ["--listen", own]
        ok = await _ask("ask", host, [own], tmp_path, extra=listen, kind="py")
        other = await _ask("ask", host, [f"/ip4/127.0.0.2/tcp/{port}"], tmp_path, kind="py")
        dead = await _ask(
            "ask", host, [f"/ip4/127.0.0.1/tcp/{_free_ports(1)[0]}"], tmp_path, kind="py"
        )
    assert ok["v1_response"][0]["status"] == "OK"
    assert ok["v1_response"][0]["addr"] == own
    assert other["v1_response"][0]["status"] == "E_DIAL_REFUSED"
    assert dead["v1_response"][0]["status"] == "E_DIAL_ERROR"
    assert dialer.opened == 2
