import pytest

from protocols.pubsub._score import PeerScore, RejectReason
from tests.protocols.pubsub._score_helpers import TOPIC, make_score, parts, peer, topic_params

A, B, C, D = peer(1), peer(2), peer(3), peer(4)


def test_unknown_peer_scores_zero() -> None:
    score = make_score()
    assert score.score(A, 0.0) == 0.0
    assert score.breakdown(A, 0.0) is None
    score.add_penalty(A, 5)
    score.graft(A, TOPIC, 0.0)
    assert A not in score


def test_p1_time_in_mesh_whole_quanta_capped() -> None:
    score = make_score(
        topic_params(time_in_mesh_weight=0.5, time_in_mesh_quantum=2.0, time_in_mesh_cap=10.0)
    )
    score.add_peer(A, None, 0.0)
    score.graft(A, TOPIC, 100.0)
    assert score.score(A, 100.0) == 0.0
    assert score.score(A, 101.9) == 0.0
    assert score.score(A, 107.0) == 3 * 0.5  # 3 whole quanta of 2 s
    assert score.score(A, 1000.0) == 10 * 0.5  # capped at 10 quanta
    assert parts(score, A, 107.0).topics[TOPIC].p1 == 3.0
    score.prune(A, TOPIC, 1000.0)
    assert score.score(A, 1000.0) == 0.0
    score.graft(A, TOPIC, 2000.0)  # a new GRAFT starts again from zero
    assert score.score(A, 2001.0) == 0.0


def test_p2_first_deliveries_capped_and_only_first() -> None:
    score = make_score(
        topic_params(first_message_deliveries_weight=2.0, first_message_deliveries_cap=3.0)
    )
    score.add_peer(A, None, 0.0)
    score.add_peer(B, None, 0.0)
    for i in range(5):
        msg = bytes([i])
        score.validate_message(A, TOPIC, msg, 0.0)
        score.duplicate_message(B, TOPIC, msg, 0.0)
        score.deliver_message(A, TOPIC, msg, 0.0)
    assert score.score(A, 0.0) == 3 * 2.0
    assert score.score(B, 0.0) == 0.0  # duplicates are never first deliveries


def test_p2_decays_each_interval() -> None:
    score = make_score(
        topic_params(first_message_deliveries_weight=1.0, first_message_deliveries_decay=0.5)
    )
    score.add_peer(A, None, 0.0)
    for i in range(4):
        score.deliver_message(A, TOPIC, bytes([i]), 0.0)
    score.refresh_scores(1.0)
    assert score.score(A, 1.0) == 2.0
    score.refresh_scores(2.0)
    assert score.score(A, 2.0) == 1.0


def _p3_score(**kwargs: float) -> PeerScore:
    params = {
        "mesh_message_deliveries_weight": -1.0,
        "mesh_message_deliveries_threshold": 4.0,
        "mesh_message_deliveries_cap": 10.0,
        "mesh_message_deliveries_activation": 2.0,
        "mesh_message_deliveries_window": 0.01,
        "mesh_failure_penalty_weight": -2.0,
        **kwargs,
    }
    return make_score(topic_params(**params))


def test_p3_deficit_squared_only_after_activation() -> None:
    score = _p3_score()
    score.add_peer(A, None, 0.0)
    score.graft(A, TOPIC, 0.0)
    assert score.score(A, 2.0) == 0.0  # not yet active: activation needs more than 2 s
    assert score.score(A, 2.5) == -(4.0**2)
    score.deliver_message(A, TOPIC, b"m", 2.5)
    assert score.score(A, 2.5) == -(3.0**2)
    for i in range(20):
        score.deliver_message(A, TOPIC, bytes([i]), 2.5)
    assert parts(score, A, 2.5).topics[TOPIC].p3 == 0.0


