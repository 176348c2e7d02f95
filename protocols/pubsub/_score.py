"""Gossipsub v1.1 peer score, sans-IO (P1..P7, decay, retention)
(https://github.com/libp2p/specs/blob/master/pubsub/gossipsub/gossipsub-v1.1.md#the-score-function).

``score = min(sum over topics of topic_weight * (w1 P1 + w2 P2 + w3 P3 + w3b P3b + w4 P4),
topic_score_cap) + w5 P5 + w6 P6 + w7 P7``, the cap applying only when positive and set.

The router reports events (peer added/removed, GRAFT/PRUNE, message validated, delivered,
duplicated, rejected, behaviour penalties) with the time, and reads scores; nothing here reads a
clock or does I/O. The message-delivery bookkeeping is go-libp2p-pubsub's: a message's first
valid delivery counts for P2 (and P3 in the mesh); a duplicate counts for P3 when it arrived
while the message was being validated or within ``mesh_message_deliveries_window`` after;
everyone who sent an invalid message gets P4.

Where this differs from go, it follows the spec's formulas: time in mesh is computed exactly
from the GRAFT time at each ``score(now)`` rather than lazily at decay ticks, and P3 applies
only while the peer is in the mesh (go keeps applying it after a PRUNE, on top of the P3b the
PRUNE added; the spec, js and rust do not).
"""

from __future__ import annotations

import math
from collections import OrderedDict

from p2pstack.identity import PeerId
from protocols.pubsub._score_deliveries import DeliveryStatus, MessageDeliveries
from protocols.pubsub._score_params import PeerScoreParams
from protocols.pubsub._score_types import (
    IGNORE_UNTRACKED,
    PENALISE_UNTRACKED,
    PeerStats,
    RejectReason,
    ScoreBreakdown,
    ScoreStatistics,
    TopicScoreBreakdown,
    TopicStats,
    components,
    decay_counters,
    deficit,
    ip_keys,
    topic_breakdown,
    weighted,
)

__all__ = ["PeerScore", "RejectReason", "ScoreBreakdown", "ScoreStatistics", "TopicScoreBreakdown"]

#: Default bound on retained scores of disconnected peers (the oldest retention is dropped).
DEFAULT_MAX_RETAINED = 10_000


