"""The gossipsub router core: control handling, the heartbeat, and networks of cores."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from collections import Counter, deque

import pytest
from multiaddr import Multiaddr

from p2pstack.identity import Ed25519PrivateKey, Identity, PeerId, PeerRecord
from protocols.pubsub import (
    GOSSIPSUB_V10_PROTOCOL_ID,
    GOSSIPSUB_V11_PROTOCOL_ID,
    GOSSIPSUB_V12_PROTOCOL_ID,
    RPC,
    ControlGraft,
    ControlIDontWant,
    ControlIHave,
    ControlIWant,
    ControlMessage,
    ControlPrune,
    MessageTooLarge,
    PeerInfo,
    SubOpts,
    ValidationError,
    decode_rpc,
    encode_rpc,
    make_message,
    px_record,
)
from protocols.pubsub._gossip_state import GossipsubConfig
from protocols.pubsub._gossipsub import GossipsubRouter
from protocols.pubsub._routing import Outgoing

V11 = GOSSIPSUB_V11_PROTOCOL_ID


def _router(seed: int = 0, **config: object) -> GossipsubRouter:
    return _router_of(Identity.generate(), seed, **config)


def _router_of(identity: Identity, seed: int, **config: object) -> GossipsubRouter:
    return GossipsubRouter(
        identity.peer_id,
        rng=random.Random(seed),
        private_key=identity.private_key,
        config=GossipsubConfig(**config),  # type: ignore[arg-type]
    )


def _peers(router: GossipsubRouter, count: int, topic: str = "t", **kw: object) -> list[PeerId]:
    peers = [Identity.generate().peer_id for _ in range(count)]
    for peer in peers:
        router.add_peer(peer, str(kw.get("protocol", V11)), outbound=bool(kw.get("outbound")))
        router.handle_rpc(peer, RPC(subscriptions=(SubOpts(True, topic),)), 0.0)
    return peers


def _control(out: list[Outgoing], peer: PeerId) -> ControlMessage:
    rpcs = [rpc for p, rpc in out if p == peer]
    assert len(rpcs) == 1
    assert rpcs[0].control is not None
    return rpcs[0].control


def test_subscribe_grafts_d_peers() -> None:
    router = _router()
    peers = _peers(router, 10)
    out = router.subscribe("t", 0.0)
    grafted = [p for p, rpc in out if rpc.control and rpc.control.graft]
    assert len(grafted) == 6
    assert router.mesh["t"] == set(grafted)
    assert {p for p, _ in out} == set(peers)  # everyone hears of the subscription
    assert router.subscribe("t", 0.0) == []


def test_graft_refusals() -> None:
    router = _router(do_px=True, d=3, d_lo=2, d_hi=3)
    peers = _peers(router, 5)
    unknown = router.handle_rpc(
        peers[0], RPC(control=ControlMessage(graft=(ControlGraft("x"),))), 0.0
    )
    (prune,) = _control(unknown.out, peers[0]).prune
    assert (prune.topic, prune.peers, prune.backoff) == ("x", (), 60)
    assert "x" not in router.backoff  # made-up topics leave no state behind

    router.subscribe("t", 0.0)
    for peer in peers:
        router.mesh["t"].discard(peer)
    graft = RPC(control=ControlMessage(graft=(ControlGraft("t"),)))
    for peer in peers[:3]:
        assert router.handle_rpc(peer, graft, 0.0).out == []
    full = router.handle_rpc(peers[3], graft, 0.0)
    (prune,) = _control(full.out, peers[3]).prune
    assert prune.backoff == 60 and len(prune.peers) == 4  # PX: the other subscribers
    assert router.mesh["t"] == set(peers[:3])
    again = router.handle_rpc(peers[3], graft, 30.0)  # GRAFT during backoff
    assert _control(again.out, peers[3]).prune[0].backoff == 60
    assert router.backoff["t"][peers[3]] == 90.0  # restarted


def test_prune_sets_backoff_and_heartbeat_respects_it() -> None:
    router = _router(do_px=True)
    (peer,) = _peers(router, 1)
    router.subscribe("t", 0.0)
    offered = PeerInfo(Identity.generate().peer_id, b"record")
    prune = RPC(control=ControlMessage(prune=(ControlPrune("t", (offered,), backoff=5),)))
    result = router.handle_rpc(peer, prune, 0.0)
    assert result.px == (offered,)
    assert router.mesh["t"] == set()
    assert router.heartbeat(1.0) == []  # under D_lo, but the only peer is backing off
    assert router.heartbeat(5.5) == []  # slack: one heartbeat more
    out = router.heartbeat(6.0)
    assert _control(out, peer).graft == (ControlGraft("t"),)


def test_prune_of_a_topic_we_are_not_in_is_ignored() -> None:
    router = _router(do_px=True)
    (peer,) = _peers(router, 1)
    offered = PeerInfo(Identity.generate().peer_id)
    prune = RPC(control=ControlMessage(prune=(ControlPrune("t", (offered,), backoff=5),)))
    assert router.handle_rpc(peer, prune, 0.0).px == ()
    assert router.backoff == {}


def test_graft_flood_on_made_up_topics_keeps_no_state() -> None:
    router = _router()
    (peer,) = _peers(router, 1)
    grafts = tuple(ControlGraft(f"topic-{i}") for i in range(1000))
    result = router.handle_rpc(peer, RPC(control=ControlMessage(graft=grafts)), 0.0)
    (rpc,) = [r for _, r in result.out]
    assert rpc.control is not None and len(rpc.control.prune) == 1000
    assert router.backoff == {} and router.mesh == {}


def test_ihave_messages_are_capped_per_heartbeat() -> None:
    router = _router(max_ihave_messages=2)
    (peer,) = _peers(router, 1)
    router.subscribe("t", 0.0)
    for n in range(2):
        ihave = RPC(control=ControlMessage(ihave=(ControlIHave("t", [bytes([n])]),) * 3))
        assert _control(router.handle_rpc(peer, ihave, 0.0).out, peer).iwant
    late = RPC(control=ControlMessage(ihave=(ControlIHave("t", [b"z"]),)))
    assert router.handle_rpc(peer, late, 0.0).out == []
    router.heartbeat(1.0)
    assert _control(router.handle_rpc(peer, late, 1.0).out, peer).iwant


def test_v10_peers_get_prune_without_backoff() -> None:
    router = _router()
    (peer,) = _peers(router, 1, protocol=GOSSIPSUB_V10_PROTOCOL_ID)
    router.subscribe("t", 0.0)
    out = router.unsubscribe("t", 0.0)
    assert _control(out, peer).prune == (ControlPrune("t", (), None),)


def test_unsubscribe_prunes_with_unsubscribe_backoff() -> None:
    router = _router()
    peers = _peers(router, 3)
    router.subscribe("t", 0.0)
    out = router.unsubscribe("t", 0.0)
    for peer in peers:
        rpc = next(r for p, r in out if p == peer)
        assert rpc.subscriptions == (SubOpts(False, "t"),)
        assert rpc.control == ControlMessage(prune=(ControlPrune("t", (), 10),))
    assert "t" not in router.mesh


def _signed(topic: str, n: int, size: int = 1) -> tuple[bytes, RPC]:
    publisher = Identity.generate()
    message = make_message(topic, bytes([n]) * size, private_key=publisher.private_key, seqno=n)
    return publisher.peer_id.to_bytes() + message.seqno, RPC(publish=(message,))  # type: ignore[operator]


def test_ihave_iwant_round() -> None:
    router = _router(max_ihave_length=3)
    (peer,) = _peers(router, 1)
    router.subscribe("t", 0.0)
    known_id, known = _signed("t", 1)
    router.handle_rpc(peer, known, 0.0)
    ids = [known_id, b"a", b"b", b"c", b"d"]
    ihave = RPC(control=ControlMessage(ihave=(ControlIHave("t", ids), ControlIHave("u", [b"z"]))))
    (iwant,) = _control(router.handle_rpc(peer, ihave, 0.0).out, peer).iwant
    assert len(iwant.message_ids) == 3 and set(iwant.message_ids) <= {b"a", b"b", b"c", b"d"}
    assert router.handle_rpc(peer, ihave, 0.0).out == []  # asked cap reached this heartbeat
    assert len(router.promises) == 1
    router.heartbeat(1.0)
    router.heartbeat(4.0)  # promise deadline (3 s) passed without delivery
    assert router.broken_promises == {peer: 1}


def test_iwant_served_from_cache_with_retransmission_cap() -> None:
    router = _router(gossip_retransmission=2)
    (peer,) = _peers(router, 1)
    router.subscribe("t", 0.0)
    message, msg_id, _ = router.publish("t", b"x", 0.0)
    iwant = RPC(control=ControlMessage(iwant=(ControlIWant([msg_id, b"unknown"]),)))
    for _ in range(2):
        (rpc,) = [r for _, r in router.handle_rpc(peer, iwant, 0.0).out]
        assert rpc.publish == (message,)
    assert router.handle_rpc(peer, iwant, 0.0).out == []
    for step in range(5):  # history_length windows later the message is gone
        router.heartbeat(float(step + 1))
    other = _peers(router, 1)[0]
    assert router.handle_rpc(other, iwant, 6.0).out == []


def test_idontwant_suppresses_forwarding_and_is_sent_for_large_messages() -> None:
    router = _router()
    source, v12, v11 = (
        Identity.generate().peer_id,
        Identity.generate().peer_id,
        Identity.generate().peer_id,
    )
    for peer, proto in (
        (source, GOSSIPSUB_V12_PROTOCOL_ID),
        (v12, GOSSIPSUB_V12_PROTOCOL_ID),
        (v11, V11),
    ):
        router.add_peer(peer, proto)
        router.handle_rpc(peer, RPC(subscriptions=(SubOpts(True, "t"),)), 0.0)
    router.subscribe("t", 0.0)
    big_id, big = _signed("t", 2, size=2000)
    result = router.handle_rpc(source, big, 0.0)
    assert [p for p, rpc in result.out] == [v12]
    assert _control(result.out, v12).idontwant == (ControlIDontWant([big_id]),)
    msg_id, small = _signed("t", 3)
    router.handle_rpc(
        v12, RPC(control=ControlMessage(idontwant=(ControlIDontWant([msg_id]),))), 0.0
    )
    (received,) = router.handle_rpc(source, small, 0.0).rpc.received
    assert received.msg_id == msg_id
    assert [p for p, _ in router.forward(received, 0.0)] == [v11]
    assert router.handle_rpc(source, small, 0.0).out == []  # no IDONTWANT under the threshold


def test_heartbeat_prunes_to_d_keeping_outbound_quota() -> None:
    router = _router(d_out=2)
    inbound = _peers(router, 14)
    outbound = _peers(router, 2, outbound=True)
    router.subscribe("t", 0.0)
    router.mesh["t"] = set(inbound)  # 14 > D_hi
    out = router.heartbeat(1.0)
    assert len(router.mesh["t"]) == 6 + 2  # D kept, then the outbound quota grafted
    assert set(outbound) <= router.mesh["t"]
    pruned = [p for p, rpc in out if rpc.control and rpc.control.prune]
    assert len(pruned) == 8 and not set(pruned) & router.mesh["t"]


def test_fanout_without_flood_publish() -> None:
    router = _router(flood_publish=False)
    peers = _peers(router, 10)
    _, _, out = router.publish("t", b"x", 0.0)
    assert len(out) == 6 and router.fanout["t"] == {p for p, _ in out}
    router.heartbeat(30.0)
    assert "t" in router.fanout
    router.heartbeat(61.0)
    assert "t" not in router.fanout
    router.publish("t", b"y", 62.0)
    fanout = set(router.fanout["t"])
    out = router.subscribe("t", 62.0)
    assert router.mesh["t"] == fanout  # the fanout becomes the mesh
    assert "t" not in router.fanout
    assert len(out) == len(peers)


def test_subscribe_does_not_graft_fanout_peers_in_backoff() -> None:
    router = _router(flood_publish=False)
    peers = _peers(router, 3)
    router.subscribe("t", 0.0)
    router.unsubscribe("t", 1.0)  # PRUNE with the 10 s unsubscribe backoff
    prune = RPC(control=ControlMessage(prune=(ControlPrune("t", (), backoff=60),)))
    router.subscribe("t", 2.0)
    router.handle_rpc(peers[0], prune, 2.0)  # and one peer prunes us for 60 s
    router.unsubscribe("t", 3.0)
    _, _, out = router.publish("t", b"x", 4.0)
    assert router.fanout["t"] == set(peers) == {p for p, _ in out}
    out = router.subscribe("t", 5.0)  # within both backoffs
    assert router.mesh["t"] == set()
    assert not [p for p, rpc in out if rpc.control and rpc.control.graft]
    router.heartbeat(12.5)  # the unsubscribe backoff and its slack are over, not the PRUNE's
    assert router.mesh["t"] == set(peers[1:])


class Network:
    """Gossipsub cores on a graph; RPCs go through the codec; the clock advances by 10 ms per
    delivery round and heartbeats run every virtual second."""

    def __init__(
        self, count: int, edges: set[tuple[int, int]], seed: int, **config: object
    ) -> None:
        # Keys from the seed too, so that a run is reproducible across processes.
        keys = [Ed25519PrivateKey.from_seed(bytes([seed % 256, i]) * 16) for i in range(count)]
        self.routers = [
            _router_of(Identity.from_private_key(key), seed * 1000 + i, **config)
            for i, key in enumerate(keys)
        ]
        self.transcript = hashlib.sha256()
        self.index = {r.local: i for i, r in enumerate(self.routers)}
        self.wire: deque[tuple[int, PeerId, bytes]] = deque()
        self.delivered: list[Counter[bytes]] = [Counter() for _ in range(count)]
        self.sent_messages = 0
        self.now = 0.0
        for a, b in edges:
            self.send(a, self.routers[a].add_peer(self.routers[b].local, V11, outbound=True))
            self.send(b, self.routers[b].add_peer(self.routers[a].local, V11))

    def send(self, sender: int, out: list[Outgoing]) -> None:
        for peer, rpc in out:
            self.sent_messages += len(rpc.publish)
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
                    if received.local:
                        self.delivered[target][received.msg_id] += 1
                    self.send(target, router.forward(received, self.now))
            for i, router in enumerate(self.routers):
                self.send(i, router.handle_timer(self.now))


def _graph(count: int, degree: int, rng: random.Random) -> set[tuple[int, int]]:
    edges = {(rng.randrange(i), i) for i in range(1, count)}
    while len(edges) < count * degree // 2:
        a, b = sorted(rng.sample(range(count), 2))
        edges.add((a, b))
    return edges


@pytest.mark.parametrize("seed", [1, 2])
def test_mesh_forms_and_every_message_arrives_once(seed: int) -> None:
    rng = random.Random(seed)
    net = Network(30, _graph(30, 10, rng), seed, flood_publish=False)
    for i, router in enumerate(net.routers):
        net.send(i, router.subscribe("t", net.now))
    net.run(5.0)
    for router in net.routers:
        degree = len(router.mesh["t"])
        assert 4 <= degree <= 12 or degree == len(router.topic_peers("t")), degree
        for peer in router.mesh["t"]:  # meshes are symmetric once settled
            assert router.local in net.routers[net.index[peer]].mesh["t"]
    before = net.sent_messages
    for i, router in enumerate(net.routers):
        net.send(i, router.publish("t", b"m%d" % i, net.now)[2])
    net.run(3.0)
    for node in range(30):
        assert sum(net.delivered[node].values()) == 29
        assert set(net.delivered[node].values()) == {1}
    # Mesh forwarding sends each message about D times per node, well under flooding's degree.
    assert (net.sent_messages - before) / (30 * 30) < 8


def test_gossip_recovers_a_message_the_mesh_missed() -> None:
    net = Network(3, {(0, 1), (1, 2)}, seed=5, flood_publish=False, d=1, d_lo=1, d_out=0, d_lazy=1)
    for i, router in enumerate(net.routers):
        net.send(i, router.subscribe("t", net.now))
    net.run(2.0)
    middle = net.routers[1]
    third = net.routers[2].local
    # Cut 1 -> 2 out of 1's mesh silently, as if 1 had lost the GRAFT: only gossip can help.
    middle.mesh["t"].discard(third)
    _, msg_id, out = net.routers[0].publish("t", b"late", net.now)
    net.send(0, out)
    net.run(3.0)
    assert net.delivered[2][msg_id] == 1


def test_publish_size_bound() -> None:
    router = _router(max_rpc_size=500)
    with pytest.raises(MessageTooLarge):
        router.publish("t", b"x" * 500, 0.0)
    assert len(router.mcache) == 0 and len(router.seen) == 0


def transcript(seed: int) -> str:
    """Every RPC of a 20-node run (meshes forming, one message per node, gossip), hashed."""
    net = Network(20, _graph(20, 8, random.Random(seed)), seed, flood_publish=False)
    for i, router in enumerate(net.routers):
        net.send(i, router.subscribe("t", net.now))
    net.run(3.0)
    for i, router in enumerate(net.routers):
        net.send(i, router.publish("t", b"m%d" % i, net.now)[2])
    net.run(3.0)
    return net.transcript.hexdigest()


def test_runs_are_identical_across_processes() -> None:
    # Set iteration order follows string hashing, which PYTHONHASHSEED changes between
    # processes: the simulator needs the same run from the same seed in any process.
    code = "from tests.protocols.pubsub.test_gossipsub import transcript; print(transcript(7))"
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
    assert transcript(7) in digests


def test_px_carries_and_checks_signed_peer_records() -> None:
    offered = Identity.generate()
    record = PeerRecord(offered.peer_id, 1, (Multiaddr("/ip4/127.0.0.1/tcp/4001"),))
    envelope = record.seal(offered.private_key).to_bytes()
    identity = Identity.generate()
    router = GossipsubRouter(
        identity.peer_id,
        rng=random.Random(1),
        private_key=identity.private_key,
        config=GossipsubConfig(do_px=True, d=1, d_lo=1, d_hi=1, d_out=0),
        peer_record=lambda peer: envelope if peer == offered.peer_id else None,
    )
    router.add_peer(offered.peer_id, V11)
    router.handle_rpc(offered.peer_id, RPC(subscriptions=(SubOpts(True, "t"),)), 0.0)
    (pruned,) = _peers(router, 1)
    router.subscribe("t", 0.0)
    router.mesh["t"] = {offered.peer_id}
    out = router.handle_rpc(
        pruned, RPC(control=ControlMessage(graft=(ControlGraft("t"),))), 0.0
    ).out
    (prune,) = _control(out, pruned).prune
    assert prune.peers == (PeerInfo(offered.peer_id, envelope),)
    assert px_record(prune.peers[0]) == record
    assert px_record(PeerInfo(offered.peer_id)) is None
    with pytest.raises(ValidationError, match="another peer"):
        px_record(PeerInfo(pruned, envelope))
    with pytest.raises(ValidationError):
        px_record(PeerInfo(offered.peer_id, envelope[:-1] + bytes([envelope[-1] ^ 1])))
