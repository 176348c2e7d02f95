"""Types and pure helpers of the gossipsub v1.1 peer score: reject reasons, per-peer counters,
score breakdowns and the topic-score formula
(https://github.com/libp2p/specs/blob/master/pubsub/gossipsub/gossipsub-v1.1.md#the-score-function).
"""

from __future__ import annotations

import enum
import ipaddress
import math

import attrs

from protocols.pubsub._score_params import IPNetwork, PeerScoreParams, TopicScoreParams

__all__ = [
    "IGNORE_UNTRACKED",
    "PENALISE_UNTRACKED",
    "PeerStats",
    "RejectReason",
    "ScoreBreakdown",
    "ScoreStatistics",
    "TopicScoreBreakdown",
    "TopicStats",
    "components",
    "decay_counters",
    "deficit",
    "ip_keys",
    "topic_breakdown",
    "weighted",
]


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
    ips: tuple[str, ...] = ()
    behaviour_penalty: float = 0.0
    app_score: float = 0.0


def mesh_active(ts: TopicStats, tp: TopicScoreParams, now: float) -> bool:
    """Whether P3 applies: in the mesh for longer than the activation time."""
    return ts.in_mesh and now - ts.graft_time > tp.mesh_message_deliveries_activation


def deficit(ts: TopicStats, tp: TopicScoreParams, now: float) -> float:
    """The mesh-delivery deficit below the threshold while P3 applies, else 0.

    A P3 weight of 0 disables the deficit altogether, so P3b (the deficit made sticky on
    PRUNE) does not accrue from a threshold nobody asked for.
    """
    if (
        tp.mesh_message_deliveries_weight != 0
        and mesh_active(ts, tp, now)
        and ts.mesh_message_deliveries < tp.mesh_message_deliveries_threshold
    ):
        return tp.mesh_message_deliveries_threshold - ts.mesh_message_deliveries
    return 0.0


def components(ts: TopicStats, tp: TopicScoreParams, now: float) -> tuple[float, ...]:
    """The raw P1, P2, P3, P3b and P4 of one topic at now.

    Args:
        ts: the peer's counters in the topic.
        tp: the topic's parameters.
        now: the current time (for time in mesh and P3 activation).

    Returns:
        The five raw components, in that order.
    """
    p1 = 0.0
    if ts.in_mesh:
        # Whole quanta, as go's integer Duration division and the spec's pseudo-code.
        quanta = math.floor(max(now - ts.graft_time, 0.0) / tp.time_in_mesh_quantum)
        p1 = min(float(quanta), tp.time_in_mesh_cap)
    d = deficit(ts, tp, now)
    p4 = ts.invalid_message_deliveries
    return (p1, ts.first_message_deliveries, d * d, ts.mesh_failure_penalty, p4 * p4)


def weighted(parts: tuple[float, ...], tp: TopicScoreParams) -> float:
    """The topic score of raw components (before the topic weight): their weighted sum."""
    p1, p2, p3, p3b, p4 = parts
    return (
        p1 * tp.time_in_mesh_weight
        + p2 * tp.first_message_deliveries_weight
        + p3 * tp.mesh_message_deliveries_weight
        + p3b * tp.mesh_failure_penalty_weight
        + p4 * tp.invalid_message_deliveries_weight
    )


def topic_breakdown(ts: TopicStats, tp: TopicScoreParams, now: float) -> TopicScoreBreakdown:
    """P1..P4 of one topic at now and their weighted sum (see ``components``)."""
    parts = components(ts, tp, now)
    p1, p2, p3, p3b, p4 = parts
    return TopicScoreBreakdown(p1=p1, p2=p2, p3=p3, p3b=p3b, p4=p4, score=weighted(parts, tp))


def decay_counters(stats: PeerStats, params: PeerScoreParams, ticks: int) -> None:
    """Apply ticks decay steps to a peer's P2, P3, P3b, P4 and P7 counters.

    Counters are non-negative, so ``ticks`` steps of "multiply, then zero below
    decay_to_zero" equal one multiplication by ``decay ** ticks`` and one zero check. A
    disabled component may have any decay factor (validation waives it); its counter is
    zeroed, so that it can neither grow without bound nor matter.

    Args:
        stats: the peer's state (changed in place).
        params: the score parameters.
        ticks: the number of decay intervals elapsed (>= 1).
    """
    floor = params.decay_to_zero

    def decay(value: float, factor: float) -> float:
        if not 0 < factor < 1:
            return 0.0
        value *= factor**ticks
        return 0.0 if value < floor else value

    for topic, ts in stats.topics.items():
        tp = params.topics[topic]
        ts.first_message_deliveries = decay(
            ts.first_message_deliveries, tp.first_message_deliveries_decay
        )
        ts.mesh_message_deliveries = decay(
            ts.mesh_message_deliveries, tp.mesh_message_deliveries_decay
        )
        ts.mesh_failure_penalty = decay(ts.mesh_failure_penalty, tp.mesh_failure_penalty_decay)
        ts.invalid_message_deliveries = decay(
            ts.invalid_message_deliveries, tp.invalid_message_deliveries_decay
        )
    stats.behaviour_penalty = decay(stats.behaviour_penalty, params.behaviour_penalty_decay)


def ip_keys(ip: str | None, whitelist: tuple[IPNetwork, ...]) -> tuple[str, ...]:
    """The colocation keys of an address: IPv4 itself; IPv6 itself and its /64 (as go).

    Args:
        ip: an IPv4 or IPv6 address in text form, or None.
        whitelist: networks whose addresses are never counted.

    Returns:
        The keys as canonical text, none for None, a loopback or a whitelisted address.

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
    keys: list[ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv6Network] = [addr]
    if isinstance(addr, ipaddress.IPv6Address):
        keys.append(ipaddress.IPv6Network((addr, 64), strict=False))
    return tuple(str(key) for key in keys if not _whitelisted(key, whitelist))


def _whitelisted(
    key: ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv6Network,
    whitelist: tuple[IPNetwork, ...],
) -> bool:
    for net in whitelist:
        if isinstance(key, ipaddress.IPv6Network):
            if isinstance(net, ipaddress.IPv6Network) and key.subnet_of(net):
                return True
        elif key in net:
            return True
    return False
