import pytest

from p2pstack.identity import PeerId
from protocols.pubsub._score import PeerScore, RejectReason
from protocols.pubsub._score_params import PeerScoreParams
from tests.protocols.pubsub._score_helpers import TOPIC, make_score, parts, peer, topic_params

A, B = peer(1), peer(2)


def _p2_score(**kwargs: float) -> PeerScore:
    topic = topic_params(first_message_deliveries_weight=1.0, first_message_deliveries_decay=0.5)
    return make_score(topic, now=0.0, **kwargs)


def _deliver(score: PeerScore, p: PeerId, count: int, now: float, start: int = 0) -> None:
    for i in range(start, start + count):
        score.deliver_message(p, TOPIC, i.to_bytes(4, "big"), now)


def test_next_deadline_idle_until_a_peer() -> None:
    score = _p2_score()
    assert score.next_deadline() is None
    score.add_peer(A, None, 0.5)
    assert score.next_deadline() == 1.0


def test_handle_timer_applies_every_missed_tick() -> None:
    score = _p2_score()
    score.add_peer(A, None, 0.0)
    _deliver(score, A, 16, 0.0)
    score.handle_timer(0.5)  # not due
    assert score.score(A, 0.5) == 16.0
    score.handle_timer(1.0)
    assert score.score(A, 1.0) == 8.0
    assert score.next_deadline() == 2.0
    score.handle_timer(4.5)  # ticks at 2, 3, 4
    assert score.score(A, 4.5) == 1.0
    assert score.next_deadline() == 5.0


def test_decay_to_zero() -> None:
    score = _p2_score(decay_to_zero=0.3)
    score.add_peer(A, None, 0.0)
    _deliver(score, A, 1, 0.0)
    score.refresh_scores(1.0)
    assert score.score(A, 1.0) == 0.5
    score.refresh_scores(2.0)  # 0.25 < 0.3: zero
    assert score.score(A, 2.0) == 0.0
    score.add_peer(B, None, 2.0)
    _deliver(score, B, 1, 2.0, start=10)
    score.handle_timer(4.0)  # two ticks at once give the same zero
    assert score.score(B, 4.0) == 0.0


def test_idle_restart_anchors_ticks_at_the_new_peer() -> None:
    score = _p2_score()
    score.add_peer(A, None, 0.0)
    score.remove_peer(A, 0.0)  # score 0: retained
    score.handle_timer(100.0)  # retention (60 s) over: dropped
    assert score.next_deadline() is None
    score.add_peer(B, None, 500.25)
    assert score.next_deadline() == 501.25


def test_positive_score_is_not_retained() -> None:
    score = _p2_score()
    score.add_peer(A, "192.0.2.1", 0.0)
    _deliver(score, A, 2, 0.0)
    score.remove_peer(A, 1.0)
    assert A not in score
    assert score.statistics().connected == 0
    assert score.statistics().retained == 0


def test_negative_score_retained_without_decay_then_expires() -> None:
    topic = topic_params(
        invalid_message_deliveries_weight=-1.0, invalid_message_deliveries_decay=0.5
    )
    score = make_score(
        topic, retain_score=30.0, behaviour_penalty_weight=-1.0, behaviour_penalty_decay=0.5
    )
    score.add_peer(A, None, 0.0)
    for i in range(2):
        score.reject_message(A, TOPIC, bytes([i]), RejectReason.VALIDATION_FAILED, 0.0)
    score.add_penalty(A, 1)
    assert score.score(A, 0.0) == -5.0
    score.remove_peer(A, 0.0)
    assert score.statistics().retained == 1
    score.handle_timer(10.0)  # retained scores do not decay
    assert score.score(A, 10.0) == -5.0
    score.add_peer(A, None, 10.0)  # reconnecting picks the penalty up again
    assert score.statistics().retained == 0
    score.refresh_scores(11.0)
    assert score.score(A, 11.0) == pytest.approx(-(1.0**2) - 0.5**2)
    score.remove_peer(A, 11.0)
    score.refresh_scores(41.0)  # expiry is 41: not after it yet
    assert A in score
    score.refresh_scores(41.5)
    assert A not in score
    assert score.score(A, 41.5) == 0.0


def test_retention_resets_p2_and_applies_mesh_failure() -> None:
    topic = topic_params(
        first_message_deliveries_weight=1.0,
        mesh_message_deliveries_weight=-1.0,
        mesh_message_deliveries_threshold=10.0,
        mesh_message_deliveries_activation=1.0,
        mesh_failure_penalty_weight=-1.0,
    )
    score = make_score(topic)
    score.add_peer(A, None, 0.0)
    score.graft(A, TOPIC, 0.0)
    _deliver(score, A, 4, 0.0)
    # P2 4, P3 (10-4)^2 = 36: -32, so retained
    assert score.score(A, 2.0) == -32.0
    score.remove_peer(A, 2.0)
    breakdown = score.breakdown(A, 2.0)
    assert breakdown is not None
    assert (breakdown.topics[TOPIC].p2, breakdown.topics[TOPIC].p3b) == (0.0, 36.0)
    assert breakdown.topics[TOPIC].p1 == 0.0  # no longer in the mesh
    assert breakdown.score == -36.0


