"""Peer scoring in the gossipsub router core: what the router reports to the score, and the
thresholds and score-aware choices it makes (gossipsub v1.1)."""

from __future__ import annotations

import random
from typing import Any

import attrs
import pytest

from p2pstack.identity import Identity, PeerId
from protocols.pubsub import (
    GOSSIPSUB_V11_PROTOCOL_ID,
    RPC,
    ControlGraft,
    ControlIHave,
    ControlIWant,
    ControlMessage,
    ControlPrune,
    GossipsubConfig,
    GossipsubRouter,
    PeerInfo,
    PeerScore,
    PeerScoreParams,
    SubOpts,
    TopicScoreParams,
    ValidationResult,
    make_message,
)
from protocols.pubsub._routing import Outgoing

V11 = GOSSIPSUB_V11_PROTOCOL_ID


def score_params(**peer: Any) -> PeerScoreParams:
    """Only P4 (invalid messages), P5 (application score, weight 10) and P7 (behaviour)."""
    topic = TopicScoreParams(
        topic_weight=1.0,
        time_in_mesh_weight=0.0,
        first_message_deliveries_weight=0.0,
        mesh_message_deliveries_weight=0.0,
        mesh_failure_penalty_weight=0.0,
        invalid_message_deliveries_weight=-1.0,
        invalid_message_deliveries_decay=0.9,
    )
    defaults: dict[str, Any] = {
        "topics": {"t": topic},
        "topic_score_cap": 0.0,
        "app_specific_weight": 10.0,
        "ip_colocation_factor_weight": 0.0,
        "behaviour_penalty_weight": -10.0,
        "behaviour_penalty_decay": 0.9,
    }
    return PeerScoreParams(**{**defaults, **peer})


def _router(**config: Any) -> GossipsubRouter:
    identity = Identity.generate()
    config.setdefault("score_params", score_params())
    return GossipsubRouter(
        identity.peer_id,
        rng=random.Random(3),
        private_key=identity.private_key,
        config=GossipsubConfig(**config),
    )


def _peers(router: GossipsubRouter, count: int, **kw: Any) -> list[PeerId]:
    peers = [Identity.generate().peer_id for _ in range(count)]
    for peer in peers:
        router.add_peer(peer, V11, outbound=bool(kw.get("outbound")), now=0.0)
        router.handle_rpc(peer, RPC(subscriptions=(SubOpts(True, "t"),)), 0.0)
    return peers


def _score(router: GossipsubRouter) -> PeerScore:
    assert router.scoring.score is not None
    return router.scoring.score


def _control(out: list[Outgoing], peer: PeerId) -> ControlMessage | None:
    rpcs = [rpc for p, rpc in out if p == peer]
    return rpcs[0].control if rpcs else None


def _graft(topic: str = "t") -> RPC:
    return RPC(control=ControlMessage(graft=(ControlGraft(topic),)))


def _signed(n: int) -> RPC:
    publisher = Identity.generate()
    return RPC(publish=(make_message("t", bytes([n]), private_key=publisher.private_key, seqno=n),))


def test_scoring_is_off_by_default() -> None:
    router = _router(score_params=None)
    (peer,) = _peers(router, 1)
    router.subscribe("t", 0.0)
    assert not router.scoring.enabled and router.scoring.score is None
    assert router.scoring.value(peer, 0.0) == 0.0
    assert router.next_deadline() == 1.0


def test_validation_verdicts_reach_the_score() -> None:
    router = _router()
    peer, other = _peers(router, 2)
    router.subscribe("t", 0.0)
    verdicts = (ValidationResult.REJECT, ValidationResult.IGNORE, ValidationResult.REJECT)
    for n, verdict in enumerate(verdicts):
        (received,) = router.handle_rpc(peer, _signed(n), 0.0).rpc.received
        router.report_validation(received.msg_id, verdict, 0.0)
        router.report_validation(received.msg_id, verdict, 0.0)  # counted once
    breakdown = _score(router).breakdown(peer, 0.0)
    assert breakdown is not None and breakdown.topics["t"].p4 == 4.0  # two rejections, squared
    assert router.scoring.value(peer, 0.0) == -4.0
    assert router.scoring.value(other, 0.0) == 0.0


def test_bad_signatures_cost_the_sender() -> None:
    router = _router()
    (peer,) = _peers(router, 1)
    router.subscribe("t", 0.0)
    (message,) = _signed(1).publish
    forged = RPC(publish=(attrs.evolve(message, data=b"forged"),))
    result = router.handle_rpc(peer, forged, 0.0)
    assert len(result.rpc.invalid) == 1
    assert router.scoring.value(peer, 0.0) == -1.0


