"""p2pstack's ``Pubsub`` service against js-libp2p (@libp2p/gossipsub 17.1.1, @libp2p/floodsub
11.0.28) and py-libp2p 0.8.1 (GossipSub, FloodSub): messages published on each side arrive on
the other exactly once with the original publisher as ``from``; a p2pstack node between two js
nodes forwards both ways; a p2pstack gossipsub node carries messages between a floodsub and a
gossipsub node; a mesh of three js, three py and three p2pstack nodes where every node
publishes and every node receives every message exactly once
(https://github.com/libp2p/specs/tree/master/pubsub).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest

from tests.interop.pubsub_nodes import PubsubNode, Sent, connect, open_nodes, until

pytestmark = pytest.mark.anyio

TOPIC = "interop-pubsub"
COUNT = 3
#: Seconds of quiet after the last expected message: a duplicate arriving late is caught.
SETTLE = 1.0
#: Padding of the first message of each publisher, in bytes.
LARGE = 2000


@pytest.fixture
def anyio_backend() -> str:
    """The peers are subprocesses: one backend is enough."""
    return "asyncio"


async def joined(
    nodes: Sequence[PubsubNode], edges: Sequence[tuple[int, int]], router: str
) -> None:
    """Every node subscribes to TOPIC; returns when each knows its neighbours' subscriptions
    and, under gossipsub, holds them all in its mesh (gossipsub publishes to its mesh)."""
    for node in nodes:
        await node.subscribe(TOPIC)
    neighbours: list[set[str]] = [set() for _ in nodes]
    for a, b in edges:
        neighbours[a].add(nodes[b].peer_id)
        neighbours[b].add(nodes[a].peer_id)
    verbs = ["peers", "mesh"] if router == "gossipsub" else ["peers"]
    async with anyio.create_task_group() as tg:
        for node, want in zip(nodes, neighbours, strict=True):
            for verb in verbs:
                tg.start_soon(until, node, verb, TOPIC, want)


async def publish_all(publishers: Sequence[PubsubNode]) -> list[Sent]:
    """Each publisher publishes COUNT messages (the publishers at the same time); the first
    is larger than every IDONTWANT threshold (js 512 B, ours 1 KiB), so that gossipsub v1.2
    peers announce it with IDONTWANT."""
    sent: list[Sent] = []

    async def publish(node: PubsubNode) -> None:
        for n in range(COUNT):
            padding = " " + "x" * LARGE if n == 0 else ""
            sent.append(await node.publish(TOPIC, f"{node.name} says {n}{padding}"))

    async with anyio.create_task_group() as tg:
        for node in publishers:
            tg.start_soon(publish, node)
    return sent


async def delivered(nodes: Sequence[PubsubNode], sent: Sequence[Sent]) -> None:
    """Every node reports every message in ``sent`` but its own, exactly once, with the
    publisher's peer ID as ``from`` and its seqno; nothing else arrives within SETTLE."""

    async def settle(node: PubsubNode, count: int) -> None:
        await node.wait_received(count)
        await node.drain(SETTLE)

    expected = [
        Counter(s.as_received() for s in sent if s.from_peer != node.peer_id) for node in nodes
    ]
    async with anyio.create_task_group() as tg:
        for node, want in zip(nodes, expected, strict=True):
            tg.start_soon(settle, node, want.total())
    for node, want in zip(nodes, expected, strict=True):
        got = Counter(node.received)
        assert got == want, f"{node.name}: missing {want - got}, extra {got - want}"


@pytest.mark.parametrize("router", ["gossipsub", "floodsub"])
@pytest.mark.parametrize("kind", ["js", "py"])
async def test_both_ways(kind: str, router: str, tmp_path: Path) -> None:
    # p2pstack-0 dials the remote node, the remote node dials p2pstack-2: both connection
    # directions in one run. All three publish; the p2pstack nodes' messages to each other go
    # through the remote node.
    async with open_nodes(["ours", kind, "ours"], router, log_dir=tmp_path) as nodes:
        edges = [(0, 1), (1, 2)]
        await connect(nodes, edges)
        await joined(nodes, edges, router)
        await delivered(nodes, await publish_all(nodes))


@pytest.mark.parametrize("router", ["gossipsub", "floodsub"])
async def test_between_two_js_nodes(router: str, tmp_path: Path) -> None:
    # js-0 <-> p2pstack <-> js-2: the js nodes only know each other through us.
    async with open_nodes(["js", "ours", "js"], router, log_dir=tmp_path) as nodes:
        edges = [(0, 1), (2, 1)]
        await connect(nodes, edges)
        await joined(nodes, edges, router)
        first, _, last = nodes
        assert last.peer_id not in await first.peers(TOPIC)
        assert first.peer_id not in await last.peers(TOPIC)
        # Only the js nodes publish: what each receives came through us.
        await delivered(nodes, await publish_all([first, last]))


async def test_mixed_mesh_of_nine(tmp_path: Path) -> None:
    # Around a ring js, py, p2pstack, js, ...: ring edges join different implementations,
    # chords to the node three ahead join equal ones; every node has four neighbours (all in
    # its mesh, D_lo = 4) and every other node within two hops.
    kinds = ["js", "py", "ours"] * 3
    size = len(kinds)
    ring = [((i + 1) % size, i) for i in range(size)]
    chords = [(i, (i + 3) % size) for i in range(size)]
    async with open_nodes(kinds, "gossipsub", log_dir=tmp_path) as nodes:
        await connect(nodes, ring + chords)
        await joined(nodes, ring + chords, "gossipsub")
        sent = await publish_all(nodes)
        assert len(sent) == size * COUNT
        await delivered(nodes, sent)


async def test_gossipsub_node_between_floodsub_and_gossipsub(tmp_path: Path) -> None:
    # py floodsub <-> p2pstack gossipsub <-> js gossipsub: we speak /floodsub/1.0.0 to one side
    # and /meshsub/1.x to the other, and carry messages across in both directions.
    routers = ["floodsub", "gossipsub", "gossipsub"]
    async with open_nodes(["py", "ours", "js"], routers, log_dir=tmp_path) as nodes:
        edges = [(0, 1), (2, 1)]
        await connect(nodes, edges)
        for node in nodes:
            await node.subscribe(TOPIC)
        flood, ours, gossip = nodes
        await until(ours, "peers", TOPIC, {flood.peer_id, gossip.peer_id})
        await until(flood, "peers", TOPIC, ours.peer_id)
        await until(gossip, "mesh", TOPIC, ours.peer_id)
        await until(ours, "mesh", TOPIC, gossip.peer_id)
        await delivered(nodes, await publish_all(nodes))
