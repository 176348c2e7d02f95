"""The circuit relay v2 client over TCP hosts and a small test relay: listening (reservation,
advertised addresses, refresh, re-reservation), dialing, refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.builder import open_host
from p2pstack.connection import Stream
from p2pstack.errors import DialError, LimitedConnectionError, ProtocolNotSupported
from p2pstack.host import Host, HostConfig
from p2pstack.identity import Identity
from p2pstack.interfaces import ConnectionLimits, Service
from p2pstack.multiaddrs import with_peer_id
from protocols.identify import Identify
from protocols.ping import Ping
from protocols.relay import (
    CircuitConfig,
    CircuitRelayTransport,
    ReservationLost,
    ReservationMade,
    ReservationRefreshed,
)
from protocols.relay.pb import circuit_pb2 as pb
from tests.protocols.relay.mini_relay import MiniRelay, stop_connect
from transports.noise import Noise
from transports.tcp import TcpTransport
from transports.yamux import Yamux

pytestmark = pytest.mark.anyio

ECHO = "/test/echo/1.0.0"
FAST = CircuitConfig(hop_timeout=10, min_refresh=0.2, retry_min=0.1, retry_max=0.5)


@asynccontextmanager
async def node(
    *services: Service,
    listen: tuple[str, ...] = (),
    config: CircuitConfig = FAST,
    host_config: HostConfig | None = None,
    identity: Identity | None = None,
) -> AsyncIterator[Host]:
    async with open_host(
        identity=identity,
        transports=[TcpTransport(), CircuitRelayTransport(config)],
        security=[Noise()],
        muxers=[Yamux()],
        services=[Identify(), Ping(), *services],
        listen=listen,
        config=host_config,
    ) as host:
        yield host


def relay_circuit(relay: Host) -> str:
    return f"{with_peer_id(relay.listen_addrs[0], relay.peer_id)}/p2p-circuit"


async def echo(stream: Stream) -> None:
    await stream.send(await stream.receive())


async def use_relayed_connection(
    dialer: Host, listener: Host, bound: Multiaddr, limits: ConnectionLimits
) -> None:
    """Dial ``listener`` at its circuit address ``bound`` and check the limited connection:
    ``limits`` on both ends, echo only with ``allow_limited``, a protocol that did not opt in
    refused, ping and identify over it (the listener serves ``ECHO`` and, not opted in,
    ``/direct-only/1.0.0``)."""
    conn = await dialer.connect(with_peer_id(bound, listener.peer_id))
    assert conn.limited and conn.limits == limits
    assert conn.info.transport == "p2p-circuit"
    with pytest.raises(LimitedConnectionError):
        await dialer.new_stream(listener.peer_id, ECHO)
    stream = await dialer.new_stream(listener.peer_id, ECHO, allow_limited=True)
    await stream.send(b"through the relay")
    assert await stream.receive() == b"through the relay"
    await stream.aclose()
    with pytest.raises(ProtocolNotSupported):  # raised at once, or on the first read
        refused = await dialer.new_stream(
            listener.peer_id, "/direct-only/1.0.0", allow_limited=True
        )
        await refused.send(b"x")
        await refused.receive()
    # Ping and identify opted in; identify advertises the circuit address; the listener side
    # is limited as well.
    assert len(await dialer.service(Ping).ping(listener.peer_id)) == 1
    info = await dialer.service(Identify).identify_connection(conn)
    assert bound in info.listen_addrs
    inbound = listener.connections(dialer.peer_id)
    assert [(c.limited, c.limits) for c in inbound] == [(True, limits)]


async def test_listen_and_dial_through_a_relay() -> None:
    async with (
        node(MiniRelay(), listen=("/ip4/127.0.0.1/tcp/0",)) as relay,
        node() as listener,
        node() as dialer,
    ):
        listener.set_stream_handler(ECHO, echo, allow_limited=True)
        listener.set_stream_handler("/direct-only/1.0.0", echo)
        with anyio.fail_after(20):
            bound = await listener.listen([relay_circuit(relay)])
            assert bound == [Multiaddr(relay_circuit(relay))]
            target = with_peer_id(bound[0], listener.peer_id)
            assert target in listener.addrs
            limits = ConnectionLimits(duration=120.0, data=1 << 17)
            await use_relayed_connection(dialer, listener, bound[0], limits)


async def test_dial_without_reservation_says_no_reservation() -> None:
    async with (
        node(MiniRelay(), listen=("/ip4/127.0.0.1/tcp/0",)) as relay,
        node() as target,
        node() as dialer,
    ):
        addr = f"{relay_circuit(relay)}/p2p/{target.peer_id}"
        with anyio.fail_after(20), pytest.raises(DialError, match="NO_RESERVATION"):
            await dialer.connect(addr)


async def test_refused_reservation_fails_listen_with_the_status() -> None:
    async with (
        node(MiniRelay(refuse=True), listen=("/ip4/127.0.0.1/tcp/0",)) as relay,
        node() as listener,
    ):
        with anyio.fail_after(20), pytest.raises(Exception, match="RESERVATION_REFUSED"):
            await listener.listen([relay_circuit(relay)])
        assert listener.addrs == []


async def test_reservation_refreshed_and_made_again_after_relay_loss() -> None:
    mini = MiniRelay(ttl=2.0)
    async with node(mini, listen=("/ip4/127.0.0.1/tcp/0",)) as relay, node() as listener:
        with listener.events.subscribe(
            ReservationMade, ReservationRefreshed, ReservationLost
        ) as events:
            with anyio.fail_after(20):
                await listener.listen([relay_circuit(relay)])
                assert isinstance(await events.receive(), ReservationMade)
                assert isinstance(await events.receive(), ReservationRefreshed)
                await listener.disconnect(relay.peer_id)
                lost = await events.receive()
                while isinstance(lost, ReservationRefreshed):  # a refresh may have raced
                    lost = await events.receive()
                assert isinstance(lost, ReservationLost) and lost.relay == relay.peer_id
                again = await events.receive()
                assert isinstance(again, ReservationMade)
                assert again.addrs == (Multiaddr(relay_circuit(relay)),)
        assert mini.reserve_count >= 3


async def test_stop_from_a_relay_without_reservation_is_refused() -> None:
    async with node(listen=("/ip4/127.0.0.1/tcp/0",)) as target, node() as fake_relay:
        with anyio.fail_after(20):
            await fake_relay.connect(target.addrs[0])
            status = await stop_connect(fake_relay, target.peer_id, fake_relay.peer_id)
        assert status == pb.PERMISSION_DENIED
        assert target.connections(fake_relay.peer_id)[0].limited is False


@pytest.mark.parametrize(
    "suffix",
    ["/p2p/{t}/p2p-circuit/p2p/{t}", ""],
    ids=["circuit-over-circuit", "no-target"],
)
async def test_malformed_circuit_dials_fail(suffix: str) -> None:
    async with (
        node(MiniRelay(), listen=("/ip4/127.0.0.1/tcp/0",)) as relay,
        node() as target,
        node() as dialer,
    ):
        addr = relay_circuit(relay) + suffix.format(t=target.peer_id)
        with anyio.fail_after(20), pytest.raises((DialError, ValueError)):
            if suffix:
                await dialer.connect(f"{addr}/p2p/{target.peer_id}")
            else:
                await dialer.connect(addr)
