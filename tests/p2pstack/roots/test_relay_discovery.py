"""Relay candidates from the DHT (p2pstack.roots.relay_discovery): a private node that knows only
a DHT server finds a relay it was never told about, through a lookup, and reserves there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from p2pstack.builder import open_host
from p2pstack.host import Host
from p2pstack.identity import PeerId
from p2pstack.interfaces import Service
from p2pstack.roots.nat import nat_traversal
from p2pstack.roots.relay_discovery import dht_relay_candidates
from protocols.identify import Identify
from protocols.kad import Kad
from protocols.ping import Ping
from protocols.relay import (
    AutoRelay,
    AutoRelayConfig,
    CircuitRelayTransport,
    RelayCandidates,
    RelayService,
    ReservationMade,
)
from tests.protocols.kad._network import NO_KEEPALIVE, TEST_CONFIG, connect_until_in_table
from tests.protocols.relay.test_client import FAST
from transports.memory import MemoryNetwork, MemoryTransport
from transports.plaintext import Plaintext
from transports.yamux import Yamux

pytestmark = pytest.mark.anyio

#: Auto-relay checks often, so that a test waits for the lookup, not for the timer.
CONFIG = AutoRelayConfig(
    reservations=1,
    force=True,
    check_interval=0.2,
    attempt_timeout=10.0,
    discovery_interval=0.2,
)


@asynccontextmanager
async def _host(net: MemoryNetwork, *extra: Service) -> AsyncIterator[Host]:
    async with open_host(
        transports=[MemoryTransport(net)],
        security=[Plaintext()],
        muxers=[Yamux(NO_KEEPALIVE)],
        services=[Identify(), Ping(), Kad(TEST_CONFIG), *extra],
        listen=["/memory/0"],
    ) as host:
        yield host


@asynccontextmanager
async def _network(candidates: RelayCandidates | None) -> AsyncIterator[tuple[Host, Host, Host]]:
    """A relay R and a DHT server D that know each other, and a private node P (auto-relay
    with ``candidates``, no configured relay) connected to D only: (R, D, P)."""
    net = MemoryNetwork()
    transport = CircuitRelayTransport(FAST)
    auto = AutoRelay(transport, CONFIG, candidates=candidates)
    async with (
        _host(net, RelayService()) as relay,
        _host(net) as dht,
    ):
        with anyio.fail_after(20):
            await connect_until_in_table(relay, dht)
        async with open_host(
            transports=[MemoryTransport(net), transport],
            security=[Plaintext()],
            muxers=[Yamux(NO_KEEPALIVE)],
            services=[Identify(), Ping(), Kad(TEST_CONFIG), auto],
            listen=["/memory/0"],
        ) as private:
            with anyio.fail_after(20):
                await connect_until_in_table(private, dht)
            assert not private.connections(relay.peer_id)
            yield relay, dht, private


async def _first_reservation(private: Host, within: float) -> PeerId | None:
    with private.events.subscribe(ReservationMade) as made, anyio.move_on_after(within):
        return (await made.receive()).relay
    return None


async def test_private_node_reserves_at_a_relay_found_through_the_dht() -> None:
    async with _network(dht_relay_candidates) as (relay, _, private):
        assert await _first_reservation(private, within=20) == relay.peer_id
        assert private.connections(relay.peer_id)


async def test_without_the_dht_source_the_relay_stays_unknown() -> None:
    """The control: the same network without the source, no reservation (so the test above
    measures the source, not a connection the DHT opened anyway)."""
    async with _network(None) as (relay, _, private):
        assert await _first_reservation(private, within=3) is None
        assert not private.connections(relay.peer_id)


async def test_no_dht_service_yields_nothing() -> None:
    async with open_host(
        transports=[MemoryTransport(MemoryNetwork())],
        security=[Plaintext()],
        muxers=[Yamux(NO_KEEPALIVE)],
        services=[Identify()],
        listen=["/memory/0"],
    ) as host:
        with anyio.fail_after(5):
            assert [p async for p in dht_relay_candidates(host)] == []


async def test_empty_routing_table_yields_nothing() -> None:
    async with _host(MemoryNetwork()) as host:
        with anyio.fail_after(5):
            assert [p async for p in dht_relay_candidates(host)] == []


async def test_hop_peers_first_and_bounded() -> None:
    net = MemoryNetwork()
    async with (
        _host(net) as plain,
        _host(net, RelayService()) as relay,
        _host(net) as asker,
    ):
        with anyio.fail_after(20):
            await connect_until_in_table(asker, plain)
            await connect_until_in_table(asker, relay)
            assert asker.peerstore.supports(relay.peer_id, "/libp2p/circuit/relay/0.2.0/hop")
            found = [p async for p in dht_relay_candidates(asker)]
            assert found[0] == relay.peer_id and set(found) == {relay.peer_id, plain.peer_id}
            assert [p async for p in dht_relay_candidates(asker, limit=1)] == [relay.peer_id]


def test_nat_traversal_uses_the_dht_source_by_default() -> None:
    autos = [s for s in nat_traversal().services if isinstance(s, AutoRelay)]
    assert [a.candidates for a in autos] == [dht_relay_candidates]
    autos = [s for s in nat_traversal(candidates=None).services if isinstance(s, AutoRelay)]
    assert [a.candidates for a in autos] == [None]
