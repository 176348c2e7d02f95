"""Tests for the TCP transport: the conformance suite on IPv4 and IPv6 loopback, address
handling, dial errors and socket options."""

from __future__ import annotations

import socket
import struct
from contextlib import AbstractAsyncContextManager

import anyio
import pytest
from anyio.abc import SocketAttribute
from multiaddr import Multiaddr

from p2pstack.builder import open_host
from p2pstack.errors import TransportError
from p2pstack.host import Host
from p2pstack.testing import check_transport
from protocols.ping import Ping
from transports.noise import Noise
from transports.tcp import TcpConnection, TcpTransport
from transports.yamux import Yamux

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


def _connect_and_reset(port: int, host: str = "127.0.0.1") -> None:
    """What a port scanner does: connect, then close with SO_LINGER (on, 0 s), which sends RST."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.connect((host, port))
    sock.close()


@pytest.mark.anyio
async def test_accept_skips_sockets_reset_before_accept() -> None:
    listener = await TcpTransport().listen(Multiaddr("/ip4/127.0.0.1/tcp/0"))
    port = int(listener.multiaddrs[0].value_for_protocol("tcp") or 0)
    try:
        for _ in range(5):
            _connect_and_reset(port)
        honest = socket.create_connection(("127.0.0.1", port))
        try:
            with anyio.fail_after(5):
                conn = await listener.accept()
            honest.sendall(b"hello")
            with anyio.fail_after(5):
                assert await conn.receive() == b"hello"
            await conn.aclose()
        finally:
            honest.close()
        stats = listener.statistics()
        assert stats.accepted == 1
        assert stats.dropped == 5
    finally:
        await listener.aclose()


@pytest.mark.anyio
async def test_host_survives_connect_and_reset() -> None:
    def host() -> AbstractAsyncContextManager[Host]:
        return open_host(
            transports=[TcpTransport()],
            security=[Noise()],
            muxers=[Yamux()],
            services=[Ping()],
            listen=["/ip4/127.0.0.1/tcp/0"],
        )

    async with host() as server, host() as client:
        port = int(server.addrs[0].value_for_protocol("tcp") or 0)
        for _ in range(20):
            _connect_and_reset(port)
        with anyio.fail_after(10):
            await client.connect(server.addrs[0].encapsulate(f"/p2p/{server.peer_id}"))
            (rtt,) = await client.service(Ping).ping(server.peer_id)
        assert rtt >= 0
        assert server.statistics().listeners == 1


def _port(addr: Multiaddr) -> int:
    return int(addr.value_for_protocol("tcp") or 0)


@pytest.mark.anyio
async def test_port_reuse_dials_from_the_listen_port() -> None:
    dialer = TcpTransport(port_reuse=True)
    own = await dialer.listen(Multiaddr("/ip4/127.0.0.1/tcp/0"))
    remote = await TcpTransport().listen(Multiaddr("/ip4/127.0.0.1/tcp/0"))
    try:
        async with anyio.create_task_group() as tg:
            accepted: list[TcpConnection] = []

            async def accept() -> None:
                accepted.append(await remote.accept())

            tg.start_soon(accept)
            with anyio.fail_after(5):
                client = await dialer.dial(remote.multiaddrs[0])
        assert _port(client.local_multiaddr) == _port(own.multiaddrs[0])
        assert accepted[0].remote_multiaddr == own.multiaddrs[0]
        # The listener still accepts while a dial holds its port.
        with anyio.fail_after(5):
            back = await TcpTransport().dial(own.multiaddrs[0])
            inbound = await own.accept()
        for conn in (client, accepted[0], back, inbound):
            await conn.aclose()
    finally:
        await own.aclose()
        await remote.aclose()


@pytest.mark.anyio
async def test_port_reuse_second_dial_to_same_peer_falls_back() -> None:
    dialer = TcpTransport(port_reuse=True)
    own = await dialer.listen(Multiaddr("/ip4/127.0.0.1/tcp/0"))
    remote = await TcpTransport().listen(Multiaddr("/ip4/127.0.0.1/tcp/0"))
    conns: list[TcpConnection] = []
    try:
        with anyio.fail_after(5):
            for _ in range(2):
                conns.append(await dialer.dial(remote.multiaddrs[0]))
                conns.append(await remote.accept())
        ports = {_port(conns[0].local_multiaddr), _port(conns[2].local_multiaddr)}
        assert _port(own.multiaddrs[0]) in ports
        assert len(ports) == 2  # the same 4-tuple cannot exist twice: the second used a fresh port
    finally:
        for conn in conns:
            await conn.aclose()
        await own.aclose()
        await remote.aclose()


@pytest.mark.anyio
async def test_without_port_reuse_dials_use_ephemeral_ports() -> None:
    transport = TcpTransport()
    own = await transport.listen(Multiaddr("/ip4/127.0.0.1/tcp/0"))
    try:
        with anyio.fail_after(5):
            client, server = await _pair(transport, "/ip4/127.0.0.1/tcp/{port}")
        assert _port(client.local_multiaddr) != _port(own.multiaddrs[0])
        await client.aclose()
        await server.aclose()
    finally:
        await own.aclose()


@pytest.mark.anyio
async def test_closed_reuse_listener_is_forgotten() -> None:
    dialer = TcpTransport(port_reuse=True)
    own = await dialer.listen(Multiaddr("/ip4/127.0.0.1/tcp/0"))
    await own.aclose()
    remote = await TcpTransport().listen(Multiaddr("/ip4/127.0.0.1/tcp/0"))
    try:
        with anyio.fail_after(5):
            conn = await dialer.dial(remote.multiaddrs[0])
            inbound = await remote.accept()
        assert _port(conn.local_multiaddr) != _port(own.multiaddrs[0])
        await conn.aclose()
        await inbound.aclose()
    finally:
        await remote.aclose()
