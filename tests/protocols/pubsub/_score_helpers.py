"""Builders shared by the peer-score tests: parameters with every component off but the one
under test, and deterministic peer IDs."""

import hashlib
from typing import Any

from p2pstack.identity import PeerId
from protocols.pubsub._score import PeerScore, ScoreBreakdown
from protocols.pubsub._score_params import PeerScoreParams, TopicScoreParams

TOPIC = "t"

OFF_TOPIC: dict[str, Any] = {
    "topic_weight": 1.0,
    "time_in_mesh_weight": 0.0,
    "first_message_deliveries_weight": 0.0,
    "mesh_message_deliveries_weight": 0.0,
    "mesh_failure_penalty_weight": 0.0,
    "invalid_message_deliveries_weight": 0.0,
}
OFF_PEER: dict[str, Any] = {
    "topic_score_cap": 0.0,
    "app_specific_weight": 0.0,
    "ip_colocation_factor_weight": 0.0,
    "behaviour_penalty_weight": 0.0,
    "retain_score": 60.0,
}


def peer(n: int) -> PeerId:
    return PeerId(b"\x12\x20" + hashlib.sha256(n.to_bytes(4, "big")).digest())


def topic_params(**kwargs: Any) -> TopicScoreParams:
    return TopicScoreParams(**{**OFF_TOPIC, **kwargs})


def make_score(
    topic: TopicScoreParams | None = None, *, now: float = 0.0, **kwargs: Any
) -> PeerScore:
    topics = {TOPIC: topic if topic is not None else topic_params()}
    params = PeerScoreParams(**{**OFF_PEER, "topics": topics, **kwargs})
    return PeerScore(params, now=now)


def parts(score: PeerScore, p: PeerId, now: float) -> ScoreBreakdown:
    breakdown = score.breakdown(p, now)
    assert breakdown is not None
    return breakdown
