"""Gossipsub v1.1 peer scoring and peer exchange against js-libp2p
(https://github.com/libp2p/specs/blob/master/pubsub/gossipsub/gossipsub-v1.1.md#peer-scoring,
#prune-backoff-and-peer-exchange): the js peer runs with ``--pubsub-score`` (topic score
parameters, ``doPX``, acceptPXThreshold 0; tests/interop/README.md "Pubsub mode").

- After a warm-up in a shared mesh, js scores the p2pstack node above 0 with no behaviour
  penalty (P7): we keep the backoffs js sets and deliver what we advertise.
- PX we send: a p2pstack node whose mesh holds one peer prunes a second js node, offering the
  first one's signed record; the pruned js node dials it (nothing else tells it the address).
- PX js sends: a js node whose mesh holds one peer prunes a second p2pstack node, offering the
  first; the pruned p2pstack node dials it.
- Gossip both ways: IHAVE/IWANT under js's message IDs, no broken promise on either side.
- Leaving and joining again within the unsubscribe backoff GRAFTs no one early (P7 at js).

p2pstack runs with the js peer's score parameters and ``js_message_id``. The file takes about a
minute (the rejoin test waits out the 10 s backoff).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path

import anyio
import attrs
import pytest

from p2pstack.host import Host
from p2pstack.identity import PeerId
from protocols.pubsub import (
    GossipsubConfig,
    PeerScoreParams,
    PeerScoreThresholds,
    Pubsub,
    PubsubMessage,
    Subscription,
    TopicScoreParams,
    js_message_id,
)
from tests.interop.peers import Event
from tests.interop.pubsub_nodes import (
    OP_TIMEOUT,
    RemoteNode,
    open_pubsub_host,
    open_remote,
    until,
)

pytestmark = pytest.mark.anyio

TOPIC = "score-topic"
#: Messages each node publishes during the warm-up.
WARMUP_MESSAGES = 5
#: Seconds js's scores are watched after the warm-up: a broken IWANT promise costs P7 at the
#: first js heartbeat (1 s) after the 3 s follow-up.
WARMUP_SECONDS = 5.0


@pytest.fixture
def anyio_backend() -> str:
    """The js peers are subprocesses: one backend is enough."""
    return "asyncio"


def open_js(
    log_dir: Path, *, bootstrap: tuple[str, ...] = (), degree: tuple[int, int, int] = (6, 4, 12)
) -> AbstractAsyncContextManager[RemoteNode]:
    """A js peer with scoring and PX on ``TOPIC``; ``degree`` is its D, D_lo, D_hi."""
    d, d_lo, d_hi = degree
    options = ["--pubsub-score", "--pubsub-topic", TOPIC]
    options += ["--gossip-d", str(d), "--gossip-dlo", str(d_lo), "--gossip-dhi", str(d_hi)]
    return open_remote("js", "gossipsub", bootstrap, log_dir=log_dir, options=options)


async def js_scores(js: RemoteNode) -> dict[str, Event]:
    """js's score of each connected pubsub peer, with P7's counter, by peer ID."""
    return {p["peer_id"]: p for p in (await js.command("scores"))["peers"]}


def our_config(*, degree: tuple[int, int, int] = (6, 4, 12)) -> GossipsubConfig:
    """Our gossipsub with the js peer's score parameters (js message IDs, so that IHAVE and IWANT
    IDs match), PX on and accepted from peers scoring 0 or more."""
    topic = TopicScoreParams(
        topic_weight=1.0,
        time_in_mesh_weight=0.01,
        time_in_mesh_quantum=1.0,
        time_in_mesh_cap=10.0,
        first_message_deliveries_weight=1.0,
        first_message_deliveries_decay=0.9,
        first_message_deliveries_cap=100.0,
        mesh_message_deliveries_weight=0.0,
        mesh_failure_penalty_weight=0.0,
        invalid_message_deliveries_weight=-100.0,
        invalid_message_deliveries_decay=0.5,
    )
    params = PeerScoreParams(
        topics={TOPIC: topic},
        ip_colocation_factor_weight=0.0,
        behaviour_penalty_weight=-10.0,
        behaviour_penalty_decay=0.9,
    )
    d, d_lo, d_hi = degree
    return GossipsubConfig(
        d=d,
        d_lo=d_lo,
        d_hi=d_hi,
        d_out=min(2, d // 2),
        message_id=js_message_id,
        do_px=True,
        score_params=params,
        thresholds=PeerScoreThresholds(accept_px=0.0, opportunistic_graft=1.0),
    )


def open_ours(config: GossipsubConfig) -> AbstractAsyncContextManager[Host]:
    """A p2pstack host running ``Pubsub(config)`` without its own messages handed back."""
    return open_pubsub_host(Pubsub(config, deliver_own=False))


def addr_of(host: Host) -> str:
    return f"{host.listen_addrs[0]}/p2p/{host.peer_id}"


async def wait_pubsub(
    host: Host, check: Callable[[Pubsub], bool], timeout: float = OP_TIMEOUT
) -> None:
    """Wait (bounded) until ``check(pubsub)`` holds."""
    with anyio.fail_after(timeout):
        await host.service(Pubsub).wait_until(check)


async def receive(sub: Subscription, count: int) -> list[PubsubMessage]:
    """The next ``count`` messages of ``sub`` (bounded)."""
    with anyio.fail_after(OP_TIMEOUT):
        return [await sub.receive() for _ in range(count)]


async def watch_scores(js: RemoteNode, peers: list[str], seconds: float) -> dict[str, Event]:
    """Poll js's scores for ``seconds``: every sample must show each of ``peers`` with a score of
    at least 0 and no behaviour penalty (P7). Returns the last sample."""
    last: dict[str, Event] = {}
    with anyio.move_on_after(seconds):
        while True:
            last = await js_scores(js)
            for peer in peers:
                assert peer in last, f"js does not score {peer}: {last}"
                assert last[peer]["behaviour_penalty"] == 0, last[peer]
                assert last[peer]["score"] >= 0, last[peer]
            await anyio.sleep(0.5)
    return last


async def test_js_scores_us_above_zero_without_penalty(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        ours = await stack.enter_async_context(open_ours(our_config()))
        js = await stack.enter_async_context(open_js(tmp_path, bootstrap=(addr_of(ours),)))
        pubsub = ours.service(Pubsub)
        js_id = PeerId.from_string(js.peer_id)
        sub = await stack.enter_async_context(pubsub.subscribe(TOPIC))
        await js.command(f"subscribe {TOPIC}")
        await wait_pubsub(ours, lambda p: js_id in p.mesh(TOPIC))
        await until(js, "mesh", TOPIC, str(ours.peer_id))
        for i in range(WARMUP_MESSAGES):
            pubsub.publish(TOPIC, f"ours-{i}".encode())
            await js.command(f"publish {TOPIC} js-{i}")
        got = await js.receive(WARMUP_MESSAGES)
        assert sorted(m["data"] for m in got) == [f"ours-{i}" for i in range(WARMUP_MESSAGES)]
        mine = await receive(sub, WARMUP_MESSAGES)
        assert sorted(m.data for m in mine) == [f"js-{i}".encode() for i in range(WARMUP_MESSAGES)]
        last = await watch_scores(js, [str(ours.peer_id)], WARMUP_SECONDS)
        # P1 (time in mesh) and P2 (first deliveries of our messages) are positive.
        assert last[str(ours.peer_id)]["score"] > 0
        assert pubsub.score(js_id) > 0  # and our own score of js, with the same parameters


async def pruned_by(pruner: str, nodes: list[RemoteNode]) -> list[RemoteNode]:
    """The js nodes among ``nodes`` that have received a PRUNE from ``pruner``."""
    found = []
    for node in nodes:
        events = (await node.command("prunes"))["prunes"]
        if any(e["peer_id"] == pruner and e["direction"] == "inbound" for e in events):
            found.append(node)
    return found


async def until_pruned(js: RemoteNode, peer: str) -> None:
    """Wait (bounded) until js has sent ``peer`` a PRUNE."""
    with anyio.fail_after(OP_TIMEOUT):
        while True:
            events = (await js.command("prunes"))["prunes"]
            if any(e["peer_id"] == peer and e["direction"] == "outbound" for e in events):
                return
            await anyio.sleep(0.2)


async def test_js_uses_the_peers_we_offer_on_prune(tmp_path: Path) -> None:
    # Our mesh holds one peer: the second js node to GRAFT is pruned with the first one offered.
    async with AsyncExitStack() as stack:
        ours = await stack.enter_async_context(open_ours(our_config(degree=(1, 1, 1))))
        pubsub = ours.service(Pubsub)
        await stack.enter_async_context(pubsub.subscribe(TOPIC))
        a = await stack.enter_async_context(open_js(tmp_path, bootstrap=(addr_of(ours),)))
        b = await stack.enter_async_context(open_js(tmp_path, bootstrap=(addr_of(ours),)))
        await a.command(f"subscribe {TOPIC}")
        await b.command(f"subscribe {TOPIC}")
        # a and b know only our address: they can meet only through the PX of our PRUNE.
        await until(a, "peers", TOPIC, b.peer_id, timeout=2 * OP_TIMEOUT)
        await until(b, "peers", TOPIC, a.peer_id)
        pruned = await pruned_by(str(ours.peer_id), [a, b])
        assert len(pruned) == 1, "exactly one js node was pruned by us"
        other = b if pruned[0] is a else a
        conns = (await pruned[0].command("connections"))["peers"]
        assert {"peer_id": other.peer_id, "direction": "outbound"} in conns
        assert [str(p) for p in pubsub.mesh(TOPIC)] == [other.peer_id]


async def test_js_uses_a_p2pstack_record_we_offer(tmp_path: Path) -> None:
    # The offered peer is a p2pstack node: js checks the signed record p2pstack made (and we
    # passed on) before dialing it.
    async with AsyncExitStack() as stack:
        ours = await stack.enter_async_context(open_ours(our_config(degree=(1, 1, 1))))
        pubsub = ours.service(Pubsub)
        await stack.enter_async_context(pubsub.subscribe(TOPIC))
        offered = await stack.enter_async_context(open_ours(our_config()))
        await stack.enter_async_context(offered.service(Pubsub).subscribe(TOPIC))
        await offered.connect(addr_of(ours))
        await wait_pubsub(ours, lambda p: p.mesh(TOPIC) == [offered.peer_id])
        js = await stack.enter_async_context(open_js(tmp_path, bootstrap=(addr_of(ours),)))
        await js.command(f"subscribe {TOPIC}")
        await until(js, "peers", TOPIC, str(offered.peer_id), timeout=2 * OP_TIMEOUT)
        assert await pruned_by(str(ours.peer_id), [js]) == [js]
        conns = (await js.command("connections"))["peers"]
        assert {"peer_id": str(offered.peer_id), "direction": "outbound"} in conns
        js_id = PeerId.from_string(js.peer_id)
        await wait_pubsub(offered, lambda p: js_id in p.mesh(TOPIC))


async def test_we_use_the_peers_js_offers_on_prune(tmp_path: Path) -> None:
    # js's mesh holds one peer: the second p2pstack node to GRAFT is pruned with the first offered.
    async with AsyncExitStack() as stack:
        js = await stack.enter_async_context(open_js(tmp_path, degree=(1, 1, 1)))
        await js.command(f"subscribe {TOPIC}")
        nodes = [await stack.enter_async_context(open_ours(our_config())) for _ in range(2)]
        subs = []
        for node in nodes:
            subs.append(await stack.enter_async_context(node.service(Pubsub).subscribe(TOPIC)))
            await node.connect(js.addr)
        x, y = nodes
        # x and y know only js's address: they can meet only through the PX of js's PRUNE.
        await wait_pubsub(x, lambda p: y.peer_id in p.peers(TOPIC), 2 * OP_TIMEOUT)
        await wait_pubsub(y, lambda p: x.peer_id in p.peers(TOPIC))
        prunes = [e for e in (await js.command("prunes"))["prunes"] if e["direction"] == "outbound"]
        ids = {str(n.peer_id): n for n in nodes}
        assert [e["peer_id"] in ids for e in prunes] == [True], "js pruned one of us, once"
        pruned = ids[prunes[0]["peer_id"]]
        other = y if pruned is x else x
        assert [c.direction for c in pruned.connections(other.peer_id)] == ["outbound"]
        # The pruned node meshes with the offered one and keeps js's backoff (a GRAFT to js
        # within it would cost a P7 penalty, watched below).
        await wait_pubsub(pruned, lambda p: other.peer_id in p.mesh(TOPIC))
        for i, node in enumerate(nodes):
            node.service(Pubsub).publish(TOPIC, f"ours-{i}".encode())
        await js.command(f"publish {TOPIC} js")
        got = await js.receive(2)
        assert sorted(m["data"] for m in got) == ["ours-0", "ours-1"]
        for i, sub in enumerate(subs):
            mine = await receive(sub, 2)
            assert sorted(m.data for m in mine) == sorted([b"js", f"ours-{1 - i}".encode()])
        last = await watch_scores(js, list(ids), WARMUP_SECONDS)
        assert last[str(other.peer_id)]["score"] > 0  # in js's mesh: P1, and P2 for its message
        stats = await js.command(f"score_stats {pruned.peer_id}")
        assert stats["topics"][TOPIC]["in_mesh"] is False


async def test_gossip_both_ways_keeps_promises(tmp_path: Path) -> None:
    # js (mesh of one: y) prunes x; x meshes only with z, which is connected to x alone. A
    # message js publishes reaches x by IHAVE/IWANT (then z); one z publishes reaches js by x's
    # IHAVE and js's IWANT: a promise js tracks under its own message ID (P7 if broken).
    async with AsyncExitStack() as stack:
        js = await stack.enter_async_context(open_js(tmp_path, degree=(1, 1, 1)))
        await js.command(f"subscribe {TOPIC}")
        js_id = PeerId.from_string(js.peer_id)
        lone = attrs.evolve(our_config(), do_px=False)
        x, y, z = [await stack.enter_async_context(open_ours(lone)) for _ in range(3)]
        subs = {}
        for node in (x, y, z):
            subs[node] = await stack.enter_async_context(node.service(Pubsub).subscribe(TOPIC))
        await y.connect(js.addr)
        await until(js, "mesh", TOPIC, str(y.peer_id))
        await x.connect(js.addr)
        await z.connect(addr_of(x))
        await until_pruned(js, str(x.peer_id))
        await wait_pubsub(x, lambda p: z.peer_id in p.mesh(TOPIC) and js_id not in p.mesh(TOPIC))
        await js.command(f"publish {TOPIC} from-js")
        z.service(Pubsub).publish(TOPIC, b"from-z")
        got = await js.receive(1)
        assert [m["data"] for m in got] == ["from-z"]
        assert got[0]["from"] == str(z.peer_id)
        for node, want in ((x, [b"from-js", b"from-z"]), (y, [b"from-js", b"from-z"])):
            assert sorted(m.data for m in await receive(subs[node], 2)) == want
        assert [m.data for m in await receive(subs[z], 1)] == [b"from-js"]
        await watch_scores(js, [str(x.peer_id), str(y.peer_id)], WARMUP_SECONDS)
        assert x.service(Pubsub).score(js_id) >= 0


async def test_rejoin_keeps_the_backoff_of_our_prune(tmp_path: Path) -> None:
    # Leaving PRUNEs js with the 10 s unsubscribe backoff; a publish while away puts js in our
    # fanout; joining again within the backoff must not GRAFT js from that fanout (P7 in js).
    async with AsyncExitStack() as stack:
        config = attrs.evolve(our_config(), flood_publish=False)
        ours = await stack.enter_async_context(open_ours(config))
        js = await stack.enter_async_context(open_js(tmp_path, bootstrap=(addr_of(ours),)))
        pubsub = ours.service(Pubsub)
        js_id = PeerId.from_string(js.peer_id)
        pubsub.subscribe(TOPIC)
        await js.command(f"subscribe {TOPIC}")
        await wait_pubsub(ours, lambda p: js_id in p.mesh(TOPIC))
        await until(js, "mesh", TOPIC, str(ours.peer_id))
        pubsub.unsubscribe(TOPIC)
        pubsub.publish(TOPIC, b"while-away")
        assert [m["data"] for m in await js.receive(1)] == ["while-away"]
        sub = await stack.enter_async_context(pubsub.subscribe(TOPIC))
        await watch_scores(js, [str(ours.peer_id)], 2.0)
        assert js_id not in pubsub.mesh(TOPIC)
        await js.command(f"publish {TOPIC} back")
        assert [m.data for m in await receive(sub, 1)] == [b"back"]
        # Once the backoff (and our slack) is over, the mesh link comes back without penalty.
        await until(js, "mesh", TOPIC, str(ours.peer_id))
        await wait_pubsub(ours, lambda p: js_id in p.mesh(TOPIC))
        last = await watch_scores(js, [str(ours.peer_id)], 1.0)
        assert last[str(ours.peer_id)]["score"] > 0
        assert pubsub.score(js_id) >= 0
