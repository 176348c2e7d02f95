"""The QUIC transport between two of our own endpoints on loopback (IPv4 and IPv6)."""

from __future__ import annotations

import os
import time

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.errors import P2PError, PeerIdMismatch, TransportError
from p2pstack.identity import Identity, make_certificate
from p2pstack.interfaces import UpgradedConnection
from p2pstack.testing import check_upgraded_transport
from p2pstack.upgrader import DefaultUpgrader
from tests.transports.quic.conftest import LOCAL4, LOCAL6, connected_pair
from transports.noise import Noise
from transports.quic import QuicConfig, QuicTransport, parse_quic_multiaddr
from transports.yamux import Yamux

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("listen", [LOCAL4, LOCAL6])
async def test_conformance(listen: str) -> None:
    upgrader = DefaultUpgrader(Identity.generate(), [Noise()], [Yamux()])
    config = QuicConfig(handshake_timeout=2.0)  # bounds the dial to the closed listener
    async with (
        QuicTransport(identity=Identity.generate(), config=config) as dialer,
        QuicTransport(identity=Identity.generate(), config=config) as listener,
    ):
        await check_upgraded_transport(dialer, upgrader, listener, upgrader, Multiaddr(listen))


def test_parse() -> None:
    assert parse_quic_multiaddr(Multiaddr("/ip4/1.2.3.4/udp/5/quic-v1")) == ("1.2.3.4", 5)
    assert parse_quic_multiaddr(Multiaddr("/ip6/::1/udp/5/quic-v1")) == ("::1", 5)
    assert parse_quic_multiaddr(Multiaddr("/ip4/1.2.3.4/udp/5/quic")) is None
    assert parse_quic_multiaddr(Multiaddr("/ip4/1.2.3.4/tcp/5")) is None
    peer = Identity.generate().peer_id
    assert parse_quic_multiaddr(Multiaddr(f"/ip4/1.2.3.4/udp/5/quic-v1/p2p/{peer}")) == (
        "1.2.3.4",
        5,
    )


@pytest.mark.parametrize("listen", [LOCAL4, LOCAL6])
async def test_connection_describes_both_ends(listen: str) -> None:
    async with connected_pair(listen) as (dialed, accepted, listener):
        assert dialed.info.transport == accepted.info.transport == "quic-v1"
        assert dialed.info.muxer == "quic"
        assert dialed.info.remote_addr == listener.multiaddrs[0]
        assert accepted.info.remote_peer.matches(accepted.info.remote_public_key)
        assert dialed.info.remote_peer != accepted.info.remote_peer


async def test_wrong_expected_peer_is_rejected() -> None:
    async with (
        QuicTransport(identity=Identity.generate()) as server,
        QuicTransport(identity=Identity.generate()) as client,
    ):
        listener = await server.listen(Multiaddr(LOCAL4))
        with anyio.fail_after(10), pytest.raises(PeerIdMismatch):
            await client.dial(listener.multiaddrs[0], remote_peer=Identity.generate().peer_id)


async def test_not_started_transport_refuses() -> None:
    transport = QuicTransport(identity=Identity.generate())
    with pytest.raises(TransportError, match="not started"):
        await transport.listen(Multiaddr(LOCAL4))


async def test_dial_to_nothing_times_out() -> None:
    config = QuicConfig(handshake_timeout=0.5)
    async with QuicTransport(identity=Identity.generate(), config=config) as client:
        with anyio.fail_after(5), pytest.raises(P2PError):
            await client.dial(Multiaddr("/ip4/127.0.0.1/udp/9/quic-v1"), remote_peer=None)


async def test_echo_both_ways() -> None:
    payload = os.urandom(1 << 20)
    async with connected_pair() as (dialed, accepted, _):
        out = await dialed.muxed.open_stream()
        await out.send(b"hello")
        with anyio.fail_after(20):
            inc = await accepted.muxed.accept_stream()
            assert await inc.receive() == b"hello"

            async def echo() -> None:
                while True:
                    try:
                        await inc.send(await inc.receive())
                    except anyio.EndOfStream:
                        await inc.send_eof()
                        return

            async def write() -> None:
                for i in range(0, len(payload), 50_000):
                    await out.send(payload[i : i + 50_000])
                await out.send_eof()

            async with anyio.create_task_group() as tg:
                tg.start_soon(echo)
                tg.start_soon(write)
                got = bytearray()
                while True:
                    try:
                        got += await out.receive()
                    except anyio.EndOfStream:
                        break
        assert got == payload


async def test_dials_leave_from_the_listening_port() -> None:
    async with (
        QuicTransport(identity=Identity.generate()) as server,
        QuicTransport(identity=Identity.generate()) as client,
    ):
        listener = await server.listen(Multiaddr(LOCAL4))
        own = await client.listen(Multiaddr(LOCAL4))
        accepted: list[UpgradedConnection] = []

        async def accept() -> None:
            accepted.append(await listener.accept())

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(accept)
                dialed = await client.dial(listener.multiaddrs[0], remote_peer=None)
        # The server sees the client's listen address: the one it could dial back.
        assert accepted[0].info.remote_addr == own.multiaddrs[0]
        assert dialed.info.local_addr == own.multiaddrs[0]
        await dialed.muxed.aclose()


async def test_certificate_is_renewed_after_half_its_lifetime() -> None:
    identity = Identity.generate()
    async with (
        QuicTransport(identity=identity) as server,
        QuicTransport(identity=Identity.generate()) as client,
    ):
        listener = await server.listen(Multiaddr(LOCAL4))
        # Valid from an hour and 100 s ago until an hour from now: past half its lifetime.
        old = make_certificate(identity.private_key, lifetime=3700, now=time.time() - 100)
        server._key = old
        accepted: list[UpgradedConnection] = []

        async def accept() -> None:
            accepted.append(await listener.accept())

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(accept)
                dialed = await client.dial(listener.multiaddrs[0], remote_peer=identity.peer_id)
        assert server._key is not old
        await dialed.muxed.aclose()
