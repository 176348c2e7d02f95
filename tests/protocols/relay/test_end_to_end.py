"""Circuit relay v2 end to end between p2pstack nodes: ``RelayService`` relays, the real
``CircuitRelayTransport`` listens and dials on both ends; limits set by the relay reach both
ends and are enforced there; refreshes, and a reservation made again after the relay restarts."""

from __future__ import annotations

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.connection import Stream
from p2pstack.errors import NETWORK_ERRORS, DialError
from p2pstack.events import ConnectionClosed
from p2pstack.identity import Identity
from p2pstack.interfaces import ConnectionLimits
from p2pstack.multiaddrs import with_peer_id
from protocols.relay import (
    CircuitClosed,
    CircuitOpened,
    RelayConfig,
    RelayService,
    ReservationLost,
    ReservationMade,
    ReservationRefreshed,
)
from tests.protocols.relay.test_client import (
    ECHO,
    echo,
    node,
    relay_circuit,
    use_relayed_connection,
)

pytestmark = pytest.mark.anyio

LISTEN = ("/ip4/127.0.0.1/tcp/0",)


async def echo_all(stream: Stream) -> None:
    while True:
        await stream.send(await stream.receive())


async def test_listen_dial_echo_ping_identify_through_our_relay() -> None:
    config = RelayConfig(limit_duration=60, limit_data=1 << 20)
    async with (
        node(RelayService(config), listen=LISTEN) as relay,
        node() as listener,
        node() as dialer,
    ):
        listener.set_stream_handler(ECHO, echo, allow_limited=True)
        listener.set_stream_handler("/direct-only/1.0.0", echo)
        limits = ConnectionLimits(duration=60.0, data=1 << 20)
        with relay.events.subscribe(CircuitOpened) as opened, anyio.fail_after(30):
            bound = await listener.listen([relay_circuit(relay)])
            assert bound == [Multiaddr(relay_circuit(relay))]
            assert relay.service(RelayService).statistics().reservations == 1
            await use_relayed_connection(dialer, listener, bound[0], limits)
            event = await opened.receive()
            assert (event.source, event.target) == (dialer.peer_id, listener.peer_id)


async def test_dial_to_a_peer_without_reservation_says_no_reservation() -> None:
    async with (
        node(RelayService(), listen=LISTEN) as relay,
        node(listen=LISTEN) as target,
        node() as dialer,
    ):
        await target.connect(with_peer_id(relay.listen_addrs[0], relay.peer_id))
        addr = f"{relay_circuit(relay)}/p2p/{target.peer_id}"
        with anyio.fail_after(30), pytest.raises(DialError, match="NO_RESERVATION"):
            await dialer.connect(addr)
        assert target.connections(dialer.peer_id) == []


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (RelayConfig(limit_duration=None, limit_data=64 * 1024), "data limit"),
        (RelayConfig(limit_duration=2, limit_data=None), "duration limit"),
    ],
    ids=["data", "duration"],
)
async def test_limits_reset_the_circuit_and_both_ends_see_a_clean_error(
    config: RelayConfig, reason: str
) -> None:
    async with (
        node(RelayService(config), listen=LISTEN) as relay,
        node() as listener,
        node() as dialer,
    ):
        listener.set_stream_handler(ECHO, echo_all, allow_limited=True)
        with (
            relay.events.subscribe(CircuitClosed) as closed,
            dialer.events.subscribe(ConnectionClosed) as gone,
            listener.events.subscribe(ConnectionClosed) as gone_too,
            anyio.fail_after(40),
        ):
            bound = await listener.listen([relay_circuit(relay)])
            await dialer.connect(with_peer_id(bound[0], listener.peer_id))
            stream = await dialer.new_stream(listener.peer_id, ECHO, allow_limited=True)
            chunk = b"x" * 4096
            with pytest.raises((anyio.EndOfStream, *NETWORK_ERRORS)):
                for _ in range(1000):  # 4 MB at most: far over the data limit
                    await stream.send(chunk)
                    received = 0
                    while received < len(chunk):
                        received += len(await stream.receive())
                    if reason == "duration limit":
                        await anyio.sleep(0.05)
            event = await closed.receive()
            assert event.reason == reason
            if reason == "data limit":
                assert max(event.bytes_relayed) <= 64 * 1024
            # The relayed connection ends with the circuit, at both ends.
            while (await gone.receive()).connection.remote_peer != listener.peer_id:
                pass
            while (await gone_too.receive()).connection.remote_peer != dialer.peer_id:
                pass
            assert dialer.connections(listener.peer_id) == []
            assert listener.connections(dialer.peer_id) == []
            # The reservation outlives the circuit: a new relayed connection works.
            conn = await dialer.connect(with_peer_id(bound[0], listener.peer_id))
            assert conn.limited


async def test_refresh_and_reservation_again_after_the_relay_restarts() -> None:
    identity = Identity.generate()
    config = RelayConfig(reservation_ttl=2.0)
    async with node() as listener, node() as dialer:
        listener.set_stream_handler(ECHO, echo, allow_limited=True)
        with listener.events.subscribe(
            ReservationMade, ReservationRefreshed, ReservationLost
        ) as events:
            async with node(RelayService(config), listen=LISTEN, identity=identity) as relay:
                port_addr = relay.listen_addrs[0]
                circuit = relay_circuit(relay)
                with anyio.fail_after(30):
                    await listener.listen([circuit])
                    assert isinstance(await events.receive(), ReservationMade)
                    assert isinstance(await events.receive(), ReservationRefreshed)
            with anyio.fail_after(30):
                lost = await events.receive()
                while isinstance(lost, ReservationRefreshed):  # a refresh may have raced
                    lost = await events.receive()
                assert isinstance(lost, ReservationLost)
            async with node(
                RelayService(config), listen=(str(port_addr),), identity=identity
            ) as relay:
                with anyio.fail_after(30):
                    again = await events.receive()
                    while not isinstance(again, ReservationMade):
                        again = await events.receive()
                    assert again.addrs == (Multiaddr(circuit),)
                    assert relay.service(RelayService).statistics().reservations == 1
                    await dialer.connect(f"{circuit}/p2p/{listener.peer_id}")
                    stream = await dialer.new_stream(listener.peer_id, ECHO, allow_limited=True)
                    await stream.send(b"after the restart")
                    assert await stream.receive() == b"after the restart"
