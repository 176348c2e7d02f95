"""Networks of gossipsub cores with peer scoring: a peer spamming invalid messages is scored
down, pruned from every mesh and then graylisted, while honest traffic keeps flowing."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from collections import Counter, deque
from typing import Any

from p2pstack.identity import Ed25519PrivateKey, Identity, PeerId
from protocols.pubsub import (
    GOSSIPSUB_V11_PROTOCOL_ID,
    GossipsubConfig,
    GossipsubRouter,
    Message,
    PeerScoreParams,
    TopicScoreParams,
    ValidationResult,
    decode_rpc,
    encode_rpc,
)
from protocols.pubsub._routing import Outgoing
from tests.protocols.pubsub.test_gossipsub_score import score_params


def _valid(message: Message) -> bool:
    return not message.data.startswith(b"bad")


class ScoredNetwork:
    """Gossipsub cores with scoring on a graph, RPCs through the codec, a validator that
    rejects messages starting with ``bad``; 10 ms per delivery round, heartbeats every second."""

    def __init__(
        self,
        count: int,
        edges: set[tuple[int, int]],
        seed: int,
        *,
        params: PeerScoreParams | None = None,
        droppers: frozenset[int] = frozenset(),
        **config: Any,
    ) -> None:
        self.droppers = droppers
        self.transcript = hashlib.sha256()
        keys = [Ed25519PrivateKey.from_seed(bytes([seed, i]) * 16) for i in range(count)]
        self.routers: list[GossipsubRouter] = []
        for i, key in enumerate(keys):
            identity = Identity.from_private_key(key)
            self.routers.append(
                GossipsubRouter(
                    identity.peer_id,
                    rng=random.Random(seed * 1000 + i),
                    private_key=identity.private_key,
                    config=GossipsubConfig(score_params=params or score_params(), **config),
                )
            )
        self.index = {r.local: i for i, r in enumerate(self.routers)}
        self.wire: deque[tuple[int, PeerId, bytes]] = deque()
        self.delivered: list[Counter[bytes]] = [Counter() for _ in range(count)]
        self.now = 0.0
        for a, b in sorted(edges):
            ra, rb = self.routers[a], self.routers[b]
            self.send(a, ra.add_peer(rb.local, GOSSIPSUB_V11_PROTOCOL_ID, outbound=True, ip=None))
            self.send(b, rb.add_peer(ra.local, GOSSIPSUB_V11_PROTOCOL_ID, ip=None))

    def send(self, sender: int, out: list[Outgoing]) -> None:
        for peer, rpc in out:
            data = encode_rpc(rpc)
            self.transcript.update(bytes([sender, self.index[peer]]) + data)
            self.wire.append((self.index[peer], self.routers[sender].local, data))

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = round(self.now + 0.01, 2)
            for _ in range(len(self.wire)):
                target, source, data = self.wire.popleft()
                router = self.routers[target]
                result = router.handle_rpc(source, decode_rpc(data), self.now)
                self.send(target, result.out)
                for received in result.rpc.received:
                    if not _valid(received.message):
                        router.report_validation(received.msg_id, ValidationResult.REJECT, self.now)
                        continue
                    if received.local:
                        self.delivered[target][received.msg_id] += 1
                    forwarded = router.forward(received, self.now)
                    if target not in self.droppers:
                        self.send(target, forwarded)
            for i, router in enumerate(self.routers):
                if router.next_deadline() <= self.now:
                    self.send(i, router.handle_timer(self.now))

    def score_of(self, node: int, peer: int) -> float:
        return self.routers[node].scoring.value(self.routers[peer].local, self.now)


def _network(seed: int, **kw: Any) -> ScoredNetwork:
    rng = random.Random(seed)
    honest = range(1, 13)
    edges = {(0, i) for i in honest}  # the spammer (0) is connected to every honest node
    edges |= {(rng.randrange(1, i), i) for i in range(2, 13)}
    while len(edges) < 12 + 40:
        a, b = sorted(rng.sample(honest, 2))
        edges.add((a, b))
    net = ScoredNetwork(13, edges, seed, d=4, d_lo=3, d_hi=8, d_out=1, **kw)
    for i, router in enumerate(net.routers):
        net.send(i, router.subscribe("t", net.now))
    net.run(3.0)
    return net


def _publish(net: ScoredNetwork, node: int, data: bytes) -> bytes:
    _, msg_id, out = net.routers[node].publish("t", data, net.now)
    net.send(node, out)
    return msg_id


def test_invalid_spammer_is_pruned_then_graylisted() -> None:
    net = _network(seed=4)
    spammer = net.routers[0].local
    assert any(spammer in r.mesh["t"] for r in net.routers[1:])  # it got into meshes
    for n in range(3):
        _publish(net, 0, b"bad %d" % n)
    net.run(1.5)
    for node in range(1, 13):
        assert net.score_of(node, 0) < 0
        assert spammer not in net.routers[node].mesh["t"]  # pruned at the heartbeat
        assert not net.routers[node].scoring.graylisted(spammer, net.now)
    assert net.now == 4.5  # the next decay tick is at 5 s
    for n in range(3, 13):
        _publish(net, 0, b"bad %d" % n)
    net.run(0.2)
    for node in range(1, 13):
        # About 7 more rejections took it below the graylist threshold; the rest were ignored.
        assert net.routers[node].scoring.graylisted(spammer, net.now)
    valid_id = _publish(net, 0, b"good, but from a graylisted peer")
    honest_id = _publish(net, 5, b"honest")
    net.run(0.2)
    for node in range(1, 13):
        assert net.delivered[node][valid_id] == 0  # its RPCs are ignored
        if node != 5:
            assert net.delivered[node][honest_id] == 1
    net.run(2.0)  # the penalty decays (0.9 a second): out of the graylist, still negative
    for node in range(1, 13):  # honest peers keep non-negative scores everywhere
        for peer in net.routers[node].mesh["t"]:
            assert net.routers[node].scoring.value(peer, net.now) >= 0
        honest = [p for p in net.routers[node].topic_peers("t") if p != spammer]
        assert len(net.routers[node].mesh["t"]) >= min(3, len(honest)), len(honest)


def test_scoring_on_keeps_an_honest_network_delivering() -> None:
    net = _network(seed=6)
    ids = [_publish(net, i, b"m%d" % i) for i in range(13)]
    net.run(3.0)
    for node in range(13):
        for i, msg_id in enumerate(ids):
            assert net.delivered[node][msg_id] == (0 if i == node else 1)
    for node in range(1, 13):
        assert net.score_of(node, 0) >= 0


def _p3_params() -> PeerScoreParams:
    """P2 (first deliveries) and P3 (mesh delivery rate) only."""
    topic = TopicScoreParams(
        topic_weight=1.0,
        time_in_mesh_weight=0.0,
        first_message_deliveries_weight=1.0,
        first_message_deliveries_decay=0.9,
        first_message_deliveries_cap=50.0,
        mesh_message_deliveries_weight=-1.0,
        mesh_message_deliveries_decay=0.9,
        mesh_message_deliveries_threshold=2.0,
        mesh_message_deliveries_cap=20.0,
        mesh_message_deliveries_window=0.05,
        mesh_message_deliveries_activation=2.0,
        mesh_failure_penalty_weight=-1.0,
        mesh_failure_penalty_decay=0.9,
        invalid_message_deliveries_weight=-1.0,
        invalid_message_deliveries_decay=0.9,
    )
    return PeerScoreParams(
        topics={"t": topic},
        topic_score_cap=0.0,
        app_specific_weight=0.0,
        ip_colocation_factor_weight=0.0,
        behaviour_penalty_weight=0.0,
    )


def test_a_mesh_peer_that_forwards_nothing_is_pruned() -> None:
    # Node 0 takes part in the mesh but forwards nothing: its mesh delivery rate stays below
    # the P3 threshold, its score turns negative and every honest node prunes it.
    net = _network(seed=8, params=_p3_params(), droppers=frozenset({0}))
    dropper = net.routers[0].local
    assert any(dropper in r.mesh["t"] for r in net.routers[1:])
    seen_in_mesh: set[int] = set()
    for second in range(8):
        for node in range(1, 13):
            _publish(net, node, b"m %d %d" % (second, node))
        seen_in_mesh |= {n for n in range(1, 13) if dropper in net.routers[n].mesh["t"]}
        net.run(1.0)
    assert seen_in_mesh  # it was in meshes while the messages flowed
    for node in range(1, 13):
        assert dropper not in net.routers[node].mesh["t"]
        if node in seen_in_mesh:  # a sticky mesh failure penalty (P3b) remains
            assert net.score_of(node, 0) < 0
        for peer in net.routers[node].mesh["t"]:
            assert net.routers[node].scoring.value(peer, net.now) >= 0


def scored_transcript(seed: int) -> str:
    """Every RPC of a scored run with a dropper and a spammer (pruning, graylisting), hashed,
    with the final scores."""
    net = _network(seed, params=_p3_params(), droppers=frozenset({0}))
    for second in range(4):
        for node in range(13):
            _publish(net, node, b"bad" if node == 0 else b"m %d %d" % (second, node))
        net.run(1.0)
    scores = [net.score_of(a, b) for a in range(13) for b in range(13) if a != b]
    net.transcript.update(repr(scores).encode())
    return net.transcript.hexdigest()


def test_scored_runs_are_identical_across_processes() -> None:
    code = (
        "from tests.protocols.pubsub.test_gossipsub_score_network import scored_transcript; "
        "print(scored_transcript(3))"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        digests.add(done.stdout.strip())
    assert len(digests) == 1
