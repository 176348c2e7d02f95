"""Auto-relay: relays picked from the configuration and from connected hop peers, only while
private (or forced), replaced when refused, released when public."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.builder import open_host
from p2pstack.events import LocalAddrsChanged
from p2pstack.host import Host
from p2pstack.identity import PeerId
from p2pstack.interfaces import Service
from p2pstack.multiaddrs import with_peer_id
from protocols.identify import Identify
from protocols.relay import (
    AutoRelay,
    AutoRelayConfig,
    CircuitRelayTransport,
    ReservationMade,
)
from tests.protocols.relay.mini_relay import MiniRelay
from tests.protocols.relay.test_client import FAST, node
from transports.noise import Noise
from transports.tcp import TcpTransport
from transports.yamux import Yamux

pytestmark = pytest.mark.anyio

LISTEN = ("/ip4/127.0.0.1/tcp/0",)


def private_host(
    transport: CircuitRelayTransport, *services: Service
) -> AbstractAsyncContextManager[Host]:
    """A host on TCP and ``transport`` (Noise, yamux) running ``services``."""
    return open_host(
        transports=[TcpTransport(), transport],
        security=[Noise()],
        muxers=[Yamux()],
        services=list(services),
    )


async def test_forced_auto_relay_skips_a_refusing_relay_and_uses_a_connected_one() -> None:
    async with (
        node(MiniRelay(refuse=True), listen=LISTEN) as refusing,
        node(MiniRelay(), listen=LISTEN) as good,
    ):
        transport = CircuitRelayTransport(FAST)
        config = AutoRelayConfig(
            reservations=1,
            force=True,
            relays=[str(with_peer_id(refusing.listen_addrs[0], refusing.peer_id))],
            check_interval=0.2,
        )
        auto = AutoRelay(transport, config)
        async with private_host(transport, Identify(), auto) as private:
            with anyio.fail_after(20), private.events.subscribe(ReservationMade) as made:
                # Identify tells the private node that this peer serves the hop protocol.
                await private.connect(good.addrs[0])
                event = await made.receive()
                assert event.relay == good.peer_id
                assert auto.relays == [good.peer_id]
                assert any(
                    str(a).endswith(f"/p2p-circuit/p2p/{private.peer_id}") for a in private.addrs
                )


async def test_auto_relay_follows_reachability() -> None:
    mini = MiniRelay()
    async with node(mini, listen=LISTEN) as relay:
        states: tuple[anyio.abc.ObjectSendStream[str], anyio.abc.ObjectReceiveStream[str]]
        states = anyio.create_memory_object_stream[str](4)
        transport = CircuitRelayTransport(FAST)
        relay_addr = str(with_peer_id(relay.listen_addrs[0], relay.peer_id))
        config = AutoRelayConfig(reservations=1, relays=[relay_addr], check_interval=0.2)
        auto = AutoRelay(transport, config, reachability=states[1])  # type: ignore[arg-type]  # plain strings stand for the states
        async with private_host(transport, auto) as private:
            with anyio.fail_after(20):
                await anyio.sleep(0.5)  # a few checks while reachability is unknown
                assert auto.relays == [] and private.addrs == [] and mini.reserve_count == 0
                with private.events.subscribe(ReservationMade) as made:
                    await states[0].send("private")
                    assert (await made.receive()).relay == relay.peer_id
                assert auto.relays == [relay.peer_id]
                with private.events.subscribe(LocalAddrsChanged) as changed:
                    await states[0].send("public")
                    assert (await changed.receive()).addrs == []
                assert auto.relays == [] and private.addrs == []


def test_config_rejects_negative_reservations() -> None:
    with pytest.raises(ValueError, match="negative"):
        AutoRelay(CircuitRelayTransport(), AutoRelayConfig(reservations=-1))


async def test_candidates_from_a_discovery_source_after_a_refusal() -> None:
    async with (
        node(MiniRelay(refuse=True), listen=LISTEN) as refusing,
        node(MiniRelay(), listen=LISTEN) as good,
    ):
        asked: list[Host] = []

        async def discover(host: Host) -> AsyncIterator[PeerId | Multiaddr]:
            asked.append(host)
            yield with_peer_id(refusing.listen_addrs[0], refusing.peer_id)
            yield with_peer_id(good.listen_addrs[0], good.peer_id)

        transport = CircuitRelayTransport(FAST)
        config = AutoRelayConfig(reservations=1, force=True, check_interval=0.2)
        auto = AutoRelay(transport, config, candidates=discover)
        async with private_host(transport, auto) as private:
            with anyio.fail_after(20), private.events.subscribe(ReservationMade) as made:
                assert (await made.receive()).relay == good.peer_id
            assert auto.relays == [good.peer_id] and asked and asked[0] is private


async def test_auto_relay_follows_the_hosts_reachability_and_advertises_its_circuit() -> None:
    """Without a reachability source, auto-relay follows ``ReachabilityChanged`` (what AutoNAT
    decides) and advertises its circuit addresses through ``host.addresses``."""
    mini = MiniRelay()
    async with node(mini, listen=LISTEN) as relay:
        transport = CircuitRelayTransport(FAST)
        relay_addr = str(with_peer_id(relay.listen_addrs[0], relay.peer_id))
        config = AutoRelayConfig(reservations=1, relays=[relay_addr], check_interval=0.2)
        auto = AutoRelay(transport, config)
        async with private_host(transport, auto) as private:
            with anyio.fail_after(20):
                await anyio.sleep(0.5)  # unknown: no reservation
                assert mini.reserve_count == 0 and private.addresses.advertised() == []
                with private.events.subscribe(ReservationMade) as made:
                    private.addresses.set_reachability("private", source="autonat")
                    assert (await made.receive()).relay == relay.peer_id
                assert auto.reachability == "private" and auto.relays == [relay.peer_id]
                circuit = [a for a in private.addresses.advertised() if "p2p-circuit" in str(a)]
                assert circuit and str(circuit[0]).startswith(str(relay.listen_addrs[0]))
                with private.events.subscribe(LocalAddrsChanged) as changed:
                    private.addresses.set_reachability("public", source="autonat")
                    assert (await changed.receive()).addrs == []
                assert auto.relays == [] and private.addresses.advertised() == []


async def test_a_failing_discovery_source_keeps_what_it_gave() -> None:
    async with node(MiniRelay(), listen=LISTEN) as good:

        async def discover(_host: Host) -> AsyncIterator[PeerId | Multiaddr]:
            yield with_peer_id(good.listen_addrs[0], good.peer_id)
            raise OSError("lookup broke")

        transport = CircuitRelayTransport(FAST)
        config = AutoRelayConfig(reservations=1, force=True, check_interval=0.2)
        auto = AutoRelay(transport, config, candidates=discover)
        assert auto.candidates is discover
        async with private_host(transport, auto) as private:
            with anyio.fail_after(20), private.events.subscribe(ReservationMade) as made:
                assert (await made.receive()).relay == good.peer_id


async def test_discovery_source_is_asked_at_most_once_per_interval() -> None:
    async with node(MiniRelay(refuse=True), listen=LISTEN) as refusing:
        asked = 0
        first = anyio.Event()

        async def discover(_host: Host) -> AsyncIterator[PeerId | Multiaddr]:
            nonlocal asked
            asked += 1
            first.set()
            yield with_peer_id(refusing.listen_addrs[0], refusing.peer_id)

        transport = CircuitRelayTransport(FAST)
        config = AutoRelayConfig(
            reservations=1, force=True, check_interval=0.05, discovery_interval=30.0
        )
        async with private_host(transport, AutoRelay(transport, config, candidates=discover)):
            with anyio.fail_after(20):
                await first.wait()
                await anyio.sleep(1.0)  # about 20 checks, all without a reservation
            assert asked == 1
