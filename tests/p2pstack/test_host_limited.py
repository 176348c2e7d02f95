"""Limited (relayed) connections in the host: their limits, the protocols that opt in (identify,
ping), and a direct connection preferred to a limited one."""

from __future__ import annotations

import anyio
import attrs
import pytest

from p2pstack.builder import open_host
from p2pstack.errors import LimitedConnectionError
from p2pstack.events import ConnectionClosed
from p2pstack.interfaces import ConnectionLimits, UpgradedConnection, Upgrader
from p2pstack.multiaddrs import with_peer_id
from protocols.identify import Identify
from protocols.ping import Ping
from transports.memory import MemoryNetwork, UpgradedMemoryTransport
from transports.noise import Noise
from transports.tcp import TcpTransport
from transports.yamux import Yamux

pytestmark = pytest.mark.anyio

LIMITS = ConnectionLimits(duration=120.0, data=1 << 17)


class RelayedMemory(UpgradedMemoryTransport):
    """Memory connections marked limited with the limits a relay would report."""

    async def dial(self, addr, *, remote_peer, upgrader: Upgrader) -> UpgradedConnection:  # type: ignore[no-untyped-def]  # the test overrides only what it needs
        upgraded = await super().dial(addr, remote_peer=remote_peer, upgrader=upgrader)
        return attrs.evolve(upgraded, info=attrs.evolve(upgraded.info, limits=LIMITS))


async def test_limits_known_and_identify_and_ping_opt_in() -> None:
    network = MemoryNetwork()
    async with (
        open_host(
            transports=[RelayedMemory(network, limited=True)],
            security=[Noise()],
            muxers=[Yamux()],
            services=[Identify(), Ping()],
        ) as a,
        open_host(
            transports=[UpgradedMemoryTransport(network, limited=True)],
            security=[Noise()],
            muxers=[Yamux()],
            services=[Identify(), Ping()],
            listen=["/memory/0"],
        ) as b,
    ):
        with anyio.fail_after(20):
            conn = await a.connect(b.addrs[0])
            assert conn.limited and conn.limits == LIMITS
            rtts = await a.service(Ping).ping(b.peer_id, count=2)
            assert len(rtts) == 2
            info = await a.service(Identify).identify_connection(conn)
            assert info.public_key == b.identity.public_key


async def test_direct_connection_preferred_to_limited() -> None:
    network = MemoryNetwork()
    async with (
        open_host(
            transports=[TcpTransport(), UpgradedMemoryTransport(network, limited=True)],
            security=[Noise()],
            muxers=[Yamux()],
        ) as a,
        open_host(
            transports=[TcpTransport(), UpgradedMemoryTransport(network, limited=True)],
            security=[Noise()],
            muxers=[Yamux()],
            listen=["/memory/0", "/ip4/127.0.0.1/tcp/0"],
        ) as b,
    ):
        b.set_stream_handler("/direct/1.0.0", _echo)
        memory_addr, tcp_addr = b.listen_addrs
        with anyio.fail_after(20), a.events.subscribe(ConnectionClosed) as closed:
            limited = await a.connect(with_peer_id(memory_addr, b.peer_id))
            assert limited.limited
            with pytest.raises(LimitedConnectionError):
                await a.new_stream(b.peer_id, "/direct/1.0.0")
            # A limited connection does not stop an explicit direct dial.
            direct = await a.connect(with_peer_id(tcp_addr, b.peer_id))
            assert direct is not limited and not direct.limited
            stream = await a.new_stream(b.peer_id, "/direct/1.0.0")
            assert stream.connection is direct
            await stream.send(b"x")
            assert await stream.receive() == b"x"
            await stream.aclose()
            # The limited connection is dropped in favour of the direct one.
            event = await closed.receive()
            assert event.connection is limited


async def _echo(stream) -> None:  # type: ignore[no-untyped-def]  # a handler for the test
    await stream.send(await stream.receive())
