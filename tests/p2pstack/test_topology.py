from __future__ import annotations

import anyio
import pytest

from p2pstack.events import (
    ConnectionClosed,
    ConnectionOpened,
    PeerConnected,
    PeerDisconnected,
    PeerProtocolsChanged,
)
from p2pstack.identity import PeerId
from p2pstack.interfaces import Service
from protocols.identify import Identify, PeerIdentified
from protocols.ping import PROTOCOL_ID as PING
from protocols.ping import Ping
from tests.p2pstack.hosts import memory_hosts

pytestmark = pytest.mark.anyio


async def test_simultaneous_dial_makes_one_peer_connected_and_one_disconnected() -> None:
    async with memory_hosts(2) as (a, b):
        seen: dict[str, list[type]] = {"a": [], "b": []}
        gone = {"a": anyio.Event(), "b": anyio.Event()}
        for name, host in (("a", a), ("b", b)):

            def record(event: object, name: str = name) -> None:
                seen[name].append(type(event))
                if isinstance(event, PeerDisconnected):
                    gone[name].set()

            for kind in (PeerConnected, PeerDisconnected, ConnectionOpened):
                host.events.on(kind, record)
        changed = anyio.Event()

        def wake(_event: object) -> None:
            nonlocal changed
            changed.set()
            changed = anyio.Event()

        def settled() -> bool:
            # One connection left on each side, and no upgrade under way that could add one.
            return (
                len(a.connections(b.peer_id)) == len(b.connections(a.peer_id)) == 1
                and a.statistics().pending_upgrades == b.statistics().pending_upgrades == 0
            )

        for host in (a, b):
            host.events.on(ConnectionOpened, wake)
            host.events.on(ConnectionClosed, wake)
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(a.connect, b.addrs[0])
                tg.start_soon(b.connect, a.addrs[0])
            while not settled():
                await changed.wait()
            await a.disconnect(b.peer_id)
            await gone["a"].wait()
            await gone["b"].wait()
        assert seen["a"].count(ConnectionOpened) == 2  # it was a simultaneous dial
        for name in ("a", "b"):
            assert seen[name].count(PeerConnected) == 1, seen[name]
            assert seen[name].count(PeerDisconnected) == 1, seen[name]
            assert seen[name][-1] is PeerDisconnected


async def test_topology_follows_identify_and_disconnects() -> None:
    services: list[list[Service]] = [[Identify()], [Identify(), Ping()]]
    async with memory_hosts(2, services=services) as (a, b):
        joined: list[PeerId] = []
        left: list[PeerId] = []
        topology = a.register_topology(PING, on_connect=joined.append, on_disconnect=left.append)
        with (
            a.events.subscribe(PeerProtocolsChanged) as changes,
            b.events.subscribe(PeerProtocolsChanged) as b_changes,
            anyio.fail_after(10),
        ):
            await a.connect(b.addrs[0])
            while not joined:
                await changes.receive()
            await b_changes.receive()  # b identified a too: b knows a accepts pushes
            assert joined == [b.peer_id] and topology.peers == {b.peer_id}

            # A topology registered later hears about the peers already known at once.
            late: list[PeerId] = []
            late_topology = a.register_topology(PING, on_connect=late.append)
            assert late == [b.peer_id]
            late_topology.close()

            # b stops serving ping: identify push tells a, and the peer leaves the topology.
            b.remove_stream_handler(PING)
            while not left:
                await changes.receive()
            assert left == [b.peer_id] and topology.peers == frozenset()

            b.set_stream_handler(PING, b.service(Ping)._handle)
            while len(joined) < 2:
                await changes.receive()

        with a.events.subscribe(PeerDisconnected) as disconnected, anyio.fail_after(10):
            await a.disconnect(b.peer_id)
            await disconnected.receive()
        assert left == [b.peer_id, b.peer_id]
        assert joined == [b.peer_id, b.peer_id]
        topology.close()


async def test_peer_without_the_protocol_never_joins() -> None:
    services: list[list[Service]] = [[Identify()], [Identify()]]
    async with memory_hosts(2, services=services) as (a, b):
        joined: list[PeerId] = []
        a.register_topology(PING, on_connect=joined.append)
        with a.events.subscribe(PeerProtocolsChanged, ConnectionClosed) as events:
            with anyio.fail_after(10):
                await a.connect(b.addrs[0])
                event = await events.receive()
        assert isinstance(event, PeerProtocolsChanged) and event.peer_id == b.peer_id
        assert PING not in event.protocols
        assert joined == []


async def test_identify_pushes_new_listen_addresses() -> None:
    services: list[list[Service]] = [[Identify()], [Identify()]]
    async with memory_hosts(2, services=services) as (a, b):
        with (
            a.events.subscribe(PeerIdentified) as identified,
            b.events.subscribe(PeerProtocolsChanged) as b_changes,
            anyio.fail_after(10),
        ):
            await a.connect(b.addrs[0])
            await identified.receive()
            await b_changes.receive()  # b identified a: it knows a accepts pushes
            new = await b.listen(["/memory/0"])
            pushed = await identified.receive()
        assert pushed.peer_id == b.peer_id
        assert new[0] in pushed.listen_addrs
        assert new[0] in a.peerstore.addrs(b.peer_id)