class PeerScore:
    """Per-peer score state for one router.

    Every event method takes the current time as ``now`` (seconds, the caller's clock); the
    peer and topic arguments name the peer the event concerns and the message's topic.

    Bounds: a record per connected peer, at most ``max_retained`` retained scores of
    disconnected peers (each for ``params.retain_score`` seconds at most; past the bound the
    oldest retention goes first, which a peer churning identities could use to clear other
    retained penalties sooner, a trade made for bounded memory), and the delivery records of
    ``MessageDeliveries`` (``seen_ttl``, ``max_records``).

    Args:
        params: the score parameters.
        now: the current time (anchors the decay ticks).
        seen_ttl: how long a message's delivery record is kept (the seen-cache TTL).
        max_records: bound on delivery records (the oldest is dropped first).
        max_retained: bound on retained scores of disconnected peers.
    """

    def __init__(
        self,
        params: PeerScoreParams,
        *,
        now: float,
        seen_ttl: float = 120.0,
        max_records: int = 65_536,
        max_retained: int = DEFAULT_MAX_RETAINED,
    ) -> None:
        self.params = params
        self._peers: dict[PeerId, PeerStats] = {}
        self._retained: OrderedDict[PeerId, float] = OrderedDict()
        self._ip_peers: dict[str, set[PeerId]] = {}
        self._deliveries = MessageDeliveries(seen_ttl=seen_ttl, max_records=max_records)
        self._max_retained = max_retained
        self._next_decay = now + params.decay_interval

    # -- peers ------------------------------------------------------------------------------

    def add_peer(self, peer: PeerId, ip: str | None, now: float) -> None:
        """A peer connected (or its address changed); a retained score is picked up again.

        Args:
            peer: the peer.
            ip: its remote IP address (None when it has none, e.g. a relayed connection).
            now: the current time.

        Raises:
            ValueError: if ip is not an IP address.
        """
        keys = ip_keys(ip, self.params.ip_colocation_factor_whitelist)
        if not self._peers and self._next_decay <= now:
            self._next_decay = now + self.params.decay_interval
        stats = self._peers.get(peer)
        if stats is None:
            stats = self._peers[peer] = PeerStats()
        self._retained.pop(peer, None)
        stats.connected = True
        self._set_ips(peer, stats, keys)

    def remove_peer(self, peer: PeerId, now: float) -> None:
        """A peer disconnected: drop a positive score, retain any other for ``retain_score``.

        Retaining only non-positive scores keeps a peer from shedding a penalty by
        reconnecting. A retained score loses its P2 counters and takes the P3b penalty of any
        active mesh-delivery deficit (as go).

        Args:
            peer: the peer.
            now: the current time.
        """
        stats = self._peers.get(peer)
        if stats is None or not stats.connected:
            return
        if self.score(peer, now) > 0:
            self._drop(peer)
            return
        for topic, ts in stats.topics.items():
            ts.first_message_deliveries = 0.0
            ts.mesh_failure_penalty += deficit(ts, self.params.topics[topic], now) ** 2
            ts.in_mesh = False
        stats.connected = False
        self._retained[peer] = now + self.params.retain_score
        while len(self._retained) > self._max_retained:
            self._drop(next(iter(self._retained)))

    def graft(self, peer: PeerId, topic: str, now: float) -> None:
        """The peer joined our mesh for topic (P1 and the P3 activation time start now)."""
        ts = self._topic_stats(peer, topic)
        if ts is not None:
            ts.in_mesh = True
            ts.graft_time = now

    def prune(self, peer: PeerId, topic: str, now: float) -> None:
        """The peer left our mesh for topic; an active delivery deficit becomes sticky P3b."""
        ts = self._topic_stats(peer, topic)
        if ts is not None:
            ts.mesh_failure_penalty += deficit(ts, self.params.topics[topic], now) ** 2
            ts.in_mesh = False

    def add_penalty(self, peer: PeerId, count: int) -> None:
        """Add count to the peer's behaviour penalty counter (P7).

        Raises:
            ValueError: if count is negative.
        """
        if count < 0:
            raise ValueError("a behaviour penalty count is never negative")
        stats = self._peers.get(peer)
        if stats is not None:
            stats.behaviour_penalty += count

    def set_app_score(self, peer: PeerId, value: float) -> None:
        """Set the application-specific score P5 of a known peer (ignored for unknown peers).

        Raises:
            ValueError: if value is NaN or infinite.
        """
        if math.isnan(value) or math.isinf(value):
            raise ValueError("the application score must be a finite number")
        stats = self._peers.get(peer)
        if stats is not None:
            stats.app_score = value

    # -- messages ---------------------------------------------------------------------------

    def validate_message(self, peer: PeerId, topic: str, msg_id: bytes, now: float) -> None:
        """A new message from peer enters validation: its first-seen time is now."""
        self._deliveries.get(msg_id, now)

    def deliver_message(self, peer: PeerId, topic: str, msg_id: bytes, now: float) -> None:
        """The message first received from peer passed validation.

        Credits peer with a first delivery (P2, and P3 if in the mesh) and every mesh peer
        that sent it while it was being validated with a near-first delivery (P3).
        """
        self._mark_first(peer, topic)
        record = self._deliveries.get(msg_id, now)
        if record.status is not DeliveryStatus.UNKNOWN:
            return
        record.status = DeliveryStatus.VALID
        record.validated = now
        for other in record.peers:
            if other != peer:
                self._mark_duplicate(other, topic, None, now)

    def reject_message(
        self, peer: PeerId, topic: str, msg_id: bytes, reason: RejectReason, now: float
    ) -> None:
        """The message first received from peer was rejected for reason.

        An invalid message costs its sender and everyone who sent it during validation P4;
        ignored, throttled, blacklisted and queue-full rejections cost nobody.
        """
        if reason in PENALISE_UNTRACKED:
            self._mark_invalid(peer, topic)
            return
        if reason in IGNORE_UNTRACKED:
            return
        record = self._deliveries.get(msg_id, now)
        if record.status is not DeliveryStatus.UNKNOWN:
            return
        if reason is RejectReason.VALIDATION_THROTTLED:
            record.status = DeliveryStatus.THROTTLED
        elif reason is RejectReason.VALIDATION_IGNORED:
            record.status = DeliveryStatus.IGNORED
        else:
            record.status = DeliveryStatus.INVALID
            self._mark_invalid(peer, topic)
            for other in record.peers:
                self._mark_invalid(other, topic)
        record.peers.clear()

    def duplicate_message(self, peer: PeerId, topic: str, msg_id: bytes, now: float) -> None:
        """Peer sent a message we had already seen (each peer counts once per message)."""
        record = self._deliveries.get(msg_id, now)
        if peer in record.peers:
            return
        match record.status:
            case DeliveryStatus.UNKNOWN:
                record.peers.add(peer)
            case DeliveryStatus.VALID:
                record.peers.add(peer)
                self._mark_duplicate(peer, topic, record.validated, now)
            case DeliveryStatus.INVALID:
                self._mark_invalid(peer, topic)
            case DeliveryStatus.THROTTLED | DeliveryStatus.IGNORED:
                pass

    # -- scores -----------------------------------------------------------------------------

    def score(self, peer: PeerId, now: float) -> float:
        """The peer's score at now (0 for an unknown peer); ``breakdown`` without the objects."""
        stats = self._peers.get(peer)
        if stats is None:
            return 0.0
        params = self.params
        topic_score = 0.0
        for topic, ts in stats.topics.items():
            tp = params.topics[topic]
            topic_score += weighted(components(ts, tp, now), tp) * tp.topic_weight
        if params.topic_score_cap > 0:
            topic_score = min(topic_score, params.topic_score_cap)
        p6, p7 = self._p6_p7(stats)
        return (
            topic_score
            + stats.app_score * params.app_specific_weight
            + p6 * params.ip_colocation_factor_weight
            + p7 * params.behaviour_penalty_weight
        )

    def breakdown(self, peer: PeerId, now: float) -> ScoreBreakdown | None:
        """The peer's score with its components at now, or None for an unknown peer."""
        stats = self._peers.get(peer)
        if stats is None:
            return None
        params = self.params
        topics: dict[str, TopicScoreBreakdown] = {}
        topic_score = 0.0
        for topic, ts in stats.topics.items():
            tp = params.topics[topic]
            topics[topic] = part = topic_breakdown(ts, tp, now)
            topic_score += part.score * tp.topic_weight
        if params.topic_score_cap > 0:
            topic_score = min(topic_score, params.topic_score_cap)
        p6, p7 = self._p6_p7(stats)
        score = (
            topic_score
            + stats.app_score * params.app_specific_weight
            + p6 * params.ip_colocation_factor_weight
            + p7 * params.behaviour_penalty_weight
        )
        return ScoreBreakdown(
            topics=topics, topic_score=topic_score, p5=stats.app_score, p6=p6, p7=p7, score=score
        )

    def _p6_p7(self, stats: PeerStats) -> tuple[float, float]:
        params = self.params
        p6 = 0.0
        for key in stats.ips:
            surplus = len(self._ip_peers.get(key, ())) - params.ip_colocation_factor_threshold
            if surplus > 0:
                p6 += float(surplus * surplus)
        excess = stats.behaviour_penalty - params.behaviour_penalty_threshold
        return p6, (excess * excess if excess > 0 else 0.0)

    def statistics(self) -> ScoreStatistics:
        """A snapshot of the state sizes."""
        retained = len(self._retained)
        return ScoreStatistics(
            connected=len(self._peers) - retained,
            retained=retained,
            delivery_records=len(self._deliveries),
        )

    def __contains__(self, peer: object) -> bool:
        return peer in self._peers

    # -- time -------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` should next run (the next decay tick), None while idle."""
        return self._next_decay if self._peers else None

    def handle_timer(self, now: float) -> None:
        """Run every decay tick due by now (missed ticks are applied, not skipped)."""
        self._deliveries.expire(now)
        if now < self._next_decay:
            return
        interval = self.params.decay_interval
        ticks = math.floor((now - self._next_decay) / interval) + 1
        self._next_decay += ticks * interval
        self._refresh(now, ticks)

    def refresh_scores(self, now: float) -> None:
        """One decay step of every connected peer's counters; drop expired retained scores."""
        self._refresh(now, 1)

    def _refresh(self, now: float, ticks: int) -> None:
        while self._retained:
            peer, expire = next(iter(self._retained.items()))
            if now <= expire:
                break
            self._drop(peer)
        for stats in self._peers.values():
            if stats.connected:  # retained scores do not decay (neither penalty nor credit fades)
                decay_counters(stats, self.params, ticks)

    # -- internals --------------------------------------------------------------------------

    def _set_ips(self, peer: PeerId, stats: PeerStats, keys: tuple[str, ...]) -> None:
        for key in stats.ips:
            if key not in keys:
                self._untrack(peer, key)
        for key in keys:
            self._ip_peers.setdefault(key, set()).add(peer)
        stats.ips = keys

    def _untrack(self, peer: PeerId, key: str) -> None:
        peers = self._ip_peers.get(key)
        if peers is not None:
            peers.discard(peer)
            if not peers:
                del self._ip_peers[key]

    def _drop(self, peer: PeerId) -> None:
        stats = self._peers.pop(peer)
        self._retained.pop(peer, None)
        for key in stats.ips:
            self._untrack(peer, key)

    def _topic_stats(self, peer: PeerId, topic: str) -> TopicStats | None:
        stats = self._peers.get(peer)
        if stats is None or topic not in self.params.topics:
            return None  # only scored topics keep state
        ts = stats.topics.get(topic)
        if ts is None:
            ts = stats.topics[topic] = TopicStats()
        return ts

    def _mark_invalid(self, peer: PeerId, topic: str) -> None:
        ts = self._topic_stats(peer, topic)
        if ts is not None:
            ts.invalid_message_deliveries += 1

    def _mark_first(self, peer: PeerId, topic: str) -> None:
        ts = self._topic_stats(peer, topic)
        if ts is None:
            return
        tp = self.params.topics[topic]
        ts.first_message_deliveries = min(
            ts.first_message_deliveries + 1, tp.first_message_deliveries_cap
        )
        if ts.in_mesh:
            ts.mesh_message_deliveries = min(
                ts.mesh_message_deliveries + 1, tp.mesh_message_deliveries_cap
            )

    def _mark_duplicate(
        self, peer: PeerId, topic: str, validated: float | None, now: float
    ) -> None:
        ts = self._topic_stats(peer, topic)
        if ts is None or not ts.in_mesh:
            return
        tp = self.params.topics[topic]
        # validated is None when the copy arrived during validation: always near-first.
        if validated is not None and now - validated > tp.mesh_message_deliveries_window:
            return
        ts.mesh_message_deliveries = min(
            ts.mesh_message_deliveries + 1, tp.mesh_message_deliveries_cap
        )