def test_broken_iwant_promises_are_penalised() -> None:
    router = _router()
    liar, honest = _peers(router, 2)
    router.subscribe("t", 0.0)
    ihave = RPC(control=ControlMessage(ihave=(ControlIHave("t", [b"never"]),)))
    assert _control(router.handle_rpc(liar, ihave, 0.0).out, liar) is not None  # IWANT sent
    delivered = _signed(7)
    (message,) = delivered.publish
    msg_id = router.config.message_id(message)
    router.handle_rpc(
        honest, RPC(control=ControlMessage(ihave=(ControlIHave("t", [msg_id]),))), 0.0
    )
    router.handle_rpc(honest, delivered, 1.0)  # promise kept
    for second in range(1, 5):
        router.handle_timer(float(second))
    assert router.broken_promises == {liar: 1}
    breakdown = _score(router).breakdown(liar, 4.0)
    assert breakdown is not None and breakdown.p7 > 0
    assert router.scoring.value(liar, 4.0) < 0
    assert router.scoring.value(honest, 4.0) == 0.0


def test_graft_during_backoff_is_penalised_and_flooding_twice() -> None:
    router = _router()
    (peer,) = _peers(router, 1)
    router.subscribe("t", 0.0)
    router.handle_rpc(peer, RPC(control=ControlMessage(prune=(ControlPrune("t", (), 60),))), 0.0)
    assert router.backoff["t"][peer] == 60.0
    out = router.handle_rpc(peer, _graft(), 5.0).out  # within the 10 s flood threshold
    control = _control(out, peer)
    assert control is not None and control.prune[0].backoff == 60
    breakdown = _score(router).breakdown(peer, 5.0)
    assert breakdown is not None and breakdown.p7 == 4.0  # two penalties, squared
    router.handle_rpc(peer, _graft(), 30.0)  # backoff restarted at 5 s: 25 s in, past the flood
    breakdown = _score(router).breakdown(peer, 30.0)
    assert breakdown is not None and breakdown.p7 == 9.0
    assert peer not in router.mesh["t"]


def test_graft_during_backoff_without_scoring_only_refuses() -> None:
    router = _router(score_params=None)
    (peer,) = _peers(router, 1)
    router.subscribe("t", 0.0)
    router.handle_rpc(peer, RPC(control=ControlMessage(prune=(ControlPrune("t", (), 60),))), 0.0)
    out = router.handle_rpc(peer, _graft(), 5.0).out
    assert _control(out, peer) is not None and peer not in router.mesh["t"]


def test_negative_score_peers_are_pruned_not_grafted_and_get_no_px() -> None:
    router = _router(do_px=True, d=2, d_lo=2, d_hi=3, d_out=0)
    bad, good, third = _peers(router, 3)
    router.subscribe("t", 0.0)
    router.mesh["t"] = {bad, good}
    _score(router).set_app_score(bad, -0.5)  # score -5
    out = router.heartbeat(1.0)
    control = _control(out, bad)
    assert control is not None and control.prune[0].peers == ()  # no PX to a negative score
    assert router.mesh["t"] == {good, third}
    router.backoff.clear()
    router.mesh["t"] = {good}
    router.heartbeat(2.0)  # under D: grafts, but never the negative-score peer
    assert router.mesh["t"] == {good, third}
    refused = router.handle_rpc(bad, _graft(), 3.0).out
    control = _control(refused, bad)
    assert control is not None and control.prune[0].peers == ()
    assert bad not in router.mesh["t"] and router.backoff["t"][bad] == 63.0


def test_px_offers_only_non_negative_peers() -> None:
    router = _router(do_px=True, d=1, d_lo=1, d_hi=1, d_out=0)
    member, pruned, negative, fine = _peers(router, 4)
    router.subscribe("t", 0.0)
    router.mesh["t"] = {member}
    _score(router).set_app_score(negative, -0.1)
    out = router.handle_rpc(pruned, _graft(), 0.0).out  # mesh full: PRUNE with PX
    control = _control(out, pruned)
    assert control is not None
    assert {info.peer_id for info in control.prune[0].peers} == {member, fine}


def test_px_is_accepted_only_above_the_threshold() -> None:
    router = _router(do_px=True)
    low, high = _peers(router, 2)
    router.subscribe("t", 0.0)
    offered = PeerInfo(Identity.generate().peer_id)
    prune = RPC(control=ControlMessage(prune=(ControlPrune("t", (offered,), 60),)))
    assert router.handle_rpc(low, prune, 0.0).px == ()  # score 0 < accept_px 10
    _score(router).set_app_score(high, 1.0)  # score 10
    assert router.handle_rpc(high, prune, 0.0).px == (offered,)


def test_gossip_threshold() -> None:
    router = _router(flood_publish=False, d=1, d_lo=1, d_hi=1, d_out=0, d_lazy=3)
    peers = _peers(router, 4)
    router.subscribe("t", 0.0)
    (member,) = router.mesh["t"]
    low = next(p for p in peers if p != member)
    _score(router).set_app_score(low, -2.0)  # -20, below gossip (-10), above publish (-50)
    ihave = RPC(control=ControlMessage(ihave=(ControlIHave("t", [b"x"]),)))
    assert router.handle_rpc(low, ihave, 0.0).out == []  # its IHAVE is not taken
    _, msg_id, _ = router.publish("t", b"m", 0.0)
    iwant = RPC(control=ControlMessage(iwant=(ControlIWant([msg_id]),)))
    assert router.handle_rpc(low, iwant, 0.0).out == []  # nor its IWANT
    out = router.heartbeat(1.0)
    gossiped = {p for p, rpc in out if rpc.control and rpc.control.ihave}
    assert gossiped == set(peers) - {member, low}


