"""TCP + /tls/1.0.0 (https://github.com/libp2p/specs/blob/master/tls/tls.md) + yamux or mplex with
js-libp2p (@libp2p/tls 3.1.10) and py-libp2p 0.8.1, both dial directions: connect, ping, identify
and echo, and where the muxer was chosen (ALPN with js; multistream-select with py, whose ALPN
offers only ``libp2p``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
import pytest

from p2pstack.builder import open_host
from p2pstack.host import Host, HostConfig
from p2pstack.identity import Identity, PeerId
from p2pstack.interfaces import RawConnection, SecureConnection
from p2pstack.roots.defaults import make_muxers
from protocols.identify import Identify
from protocols.perf import Perf
from protocols.ping import Ping
from tests.interop.conftest import MUXER_IDS, Peer, opened_connection
from tests.interop.peers import ECHO, PEERS
from tests.p2pstack.hosts import echo_handler, echo_once
from transports.tcp import TcpTransport
from transports.tls import PROTOCOL_ID, Tls

pytestmark = pytest.mark.anyio

ECHO_BYTES = 1 << 20
PINGS = 5
#: What the muxer agreed inside the TLS handshake is, per remote kind: js offers and selects
#: muxer ids in ALPN (so it skips the multistream-select round); py offers only "libp2p".
EARLY = {"js": True, "py": False}
#: yamux on both anyio backends, mplex on asyncio only: the TLS driver is the same for both
#: muxers, and this keeps the module's run time down (peer start-up dominates it).
CASES = pytest.mark.parametrize(
    ("muxer", "anyio_backend"), [("yamux", "asyncio"), ("yamux", "trio"), ("mplex", "asyncio")]
)


class RecordingTls:
    """``Tls`` that remembers each secured connection's ``early_muxer`` (ALPN's choice)."""

    def __init__(self) -> None:
        self.inner = Tls()
        self.early: list[str | None] = []

    @property
    def protocol_id(self) -> str:
        return self.inner.protocol_id

    async def secure_outbound(
        self,
        conn: RawConnection,
        identity: Identity,
        *,
        remote_peer: PeerId | None,
        muxers: Sequence[str] = (),
    ) -> SecureConnection:
        secure = await self.inner.secure_outbound(
            conn, identity, remote_peer=remote_peer, muxers=muxers
        )
        self.early.append(secure.early_muxer)
        return secure

    async def secure_inbound(
        self, conn: RawConnection, identity: Identity, *, muxers: Sequence[str] = ()
    ) -> SecureConnection:
        secure = await self.inner.secure_inbound(conn, identity, muxers=muxers)
        self.early.append(secure.early_muxer)
        return secure


@asynccontextmanager
async def tls_host(*muxers: str) -> AsyncIterator[tuple[Host, RecordingTls]]:
    tls = RecordingTls()
    async with open_host(
        transports=[TcpTransport()],
        security=[tls],
        muxers=make_muxers(muxers),
        services=[Identify(), Ping(), Perf(serve=True)],
        listen=["/ip4/127.0.0.1/tcp/0"],
        config=HostConfig(upgrade_timeout=30.0),
    ) as host:
        host.set_stream_handler(ECHO, echo_handler)
        yield host, tls


def _peer_args(muxer: str) -> list[str]:
    # js also gets mplex in its list so that its ALPN offer is more than one muxer deep.
    return [
        "--security",
        "tls",
        "--muxer",
        muxer,
        "--muxer",
        "mplex" if muxer == "yamux" else "yamux",
    ]


@CASES
@pytest.mark.parametrize("kind", PEERS)
async def test_they_dial_us(kind: str, muxer: str, peer: Peer) -> None:
    async with tls_host(muxer) as (host, tls):
        actions = f"ping:{PINGS},identify,echo:{ECHO_BYTES}"
        args = ["--dial", str(host.addrs[0]), *_peer_args(muxer), "--actions", actions]
        with host.subscribe() as host_events:
            async with peer(kind, args) as remote:
                connected = await remote.wait_for("connected", 60)
                assert connected["peer_id"] == str(host.peer_id)
                assert connected["muxer"] == MUXER_IDS[muxer]
                assert connected.get("encryption", PROTOCOL_ID) == PROTOCOL_ID
                events = await remote.collect_until_done(60)
                conn = await opened_connection(host_events)
        assert conn.direction == "inbound"
        assert conn.security_protocol == PROTOCOL_ID
        assert conn.muxer_protocol == MUXER_IDS[muxer]
        assert str(conn.remote_peer) != str(host.peer_id)
        assert [p["seq"] for p in events["ping"]] == list(range(PINGS))
        (info,) = events["identify"]
        assert info["peer_id"] == str(host.peer_id)
        assert info["agent_version"] == host.agent_version
        assert info["public_key_matches_peer_id"] is True
        (echo,) = events["echo"]
        assert echo["bytes"] == ECHO_BYTES and echo["ok"] is True
        assert tls.early == [MUXER_IDS[muxer] if EARLY[kind] else None]


@CASES
@pytest.mark.parametrize("kind", PEERS)
async def test_we_dial_them(kind: str, muxer: str, peer: Peer) -> None:
    async with peer(kind, ["--listen", "/ip4/127.0.0.1/tcp/0", *_peer_args(muxer)]) as remote:
        listening = await remote.wait_for("listening", 60)
        addr = next(a for a in listening["addrs"] if "/ip4/127.0.0.1/" in a)
        async with tls_host(muxer) as (host, tls):
            with anyio.fail_after(60):
                conn = await host.connect(addr)
                assert str(conn.remote_peer) == listening["peer_id"]
                assert conn.security_protocol == PROTOCOL_ID
                assert conn.muxer_protocol == MUXER_IDS[muxer]
                inbound = await remote.wait_for("inbound", 30)
                assert inbound["peer_id"] == str(host.peer_id)
                assert inbound["muxer"] == MUXER_IDS[muxer]
                assert inbound.get("encryption", PROTOCOL_ID) == PROTOCOL_ID

                rtts = await host.service(Ping).ping(conn.remote_peer, count=PINGS)
                assert len(rtts) == PINGS
                info = await host.service(Identify).identify(conn.remote_peer)
                payload = os.urandom(ECHO_BYTES)
                echoed = await echo_once(await host.new_stream(conn.remote_peer, [ECHO]), payload)
        assert info.peer_id == conn.remote_peer
        assert info.public_key is not None and conn.remote_peer.matches(info.public_key)
        assert "libp2p" in info.agent_version
        assert ECHO in info.protocols
        assert echoed == payload
        assert tls.early == [MUXER_IDS[muxer] if EARLY[kind] else None]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("we_dial", [True, False], ids=["we-dial", "js-dials"])
async def test_alpn_client_preference_decides(we_dial: bool, peer: Peer) -> None:
    # We prefer yamux, js prefers mplex: the TLS client's order decides (tls.md: the server
    # picks the first of the client's protocols it supports), in ALPN, without a muxer round.
    js_args = ["--security", "tls", "--muxer", "mplex", "--muxer", "yamux"]
    expected = MUXER_IDS["yamux" if we_dial else "mplex"]
    async with tls_host("yamux", "mplex") as (host, tls):
        if we_dial:
            async with peer("js", ["--listen", "/ip4/127.0.0.1/tcp/0", *js_args]) as remote:
                listening = await remote.wait_for("listening", 60)
                with anyio.fail_after(60):
                    conn = await host.connect(listening["addrs"][0])
                    inbound = await remote.wait_for("inbound", 30)
                assert conn.muxer_protocol == inbound["muxer"] == expected
        else:
            args = ["--dial", str(host.addrs[0]), *js_args, "--actions", "ping:1"]
            async with peer("js", args) as remote:
                connected = await remote.wait_for("connected", 60)
                await remote.collect_until_done(60)
            assert connected["muxer"] == expected
    assert tls.early == [expected]
