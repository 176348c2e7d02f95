"""The memory transport that delivers upgraded connections: its conformance suite, and the
host running on it (limited connections, a transport that is also a service)."""

from __future__ import annotations

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.builder import open_host
from p2pstack.connection import Stream
from p2pstack.errors import DialError, LimitedConnectionError, PeerIdMismatch, ProtocolNotSupported
from p2pstack.host import Host
from p2pstack.identity import Identity, PeerId
from p2pstack.interfaces import UpgradedConnection, Upgrader
from p2pstack.multiaddrs import with_peer_id
from p2pstack.testing import check_upgraded_transport
from p2pstack.upgrader import DefaultUpgrader
from transports.memory import MemoryNetwork, UpgradedMemoryTransport
from transports.noise import Noise
from transports.yamux import Yamux

pytestmark = pytest.mark.anyio

ECHO = "/test/echo/1.0.0"


def upgrader() -> Upgrader:
    return DefaultUpgrader(Identity.generate(), [Noise()], [Yamux()])


@pytest.mark.parametrize("limited", [False, True])
async def test_conformance(limited: bool) -> None:
    network = MemoryNetwork()
    await check_upgraded_transport(
        UpgradedMemoryTransport(network, limited=limited),
        upgrader(),
        UpgradedMemoryTransport(network, limited=limited),
        upgrader(),
        Multiaddr("/memory/0"),
    )


async def test_conformance_catches_ends_that_disagree() -> None:
    network = MemoryNetwork()
    with pytest.raises(AssertionError, match="disagree on limited"):
        await check_upgraded_transport(
            UpgradedMemoryTransport(network, limited=True),
            upgrader(),
            UpgradedMemoryTransport(network, limited=False),
            upgrader(),
            Multiaddr("/memory/0"),
        )


async def echo(stream: Stream) -> None:
    await stream.send(await stream.receive())


async def test_limited_connections_run_only_handlers_that_opt_in() -> None:
    network = MemoryNetwork()
    transports = [UpgradedMemoryTransport(network, limited=True)]
    async with (
        open_host(transports=transports, security=[Noise()], muxers=[Yamux()]) as a,
        open_host(
            transports=[UpgradedMemoryTransport(network, limited=True)],
            security=[Noise()],
            muxers=[Yamux()],
            listen=["/memory/0"],
        ) as b,
    ):
        b.set_stream_handler(ECHO, echo, allow_limited=True)
        b.set_stream_handler("/direct-only/1.0.0", echo)
        with anyio.fail_after(10):
            conn = await a.connect(b.addrs[0])
            assert conn.limited and conn.info.transport == "memory"
            with pytest.raises(LimitedConnectionError):
                await a.new_stream(b.peer_id, ECHO)
            stream = await a.new_stream(b.peer_id, ECHO, allow_limited=True)
            await stream.send(b"hi")
            assert await stream.receive() == b"hi"
            with pytest.raises(ProtocolNotSupported):
                await a.new_stream(b.peer_id, "/direct-only/1.0.0", allow_limited=True)


class ServiceTransport(UpgradedMemoryTransport):
    """A transport that needs the host (as a relay does)."""

    def __init__(self, network: MemoryNetwork, log: list[str]) -> None:
        super().__init__(network)
        self.log = log

    async def start(self, host: Host) -> None:
        self.log.append(f"start {len(host.listen_addrs)} listeners")

    async def stop(self) -> None:
        self.log.append("stop")


class Last:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def start(self, host: Host) -> None:
        self.log.append("start service")

    async def stop(self) -> None:
        self.log.append("stop service")


async def test_a_transport_that_is_a_service_is_started_first_and_stopped_last() -> None:
    log: list[str] = []
    network = MemoryNetwork()
    async with open_host(
        transports=[ServiceTransport(network, log)],
        security=[Noise()],
        muxers=[Yamux()],
        services=[Last(log)],
        listen=["/memory/0"],
    ) as host:
        assert len(host.listen_addrs) == 1
    assert log == ["start 0 listeners", "start service", "stop service", "stop"]


class Careless(UpgradedMemoryTransport):
    """A transport that does not check the peer it was asked for."""

    async def dial(
        self, addr: Multiaddr, *, remote_peer: PeerId | None, upgrader: Upgrader
    ) -> UpgradedConnection:
        return await super().dial(addr, remote_peer=None, upgrader=upgrader)


async def test_the_host_checks_the_peer_of_an_upgraded_dial() -> None:
    network = MemoryNetwork()
    async with (
        open_host(transports=[Careless(network)], security=[Noise()], muxers=[Yamux()]) as a,
        open_host(
            transports=[UpgradedMemoryTransport(network)],
            security=[Noise()],
            muxers=[Yamux()],
            listen=["/memory/0"],
        ) as b,
    ):
        wrong = Identity.generate().peer_id
        with anyio.fail_after(10), pytest.raises(DialError) as info:
            await a.connect(with_peer_id(b.listen_addrs[0], wrong))
        assert isinstance(info.value.errors[0][1], PeerIdMismatch)
        assert a.connections() == []
