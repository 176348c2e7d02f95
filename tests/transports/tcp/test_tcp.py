"""Tests for the TCP transport: the conformance suite on IPv4 and IPv6 loopback, address
handling, dial errors and socket options."""

from __future__ import annotations

import socket

import anyio
import pytest
from anyio.abc import SocketAttribute
from multiaddr import Multiaddr

from p2pstack.errors import TransportError
from p2pstack.testing import check_transport
from transports.tcp import TcpConnection, TcpTransport

PEER = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.anyio
async def test_conformance_ipv4() -> None:
    await check_transport(TcpTransport(), Multiaddr("/ip4/127.0.0.1/tcp/0"))


@pytest.mark.anyio
@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_conformance_ipv6() -> None:
    await check_transport(TcpTransport(), Multiaddr("/ip6/::1/tcp/0"))


@pytest.mark.parametrize(
    ("addr", "dial", "listen"),
    [
        ("/ip4/127.0.0.1/tcp/4001", True, True),
        ("/ip6/::1/tcp/4001", True, True),
        (f"/ip4/127.0.0.1/tcp/4001/p2p/{PEER}", True, True),
        ("/dns4/localhost/tcp/4001", True, False),
        ("/dns6/localhost/tcp/4001", True, False),
        ("/dns/example.com/tcp/4001", True, False),
        ("/ip4/127.0.0.1/tcp/4001/ws", False, False),
        ("/ip4/127.0.0.1/udp/4001/quic-v1", False, False),
        ("/ip4/127.0.0.1/udp/4001", False, False),
        ("/ip4/127.0.0.1", False, False),
        ("/memory/4", False, False),
        (f"/p2p/{PEER}", False, False),
    ],
)
def test_can_dial_and_listen(addr: str, dial: bool, listen: bool) -> None:
    transport = TcpTransport()
    assert transport.can_dial(Multiaddr(addr)) is dial
    assert transport.can_listen(Multiaddr(addr)) is listen


async def _closed_port() -> int:
    listener = await TcpTransport().listen(Multiaddr("/ip4/127.0.0.1/tcp/0"))
    port = int(listener.multiaddrs[0].value_for_protocol("tcp") or 0)
    await listener.aclose()
    return port


@pytest.mark.anyio
async def test_dial_refused_names_the_address() -> None:
    addr = Multiaddr(f"/ip4/127.0.0.1/tcp/{await _closed_port()}")
    with anyio.fail_after(5), pytest.raises(TransportError, match=str(addr)):
        await TcpTransport().dial(addr)


@pytest.mark.anyio
async def test_dial_wrong_address_kind() -> None:
    with pytest.raises(TransportError, match="not a TCP address"):
        await TcpTransport().dial(Multiaddr("/ip4/127.0.0.1/tcp/1/ws"))


@pytest.mark.anyio
async def test_listen_on_dns_is_refused() -> None:
    with pytest.raises(TransportError, match="cannot listen"):
        await TcpTransport().listen(Multiaddr("/dns4/localhost/tcp/0"))


@pytest.mark.anyio
async def test_listen_on_taken_port_fails() -> None:
    transport = TcpTransport()
    listener = await transport.listen(Multiaddr("/ip4/127.0.0.1/tcp/0"))
    try:
        with pytest.raises(TransportError, match="cannot listen"):
            await transport.listen(listener.multiaddrs[0])
    finally:
        await listener.aclose()


async def _pair(transport: TcpTransport, addr: str) -> tuple[TcpConnection, TcpConnection]:
    listener = await transport.listen(Multiaddr("/ip4/127.0.0.1/tcp/0"))
    port = listener.multiaddrs[0].value_for_protocol("tcp")
    try:
        async with anyio.create_task_group() as tg:
            accepted: list[TcpConnection] = []

            async def accept() -> None:
                accepted.append(await listener.accept())

            tg.start_soon(accept)
            client = await transport.dial(Multiaddr(addr.format(port=port)))
    finally:
        await listener.aclose()
    return client, accepted[0]


def _nodelay(conn: TcpConnection) -> int:
    sock = conn._stream.extra(SocketAttribute.raw_socket)
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


@pytest.mark.anyio
@pytest.mark.parametrize("nodelay", [True, False])
async def test_nodelay_option_on_both_ends(nodelay: bool) -> None:
    with anyio.fail_after(5):
        client, server = await _pair(TcpTransport(nodelay=nodelay), "/ip4/127.0.0.1/tcp/{port}")
    try:
        assert bool(_nodelay(client)) is nodelay
        assert bool(_nodelay(server)) is nodelay
    finally:
        await client.aclose()
        await server.aclose()


@pytest.mark.anyio
async def test_dial_dns4_and_trailing_peer_id() -> None:
    with anyio.fail_after(5):
        client, server = await _pair(TcpTransport(), "/dns4/localhost/tcp/{port}/p2p/" + PEER)
        try:
            assert str(client.remote_multiaddr).startswith("/ip4/127.0.0.1/tcp/")
            await client.send(b"hi")
            assert await server.receive() == b"hi"
        finally:
            await client.aclose()
            await server.aclose()


@pytest.mark.anyio
async def test_aclose_twice_and_after_peer_reset_does_not_raise() -> None:
    with anyio.fail_after(5):
        client, server = await _pair(TcpTransport(), "/ip4/127.0.0.1/tcp/{port}")
        await server.aclose()
        await client.aclose()
        await client.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await client.send(b"x")


@pytest.mark.anyio
async def test_dial_timeout_is_transport_error() -> None:
    transport = TcpTransport()
    listener = await transport.listen(Multiaddr("/ip4/127.0.0.1/tcp/0"))
    try:
        # A zero budget expires at the dial's first wait, whatever the peer does.
        with anyio.fail_after(5), pytest.raises(TransportError, match="timed out"):
            await TcpTransport(dial_timeout=0).dial(listener.multiaddrs[0])
    finally:
        await listener.aclose()