def test_publish_threshold() -> None:
    router = _router()
    low, fine = _peers(router, 2)
    _score(router).set_app_score(low, -6.0)  # -60 < publish (-50)
    _, _, out = router.publish("t", b"m", 0.0)
    assert [p for p, _ in out] == [fine]
    non_flood = _router(flood_publish=False)
    low, fine = _peers(non_flood, 2)
    _score(non_flood).set_app_score(low, -6.0)
    _, _, out = non_flood.publish("t", b"m", 0.0)
    assert [p for p, _ in out] == [fine] and non_flood.fanout["t"] == {fine}


def test_graylisted_peers_rpcs_are_ignored_but_subscriptions_kept() -> None:
    router = _router()
    (peer,) = _peers(router, 1)
    router.subscribe("t", 0.0)
    router.mesh["t"].clear()
    _score(router).set_app_score(peer, -9.0)  # -90 < graylist (-80)
    rpc = _signed(1)
    rpc = RPC(subscriptions=(SubOpts(True, "u"),), publish=rpc.publish, control=_graft().control)
    result = router.handle_rpc(peer, rpc, 0.0)
    assert result.rpc.received == () and result.out == []
    assert [c.topic for c in result.rpc.changes] == ["u"]
    assert peer not in router.mesh["t"] and len(router.seen) == 0


def test_oversized_mesh_keeps_the_best_scores() -> None:
    router = _router(d_score=4, d_out=0)
    peers = _peers(router, 14)
    router.subscribe("t", 0.0)
    router.mesh["t"] = set(peers)
    best = peers[3:7]
    for peer in best:
        _score(router).set_app_score(peer, 0.5)
    router.heartbeat(1.0)
    assert len(router.mesh["t"]) == 6 and set(best) <= router.mesh["t"]


def test_mesh_at_d_hi_is_pruned_to_d_keeping_the_best_scores() -> None:
    # go prunes at D_hi, not only above it: a mesh that inbound GRAFTs filled to exactly D_hi
    # would otherwise stay full and refuse every GRAFT over an inbound connection for good.
    router = _router(d=6, d_lo=4, d_hi=12, d_score=4, d_out=0)
    peers = _peers(router, 13)
    router.subscribe("t", 0.0)
    router.mesh["t"] = set(peers[:12])  # exactly D_hi
    best = peers[3:7]
    for peer in best:
        _score(router).set_app_score(peer, 0.5)
    out = router.heartbeat(1.0)
    assert len(router.mesh["t"]) == 6 and set(best) <= router.mesh["t"]
    pruned = [p for p, rpc in out if rpc.control and rpc.control.prune]
    assert len(pruned) == 6 and not set(pruned) & router.mesh["t"]
    assert router.handle_rpc(peers[12], _graft(), 1.5).out == []  # room again: accepted
    assert peers[12] in router.mesh["t"]


def test_opportunistic_grafting_replaces_a_poor_mesh() -> None:
    router = _router(d=3, d_lo=2, d_hi=3, d_score=2, d_out=0, opportunistic_graft_ticks=3)
    peers = _peers(router, 8)
    router.subscribe("t", 0.0)
    mesh = set(router.mesh["t"])
    good = [p for p in peers if p not in mesh][:2]
    for peer in good:
        _score(router).set_app_score(peer, 3.0)  # 30 > the median (0) and the threshold (20)
    for second in (1.0, 2.0):
        router.heartbeat(second)
        assert router.mesh["t"] == mesh  # not an opportunistic-grafting heartbeat
    out = router.heartbeat(3.0)
    grafted = {p for p, rpc in out if rpc.control and rpc.control.graft}
    assert grafted == set(good) and router.mesh["t"] == mesh | set(good)
    router.heartbeat(4.0)  # now over D_hi: the two best stay, one poor peer joins them
    assert set(good) <= router.mesh["t"] and len(router.mesh["t"]) == 3


def test_score_timer_is_folded_into_the_router_timer() -> None:
    router = _router(heartbeat_interval=5.0)
    (peer,) = _peers(router, 1)
    router.subscribe("t", 0.0)
    _score(router).add_penalty(peer, 2)
    assert router.next_deadline() == 1.0  # the score's decay tick comes first
    assert router.handle_timer(1.0) == []  # decay only; no heartbeat yet
    breakdown = _score(router).breakdown(peer, 1.0)
    assert breakdown is not None and breakdown.p7 == pytest.approx(1.8**2)
    assert router.heartbeats == 0 and router.next_deadline() == 2.0


def test_remove_peer_retains_a_negative_score() -> None:
    router = _router()
    (peer,) = _peers(router, 1)
    _score(router).add_penalty(peer, 1)
    router.remove_peer(peer, 1.0)
    router.add_peer(peer, V11, ip="10.0.0.1", now=2.0)
    assert router.scoring.value(peer, 2.0) == -10.0