def test_p3_counts_only_in_mesh_and_is_capped() -> None:
    score = _p3_score()
    score.add_peer(A, None, 0.0)
    score.deliver_message(A, TOPIC, b"outside", 0.0)  # not in the mesh: no P3 credit
    score.graft(A, TOPIC, 0.0)
    assert score.score(A, 3.0) == -16.0
    for i in range(30):
        score.deliver_message(A, TOPIC, bytes([i]), 3.0)
    score.refresh_scores(4.0)  # decay 0.5 of the cap of 10 -> 5, above the threshold
    assert score.score(A, 4.0) == 0.0
    score.refresh_scores(5.0)  # 2.5: deficit 1.5
    assert score.score(A, 5.0) == pytest.approx(-(1.5**2))


def test_p3_near_first_duplicates() -> None:
    score = _p3_score()
    for p in (A, B, C, D):
        score.add_peer(p, None, 0.0)
        score.graft(p, TOPIC, 0.0)
    score.validate_message(A, TOPIC, b"m", 10.0)
    score.duplicate_message(B, TOPIC, b"m", 10.001)  # during validation: near-first
    score.deliver_message(A, TOPIC, b"m", 10.002)
    score.duplicate_message(C, TOPIC, b"m", 10.012)  # 10 ms after validation: within window
    score.duplicate_message(D, TOPIC, b"m", 10.02)  # 18 ms after: too late
    score.duplicate_message(C, TOPIC, b"m", 10.003)  # a peer counts once per message
    mesh = {p: parts(score, p, 10.02).topics[TOPIC].p3 for p in (A, B, C, D)}
    assert mesh == {A: 9.0, B: 9.0, C: 9.0, D: 16.0}


def test_p3b_sticky_on_prune_and_decays() -> None:
    score = _p3_score(mesh_failure_penalty_decay=0.5)
    score.add_peer(A, None, 0.0)
    score.graft(A, TOPIC, 0.0)
    score.deliver_message(A, TOPIC, b"m", 1.0)
    score.prune(A, TOPIC, 3.0)  # active, 1 delivery of 4: deficit 3
    breakdown = score.breakdown(A, 3.0)
    assert breakdown is not None
    assert breakdown.topics[TOPIC].p3b == 9.0
    assert breakdown.topics[TOPIC].p3 == 0.0  # P3 applies only in the mesh
    assert breakdown.score == -18.0
    score.refresh_scores(4.0)
    assert score.score(A, 4.0) == -9.0


def test_p3b_not_added_before_activation() -> None:
    score = _p3_score()
    score.add_peer(A, None, 0.0)
    score.graft(A, TOPIC, 0.0)
    score.prune(A, TOPIC, 1.0)
    assert score.score(A, 1.0) == 0.0


def test_p4_invalid_messages_squared() -> None:
    score = make_score(topic_params(invalid_message_deliveries_weight=-1.5))
    for p in (A, B, C):
        score.add_peer(p, None, 0.0)
    score.validate_message(A, TOPIC, b"bad", 0.0)
    score.duplicate_message(B, TOPIC, b"bad", 0.0)  # during validation
    score.reject_message(A, TOPIC, b"bad", RejectReason.VALIDATION_FAILED, 0.0)
    score.duplicate_message(C, TOPIC, b"bad", 1.0)  # after: known invalid
    score.reject_message(A, TOPIC, b"sig", RejectReason.INVALID_SIGNATURE, 1.0)
    assert score.score(A, 1.0) == -1.5 * 2**2
    assert score.score(B, 1.0) == -1.5
    assert score.score(C, 1.0) == -1.5
    assert parts(score, A, 1.0).topics[TOPIC].p4 == 4.0


