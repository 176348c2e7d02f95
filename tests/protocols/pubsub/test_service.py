"""The Pubsub service between real in-process hosts: delivery over floodsub and gossipsub on a
pair, a line and a random graph, exactly once."""

from __future__ import annotations

from collections import Counter

import anyio
import pytest

from protocols.pubsub import (
    FloodsubConfig,
    GossipsubConfig,
    MessageTooLarge,
    Pubsub,
    PubsubMessage,
)
from tests.protocols.pubsub._network import (
    FLOOD,
    GOSSIP,
    ROUTERS,
    Edges,
    collect,
    line,
    ps,
    pubsub_network,
    random_graph,
    settle,
)

TOPIC = "news"


async def _all_to_all(
    config: FloodsubConfig | GossipsubConfig | list[FloodsubConfig | GossipsubConfig],
    size: int,
    edges: Edges,
    per_node: int,
) -> None:
    configs = config if isinstance(config, list) else [config] * size
    mesh = [isinstance(c, GossipsubConfig) for c in configs]
    async with pubsub_network(size, edges, lambda i: Pubsub(configs[i])) as hosts:
        subs = [ps(h).subscribe(TOPIC) for h in hosts]
        with anyio.fail_after(20):
            await settle(hosts, edges, TOPIC, mesh=mesh)
        sent: set[bytes] = set()
        for n in range(per_node):
            for i, host in enumerate(hosts):
                sent.add(ps(host).publish(TOPIC, f"{i}:{n}".encode()))
        got: list[list[PubsubMessage]] = [[] for _ in hosts]
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for sub, into in zip(subs, got, strict=True):
                    tg.start_soon(collect, sub, len(sent), into)
        for host, messages in zip(hosts, got, strict=True):
            ids = Counter(m.msg_id for m in messages)
            assert set(ids) == sent
            assert max(ids.values()) == 1
            own = [m for m in messages if m.from_peer == host.peer_id]
            assert len(own) == per_node and all(m.received_from is None for m in own)
        # Nothing else arrives: the next message each reads is a fresh marker, not a copy.
        marker = ps(hosts[-1]).publish(TOPIC, b"marker")
        with anyio.fail_after(20):
            for sub in subs:
                assert (await sub.receive()).msg_id == marker
        for host in hosts:
            stats = ps(host).statistics()
            assert stats.invalid == stats.malformed_rpcs == stats.dropped_outbound == 0


@pytest.mark.anyio
@pytest.mark.parametrize("router", ["floodsub", "gossipsub"])
async def test_two_nodes(router: str) -> None:
    await _all_to_all(ROUTERS[router], 2, [(0, 1)], per_node=5)


@pytest.mark.anyio
@pytest.mark.parametrize("router", ["floodsub", "gossipsub"])
async def test_line_of_five(router: str) -> None:
    await _all_to_all(ROUTERS[router], 5, line(5), per_node=3)


@pytest.mark.anyio
@pytest.mark.parametrize("router", ["floodsub", "gossipsub"])
async def test_random_graph_of_ten(router: str) -> None:
    await _all_to_all(ROUTERS[router], 10, random_graph(10, seed=7, chords=6), per_node=2)


@pytest.mark.anyio
async def test_mixed_floodsub_and_gossipsub_line() -> None:
    # Gossipsub nodes also speak floodsub: they flood to floodsub peers and mesh among
    # themselves.
    configs: list[FloodsubConfig | GossipsubConfig] = [FLOOD, GOSSIP, GOSSIP, FLOOD, GOSSIP]
    await _all_to_all(configs, 5, line(5), per_node=2)


@pytest.mark.anyio
async def test_message_fields_and_names() -> None:
    async with pubsub_network(2, [(0, 1)], lambda _i: Pubsub("gossipsub")) as (a, b):
        sub = ps(b).subscribe(TOPIC)
        with anyio.fail_after(10):
            await ps(a).wait_until(lambda s: b.peer_id in s.peers(TOPIC))
            msg_id = ps(a).publish(TOPIC, b"hello")
            message = await sub.receive()
        assert message.topic == TOPIC and message.data == b"hello"
        assert message.from_peer == a.peer_id and message.received_from == a.peer_id
        assert message.msg_id == msg_id and message.seqno is not None
        assert ps(a).topics == frozenset() and ps(b).topics == {TOPIC}
        with pytest.raises(MessageTooLarge):
            ps(a).publish(TOPIC, bytes(2 << 20))


def test_unknown_router_name() -> None:
    with pytest.raises(ValueError, match="unknown pubsub router"):
        Pubsub("meshsub")
