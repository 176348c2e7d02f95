"""Types and pure helpers of the gossipsub v1.1 peer score: reject reasons, per-peer counters,
score breakdowns and the topic-score formula
(https://github.com/libp2p/specs/blob/master/pubsub/gossipsub/gossipsub-v1.1.md#the-score-function).
"""

from __future__ import annotations

import enum
import ipaddress
import math

import attrs

from protocols.pubsub._score_params import TopicScoreParams

__all__ = [
    "IGNORE_UNTRACKED",
    "PENALISE_UNTRACKED",
    "IPKey",
    "PeerStats",
    "RejectReason",
    "ScoreBreakdown",
    "ScoreStatistics",
    "TopicScoreBreakdown",
    "TopicStats",
    "deficit",
    "ip_keys",
    "topic_breakdown",
]


IPKey = ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv6Network


class RejectReason(enum.Enum):
    """Why a message was rejected (go's ``Reject*`` trace reasons)."""

    MISSING_SIGNATURE = "missing signature"
    INVALID_SIGNATURE = "invalid signature"
    UNEXPECTED_SIGNATURE = "unexpected signature"
    UNEXPECTED_AUTH_INFO = "unexpected auth info"
    SELF_ORIGIN = "self originated message"
    BLACKLISTED_PEER = "blacklisted peer"
    BLACKLISTED_SOURCE = "blacklisted source"
    VALIDATION_QUEUE_FULL = "validation queue full"
    VALIDATION_THROTTLED = "validation throttled"
    VALIDATION_IGNORED = "validation ignored"
    VALIDATION_FAILED = "validation failed"


# Clearly invalid whatever its ID: penalise the sender, but keep no record (the ID may be forged).
PENALISE_UNTRACKED = frozenset(
    {
        RejectReason.MISSING_SIGNATURE,
        RejectReason.INVALID_SIGNATURE,
        RejectReason.UNEXPECTED_SIGNATURE,
        RejectReason.UNEXPECTED_AUTH_INFO,
        RejectReason.SELF_ORIGIN,
    }
)
# Not the sender's fault, or never validated: no penalty, no record.
IGNORE_UNTRACKED = frozenset(
    {
        RejectReason.BLACKLISTED_PEER,
        RejectReason.BLACKLISTED_SOURCE,
        RejectReason.VALIDATION_QUEUE_FULL,
    }
)


@attrs.frozen(kw_only=True)
class TopicScoreBreakdown:
    """The raw (unweighted) P1..P4 of a peer in one topic; ``score`` is their weighted sum
    before the topic weight applies."""

    p1: float
    p2: float
    p3: float
    p3b: float
    p4: float
    score: float


@attrs.frozen(kw_only=True)
class ScoreBreakdown:
    """A peer's score with its raw components (a snapshot).

    ``topic_score`` is the sum of topic_weight * topic score over the scored topics, after
    the topic score cap; ``p5``..``p7`` are unweighted; ``score`` is the total.
    """

    topics: dict[str, TopicScoreBreakdown]
    topic_score: float
    p5: float
    p6: float
    p7: float
    score: float


@attrs.frozen(kw_only=True)
class ScoreStatistics:
    """Sizes of the score state (every one of them is bounded)."""

    connected: int
    retained: int
    delivery_records: int


@attrs.define
class TopicStats:
    """A peer's counters in one scored topic."""

    in_mesh: bool = False
    graft_time: float = 0.0
    first_message_deliveries: float = 0.0
    mesh_message_deliveries: float = 0.0
    mesh_failure_penalty: float = 0.0
    invalid_message_deliveries: float = 0.0


@attrs.define
class PeerStats:
    """A peer's score state: per-topic counters, colocation keys, P5 and the P7 counter."""

    connected: bool = True
    topics: dict[str, TopicStats] = attrs.Factory(dict)
    ips: tuple[IPKey, ...] = ()
    behaviour_penalty: float = 0.0
    app_score: float = 0.0


def mesh_active(ts: TopicStats, tp: TopicScoreParams, now: float) -> bool:
    """Whether P3 applies: in the mesh for longer than the activation time."""
    return ts.in_mesh and now - ts.graft_time > tp.mesh_message_deliveries_activation


def deficit(ts: TopicStats, tp: TopicScoreParams, now: float) -> float:
    """The mesh-delivery deficit below the threshold while P3 applies, else 0."""
    if (
        mesh_active(ts, tp, now)
        and ts.mesh_message_deliveries < tp.mesh_message_deliveries_threshold
    ):
        return tp.mesh_message_deliveries_threshold - ts.mesh_message_deliveries
    return 0.0


def topic_breakdown(ts: TopicStats, tp: TopicScoreParams, now: float) -> TopicScoreBreakdown:
    """P1..P4 of one topic at now and their weighted sum (the spec's topic score).

    Args:
        ts: the peer's counters in the topic.
        tp: the topic's parameters.
        now: the current time (for time in mesh and P3 activation).

    Returns:
        The raw components and the weighted topic score.
    """
    p1 = 0.0
    if ts.in_mesh:
        # Whole quanta, as go's integer Duration division and the spec's pseudo-code.
        quanta = math.floor(max(now - ts.graft_time, 0.0) / tp.time_in_mesh_quantum)
        p1 = min(float(quanta), tp.time_in_mesh_cap)
    p2 = ts.first_message_deliveries
    p3 = deficit(ts, tp, now) ** 2
    p3b = ts.mesh_failure_penalty
    p4 = ts.invalid_message_deliveries**2
    score = (
        p1 * tp.time_in_mesh_weight
        + p2 * tp.first_message_deliveries_weight
        + p3 * tp.mesh_message_deliveries_weight
        + p3b * tp.mesh_failure_penalty_weight
        + p4 * tp.invalid_message_deliveries_weight
    )
    return TopicScoreBreakdown(p1=p1, p2=p2, p3=p3, p3b=p3b, p4=p4, score=score)


def ip_keys(ip: str | None) -> tuple[IPKey, ...]:
    """The colocation keys of an address: IPv4 itself; IPv6 itself and its /64 (as go).

    Args:
        ip: an IPv4 or IPv6 address in text form, or None.

    Returns:
        The keys, none for None or a loopback address.

    Raises:
        ValueError: if ip is not an IP address.
    """
    if ip is None:
        return ()
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_loopback:
        # go ignores loopback: local tests and same-host tools are not a Sybil signal.
        return ()
    if isinstance(addr, ipaddress.IPv4Address):
        return (addr,)
    return (addr, ipaddress.IPv6Network((addr, 64), strict=False))
