"""Any sequence of router events leaves every score finite, the same on a replay, and the
state within its bounds."""

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.pubsub._score import PeerScore, RejectReason
from protocols.pubsub._score_params import PeerScoreParams, TopicScoreParams
from tests.protocols.pubsub._score_helpers import peer

PEERS = [peer(n) for n in range(5)]
TOPICS = ["a", "b", "unscored"]
IPS = [None, "192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2", "127.0.0.1", "10.0.0.1"]
MAX_RECORDS = 8
MAX_RETAINED = 2

PARAMS = PeerScoreParams(
    topics={
        "a": TopicScoreParams(),
        "b": TopicScoreParams(topic_weight=2.0, mesh_message_deliveries_activation=1.0),
    },
    ip_colocation_factor_threshold=1,
    ip_colocation_factor_whitelist=["10.0.0.0/8"],
    behaviour_penalty_threshold=1.0,
    retain_score=5.0,
)

# Every component off, with decay factors validation waives for disabled components.
DISABLED = PeerScoreParams(
    topics={
        "a": TopicScoreParams(
            time_in_mesh_weight=0.0,
            first_message_deliveries_weight=0.0,
            first_message_deliveries_decay=9.0,
            mesh_message_deliveries_weight=0.0,
            mesh_message_deliveries_decay=2.0,
            mesh_failure_penalty_weight=0.0,
            mesh_failure_penalty_decay=0.0,
        )
    },
    topic_score_cap=0.0,
    ip_colocation_factor_weight=0.0,
    behaviour_penalty_weight=0.0,
    behaviour_penalty_decay=4.0,
)

_peer = st.sampled_from(PEERS)
_topic = st.sampled_from(TOPICS)
_msg = st.binary(min_size=1, max_size=1)
_event = st.one_of(
    st.tuples(st.just("add"), _peer, st.sampled_from(IPS)),
    st.tuples(st.just("remove"), _peer),
    st.tuples(st.sampled_from(["graft", "prune"]), _peer, _topic),
    st.tuples(st.sampled_from(["validate", "deliver", "duplicate"]), _peer, _topic, _msg),
    st.tuples(st.just("reject"), _peer, _topic, _msg, st.sampled_from(list(RejectReason))),
    st.tuples(st.just("penalty"), _peer, st.integers(0, 1000)),
    st.tuples(st.just("app"), _peer, st.floats(-1e6, 1e6)),
    st.tuples(st.just("timer")),
    st.tuples(st.just("refresh")),
)
_steps = st.lists(st.tuples(st.floats(0.0, 3.0), _event), max_size=80)


def _apply(score: PeerScore, event: tuple[Any, ...], now: float) -> None:
    match event:
        case ("add", p, ip):
            score.add_peer(p, ip, now)
        case ("remove", p):
            score.remove_peer(p, now)
        case ("graft", p, t):
            score.graft(p, t, now)
        case ("prune", p, t):
            score.prune(p, t, now)
        case ("validate", p, t, m):
            score.validate_message(p, t, m, now)
        case ("deliver", p, t, m):
            score.deliver_message(p, t, m, now)
        case ("duplicate", p, t, m):
            score.duplicate_message(p, t, m, now)
        case ("reject", p, t, m, reason):
            score.reject_message(p, t, m, reason, now)
        case ("penalty", p, count):
            score.add_penalty(p, count)
        case ("app", p, value):
            score.set_app_score(p, value)
        case ("timer",):
            score.handle_timer(now)
        case _:
            score.refresh_scores(now)


def _run(steps: list[tuple[float, tuple[Any, ...]]]) -> list[list[float]]:
    score = PeerScore(
        PARAMS, now=0.0, seen_ttl=2.0, max_records=MAX_RECORDS, max_retained=MAX_RETAINED
    )
    now = 0.0
    trace = []
    for delay, event in steps:
        now += delay
        _apply(score, event, now)
        scores = [score.score(p, now) for p in PEERS]
        assert all(math.isfinite(s) for s in scores)
        breakdowns = [score.breakdown(p, now) for p in PEERS]
        assert scores == [0.0 if b is None else b.score for b in breakdowns]
        stats = score.statistics()
        assert stats.delivery_records <= MAX_RECORDS
        assert stats.retained <= MAX_RETAINED
        assert stats.connected + stats.retained <= len(PEERS)
        deadline = score.next_deadline()
        assert deadline is None or deadline > now or event[0] != "timer"
        trace.append(scores)
    return trace


@settings(max_examples=200, deadline=None)
@given(_steps)
def test_scores_finite_bounded_and_deterministic(
    steps: list[tuple[float, tuple[Any, ...]]],
) -> None:
    assert _run(steps) == _run(steps)
