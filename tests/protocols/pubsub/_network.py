"""In-process pubsub networks for the service tests: hosts on the memory transport (plaintext,
yamux) running identify and pubsub, connected along a given graph."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import anyio

from p2pstack.builder import open_host
from p2pstack.host import Host
from p2pstack.identity import PeerId
from protocols.identify import Identify
from protocols.pubsub import FloodsubConfig, GossipsubConfig, Pubsub, PubsubMessage, Subscription
from transports.memory import MemoryNetwork, MemoryTransport
from transports.plaintext import Plaintext
from transports.yamux import Yamux, YamuxConfig

NO_KEEPALIVE = YamuxConfig(keepalive_interval=None)

#: Fast heartbeats so that meshes settle within a test's time.
GOSSIP = GossipsubConfig(heartbeat_interval=0.1)
FLOOD = FloodsubConfig()
ROUTERS: dict[str, FloodsubConfig | GossipsubConfig] = {"floodsub": FLOOD, "gossipsub": GOSSIP}

Edges = Sequence[tuple[int, int]]


def ps(host: Host) -> Pubsub:
    return host.service(Pubsub)


@asynccontextmanager
async def open_pubsub_host(net: MemoryNetwork, service: Pubsub) -> AsyncIterator[Host]:
    async with open_host(
        transports=[MemoryTransport(net)],
        security=[Plaintext()],
        muxers=[Yamux(NO_KEEPALIVE)],
        services=[Identify(), service],
        listen=["/memory/0"],
    ) as host:
        yield host


@asynccontextmanager
async def pubsub_network(
    size: int, edges: Edges, make: Callable[[int], Pubsub], net: MemoryNetwork | None = None
) -> AsyncIterator[list[Host]]:
    """``size`` hosts running ``make(i)`` (on ``net``, or a new memory network), host ``a``
    connected to host ``b`` for each edge."""
    net = net or MemoryNetwork()
    async with AsyncExitStack() as stack:
        hosts = [
            await stack.enter_async_context(open_pubsub_host(net, make(i))) for i in range(size)
        ]
        with anyio.fail_after(10):
            for a, b in edges:
                await hosts[a].connect(hosts[b].addrs[0])
        yield hosts


def line(size: int) -> list[tuple[int, int]]:
    return [(i, i + 1) for i in range(size - 1)]


def random_graph(size: int, seed: int, chords: int) -> list[tuple[int, int]]:
    """A ring (connected) plus ``chords`` random extra edges, every degree at most 6."""
    rng = random.Random(seed)
    edges = {(i, (i + 1) % size) for i in range(size)}
    degree = dict.fromkeys(range(size), 2)
    while chords:
        a, b = sorted(rng.sample(range(size), 2))
        if (a, b) in edges or (b, a) in edges or max(degree[a], degree[b]) >= 6:
            continue
        edges.add((a, b))
        degree[a] += 1
        degree[b] += 1
        chords -= 1
    return sorted(edges)


def neighbours(size: int, edges: Edges) -> list[set[int]]:
    out: list[set[int]] = [set() for _ in range(size)]
    for a, b in edges:
        out[a].add(b)
        out[b].add(a)
    return out


async def settle(
    hosts: list[Host], edges: Edges, topic: str, *, mesh: bool | Sequence[bool]
) -> None:
    """Wait until every host knows each neighbour's subscription to ``topic`` and, where
    ``mesh`` (per host: it runs gossipsub), has every gossipsub neighbour in its mesh (all
    degrees are at most D)."""
    gossip = [mesh] * len(hosts) if isinstance(mesh, bool) else list(mesh)
    nbrs = neighbours(len(hosts), edges)
    for i, (host, mine) in enumerate(zip(hosts, nbrs, strict=True)):
        want = {hosts[j].peer_id for j in mine}
        meshed = {hosts[j].peer_id for j in mine if gossip[j]} if gossip[i] else set()

        def done(service: Pubsub, want: set[PeerId] = want, meshed: set[PeerId] = meshed) -> bool:
            if set(service.peers(topic)) != want:
                return False
            return not meshed or set(service.mesh(topic)) == meshed

        await ps(host).wait_until(done)


async def collect(sub: Subscription, count: int, into: list[PubsubMessage]) -> None:
    """Read ``count`` messages of ``sub`` into ``into``."""
    async for message in sub:
        into.append(message)
        if len(into) == count:
            return