def test_retained_peer_ips_still_count_until_expiry() -> None:
    score = make_score(
        ip_colocation_factor_weight=-1.0, ip_colocation_factor_threshold=1, retain_score=5.0
    )
    score.add_peer(A, "192.0.2.1", 0.0)
    score.add_peer(B, "192.0.2.1", 0.0)
    score.remove_peer(A, 0.0)  # score -1: retained, IP still tracked
    assert score.score(B, 0.0) == -1.0
    score.refresh_scores(6.0)
    assert A not in score
    assert score.score(B, 6.0) == 0.0


def test_retained_scores_are_bounded() -> None:
    params = PeerScoreParams(
        topics={},
        app_specific_weight=1.0,
        ip_colocation_factor_weight=0.0,
        behaviour_penalty_weight=0.0,
    )
    score = PeerScore(params, now=0.0, max_retained=3)
    peers = [peer(n) for n in range(10)]
    for n, p in enumerate(peers):
        score.add_peer(p, None, float(n))
        score.set_app_score(p, -1.0)
        score.remove_peer(p, float(n))
    assert score.statistics().retained == 3
    assert [p in score for p in peers] == [False] * 7 + [True] * 3


def test_delivery_records_expire_with_seen_ttl() -> None:
    topic = topic_params(
        mesh_message_deliveries_weight=-1.0,
        mesh_message_deliveries_threshold=1.0,
        mesh_message_deliveries_activation=1.0,
        mesh_message_deliveries_window=5.0,
    )
    params = PeerScoreParams(
        topics={TOPIC: topic}, ip_colocation_factor_weight=0.0, behaviour_penalty_weight=0.0
    )
    score = PeerScore(params, now=0.0, seen_ttl=2.0)
    score.add_peer(A, None, 0.0)
    score.add_peer(B, None, 0.0)
    score.graft(B, TOPIC, 0.0)
    score.deliver_message(A, TOPIC, b"m", 0.0)
    assert score.statistics().delivery_records == 1
    score.handle_timer(1.0)
    assert score.statistics().delivery_records == 1
    score.handle_timer(2.5)
    assert score.statistics().delivery_records == 0
    # The record is gone: a late copy from B starts a new, unvalidated record (no credit).
    score.duplicate_message(B, TOPIC, b"m", 2.5)
    assert parts(score, B, 2.5).topics[TOPIC].p3 == 1.0


def test_delivery_records_are_capped() -> None:
    score = PeerScore(PeerScoreParams(), now=0.0, max_records=4)
    score.add_peer(A, None, 0.0)
    for i in range(10):
        score.validate_message(A, TOPIC, bytes([i]), 0.0)
    assert score.statistics().delivery_records == 4


def test_second_delivery_trace_is_ignored() -> None:
    score = _p2_score()
    score.add_peer(A, None, 0.0)
    score.add_peer(B, None, 0.0)
    score.reject_message(A, TOPIC, b"m", RejectReason.VALIDATION_FAILED, 0.0)
    score.deliver_message(B, TOPIC, b"m", 0.0)  # P2 is credited before the status check, as go
    score.reject_message(B, TOPIC, b"m", RejectReason.VALIDATION_FAILED, 0.0)
    assert score.score(B, 0.0) == 1.0


def test_remove_unknown_or_twice_is_harmless() -> None:
    score = _p2_score()
    score.remove_peer(A, 0.0)
    score.add_peer(A, None, 0.0)
    score.remove_peer(A, 0.0)
    score.remove_peer(A, 1.0)
    assert score.statistics().retained == 1


def test_disabled_p3_leaves_no_p3b() -> None:
    # P3 off while its (default) threshold stays: no deficit, so no sticky penalty either.
    score = make_score(topic_params(mesh_failure_penalty_weight=-1.0))
    score.add_peer(A, None, 0.0)
    score.graft(A, TOPIC, 0.0)
    score.prune(A, TOPIC, 100.0)
    assert score.score(A, 100.0) == 0.0


def test_disabled_components_with_any_decay_stay_finite() -> None:
    topic = topic_params(
        first_message_deliveries_decay=5.0,
        mesh_message_deliveries_decay=7.0,
        mesh_failure_penalty_decay=-1.0,
    )
    score = make_score(topic, behaviour_penalty_decay=3.0)
    score.add_peer(A, None, 0.0)
    score.graft(A, TOPIC, 0.0)
    score.deliver_message(A, TOPIC, b"m", 0.0)
    score.add_penalty(A, 10)
    score.handle_timer(5000.0)
    breakdown = parts(score, A, 5000.0)
    assert (breakdown.topics[TOPIC].p2, breakdown.p7) == (0.0, 0.0)
    assert breakdown.score == 0.0