@pytest.mark.parametrize(
    "reason",
    [
        RejectReason.VALIDATION_IGNORED,
        RejectReason.VALIDATION_THROTTLED,
        RejectReason.VALIDATION_QUEUE_FULL,
        RejectReason.BLACKLISTED_PEER,
        RejectReason.BLACKLISTED_SOURCE,
    ],
)
def test_rejections_without_penalty(reason: RejectReason) -> None:
    score = make_score(topic_params(invalid_message_deliveries_weight=-1.0))
    score.add_peer(A, None, 0.0)
    score.add_peer(B, None, 0.0)
    score.validate_message(A, TOPIC, b"m", 0.0)
    score.duplicate_message(B, TOPIC, b"m", 0.0)
    score.reject_message(A, TOPIC, b"m", reason, 0.0)
    score.duplicate_message(B, TOPIC, b"m", 0.0)
    score.duplicate_message(C, TOPIC, b"m", 0.0)
    assert score.score(A, 0.0) == 0.0
    assert score.score(B, 0.0) == 0.0


def test_p5_app_specific() -> None:
    score = make_score(app_specific_weight=4.0)
    score.add_peer(A, None, 0.0)
    score.set_app_score(A, -2.5)
    score.set_app_score(B, 100.0)  # unknown peers are ignored
    assert score.score(A, 0.0) == -10.0
    assert parts(score, A, 0.0).p5 == -2.5
    assert B not in score
    with pytest.raises(ValueError):
        score.set_app_score(A, float("nan"))


def test_p6_ip_colocation_surplus_squared() -> None:
    score = make_score(ip_colocation_factor_weight=-3.0, ip_colocation_factor_threshold=2)
    for n, p in enumerate((A, B, C, D)):
        score.add_peer(p, "203.0.113.7" if n < 3 else "198.51.100.1", 0.0)
    assert score.score(A, 0.0) == -3.0  # 3 peers on one IP, threshold 2: surplus 1
    assert score.score(D, 0.0) == 0.0
    score.add_peer(D, "203.0.113.7", 0.0)  # D moved onto the shared address
    assert score.score(A, 0.0) == -3.0 * 2**2
    assert parts(score, D, 0.0).p6 == 4.0
    score.add_peer(D, None, 0.0)
    assert score.score(A, 0.0) == -3.0


def test_p6_ipv6_counts_the_slash_64() -> None:
    score = make_score(ip_colocation_factor_weight=-1.0, ip_colocation_factor_threshold=1)
    score.add_peer(A, "2001:db8:1:2::1", 0.0)
    score.add_peer(B, "2001:db8:1:2::2", 0.0)
    score.add_peer(C, "2001:db8:1:3::1", 0.0)
    assert score.score(A, 0.0) == -1.0  # same /64 as B: surplus 1 on the subnet key
    assert score.score(C, 0.0) == 0.0


def test_p6_whitelist_and_loopback() -> None:
    score = make_score(
        ip_colocation_factor_weight=-1.0,
        ip_colocation_factor_threshold=1,
        ip_colocation_factor_whitelist=["10.0.0.0/8", "2001:db8::/32"],
    )
    for p in (A, B):
        score.add_peer(p, "10.1.2.3", 0.0)
    for p in (C, D):
        score.add_peer(p, "2001:db8::5", 0.0)
    assert [score.score(p, 0.0) for p in (A, B, C, D)] == [0.0] * 4
    score.add_peer(A, "127.0.0.1", 0.0)
    score.add_peer(B, "::ffff:127.0.0.1", 0.0)
    assert score.score(A, 0.0) == 0.0
    score.add_peer(A, "::ffff:192.0.2.1", 0.0)  # IPv4-mapped counts as its IPv4 address
    score.add_peer(B, "192.0.2.1", 0.0)
    assert score.score(A, 0.0) == -1.0
    with pytest.raises(ValueError):
        score.add_peer(C, "not an ip", 0.0)


def test_p7_behaviour_penalty_over_threshold_squared() -> None:
    score = make_score(
        behaviour_penalty_weight=-2.0, behaviour_penalty_threshold=1.0, behaviour_penalty_decay=0.5
    )
    score.add_peer(A, None, 0.0)
    score.add_penalty(A, 1)
    assert score.score(A, 0.0) == 0.0  # at the threshold: no penalty
    score.add_penalty(A, 2)
    assert score.score(A, 0.0) == -2.0 * 2**2
    score.refresh_scores(1.0)  # 3 -> 1.5: excess 0.5
    assert score.score(A, 1.0) == -2.0 * 0.25
    assert parts(score, A, 1.0).p7 == 0.25
    with pytest.raises(ValueError):
        score.add_penalty(A, -1)


def test_topic_weight_and_cap() -> None:
    topic = topic_params(topic_weight=2.0, first_message_deliveries_weight=1.0)
    score = make_score(topic, topic_score_cap=5.0, app_specific_weight=1.0)
    score.add_peer(A, None, 0.0)
    score.deliver_message(A, TOPIC, b"1", 0.0)
    assert score.score(A, 0.0) == 2.0
    for i in range(5):
        score.deliver_message(A, TOPIC, bytes([i]), 0.0)
    score.set_app_score(A, 3.0)
    breakdown = score.breakdown(A, 0.0)
    assert breakdown is not None
    assert breakdown.topics[TOPIC].score == 6.0
    assert breakdown.topic_score == 5.0  # 12 capped at 5
    assert breakdown.score == 8.0  # the cap does not apply to P5


def test_cap_does_not_raise_negative_topic_scores() -> None:
    score = make_score(topic_params(invalid_message_deliveries_weight=-1.0), topic_score_cap=5.0)
    score.add_peer(A, None, 0.0)
    for i in range(3):
        score.reject_message(A, TOPIC, bytes([i]), RejectReason.VALIDATION_FAILED, 0.0)
    assert score.score(A, 0.0) == -9.0


def test_unscored_topics_are_ignored() -> None:
    score = make_score(
        topic_params(first_message_deliveries_weight=1.0, invalid_message_deliveries_weight=-1.0)
    )
    score.add_peer(A, None, 0.0)
    score.graft(A, "other", 0.0)
    score.deliver_message(A, "other", b"m", 0.0)
    score.reject_message(A, "other", b"x", RejectReason.VALIDATION_FAILED, 0.0)
    breakdown = score.breakdown(A, 100.0)
    assert breakdown is not None
    assert breakdown.topics == {}
    assert breakdown.score == 0.0


def test_all_components_together() -> None:
    topic = topic_params(
        topic_weight=0.5,
        time_in_mesh_weight=1.0,
        time_in_mesh_quantum=1.0,
        time_in_mesh_cap=100.0,
        first_message_deliveries_weight=2.0,
        mesh_message_deliveries_weight=-1.0,
        mesh_message_deliveries_threshold=5.0,
        mesh_message_deliveries_cap=10.0,
        mesh_message_deliveries_activation=1.0,
        invalid_message_deliveries_weight=-3.0,
    )
    score = make_score(
        topic,
        app_specific_weight=1.0,
        ip_colocation_factor_weight=-1.0,
        ip_colocation_factor_threshold=1,
        behaviour_penalty_weight=-1.0,
    )
    score.add_peer(A, "192.0.2.9", 0.0)
    score.add_peer(B, "192.0.2.9", 0.0)
    score.graft(A, TOPIC, 0.0)
    score.deliver_message(A, TOPIC, b"1", 0.0)
    score.deliver_message(A, TOPIC, b"2", 0.0)
    score.reject_message(A, TOPIC, b"3", RejectReason.VALIDATION_FAILED, 0.0)
    score.set_app_score(A, 7.0)
    score.add_penalty(A, 2)
    # topic: P1 10*1 + P2 2*2 + P3 (5-2)^2*-1 + P4 1*-3 = 2, times 0.5 = 1
    # P5 7, P6 (2-1)^2 * -1, P7 2^2 * -1
    assert score.score(A, 10.0) == 1.0 + 7.0 - 1.0 - 4.0
