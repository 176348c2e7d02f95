"""The gossipsub router's side of peer scoring
(https://github.com/libp2p/specs/blob/master/pubsub/gossipsub/gossipsub-v1.1.md#peer-scoring):
what the router reports to ``PeerScore`` and the thresholds it compares scores with
(#score-thresholds). With scoring off every peer scores 0 and nothing is reported, so the router
behaves exactly as v1.0 with backoff.
"""

from __future__ import annotations

import enum
from collections import OrderedDict

from p2pstack.identity import PeerId
from protocols.pubsub._routing import RpcResult
from protocols.pubsub._score import PeerScore
from protocols.pubsub._score_params import PeerScoreParams, PeerScoreThresholds
from protocols.pubsub._score_types import RejectReason

__all__ = ["RouterScore", "ValidationResult"]

#: The most received messages awaiting a validation result (the oldest is forgotten first).
MAX_PENDING_VALIDATIONS = 65_536


class ValidationResult(enum.Enum):
    """The outcome of the topic validators for a received message (the spec's accept, reject
    and ignore: only reject counts against the sender, P4)."""

    ACCEPT = "accept"
    REJECT = "reject"
    IGNORE = "ignore"


class RouterScore:
    """Scores as the router sees them: ``PeerScore`` when ``params`` is given, else none.

    Args:
        params: the score parameters (``None``: scoring off).
        thresholds: the thresholds.
        now: the current time.
        seen_ttl: how long delivery records are kept (the seen-cache TTL).
    """

    def __init__(
        self,
        params: PeerScoreParams | None,
        thresholds: PeerScoreThresholds,
        *,
        now: float,
        seen_ttl: float,
    ) -> None:
        self.score = None if params is None else PeerScore(params, now=now, seen_ttl=seen_ttl)
        self.thresholds = thresholds
        self._pending: OrderedDict[bytes, tuple[PeerId, str]] = OrderedDict()
        self._cache: dict[PeerId, float] | None = None

    @property
    def enabled(self) -> bool:
        """Whether scoring is on."""
        return self.score is not None

    def value(self, peer: PeerId, now: float) -> float:
        """The peer's score (0 with scoring off; cached while a heartbeat runs)."""
        if self.score is None:
            return 0.0
        if self._cache is None:
            return self.score.score(peer, now)
        cached = self._cache.get(peer)
        if cached is None:
            cached = self._cache[peer] = self.score.score(peer, now)
        return cached

    def hold(self) -> None:
        """Cache scores until ``release``: a heartbeat sees one score per peer, as go's does."""
        self._cache = {}

    def release(self) -> None:
        """Stop caching scores."""
        self._cache = None

    def graylisted(self, peer: PeerId, now: float) -> bool:
        """Whether the peer's RPCs are to be ignored (score below the graylist threshold)."""
        return self.enabled and self.value(peer, now) < self.thresholds.graylist

    def below_gossip(self, peer: PeerId, now: float) -> bool:
        """Whether no gossip goes to or is taken from the peer."""
        return self.enabled and self.value(peer, now) < self.thresholds.gossip

    def below_publish(self, peer: PeerId, now: float) -> bool:
        """Whether our own messages skip the peer."""
        return self.enabled and self.value(peer, now) < self.thresholds.publish

    def accepts_px(self, peer: PeerId, now: float) -> bool:
        """Whether peers offered by ``peer`` in a PRUNE are taken (with scoring off, always)."""
        return not self.enabled or self.value(peer, now) >= self.thresholds.accept_px

    # -- events -----------------------------------------------------------------------------

    def add_peer(self, peer: PeerId, ip: str | None, now: float) -> None:
        """A peer connected, from ``ip`` when known."""
        if self.score is not None:
            self.score.add_peer(peer, ip, now)

    def remove_peer(self, peer: PeerId, now: float) -> None:
        """A peer disconnected."""
        if self.score is not None:
            self.score.remove_peer(peer, now)

    def graft(self, peer: PeerId, topic: str, now: float) -> None:
        """The peer joined our mesh of ``topic``."""
        if self.score is not None:
            self.score.graft(peer, topic, now)

    def prune(self, peer: PeerId, topic: str, now: float) -> None:
        """The peer left our mesh of ``topic``."""
        if self.score is not None:
            self.score.prune(peer, topic, now)

    def penalise(self, peer: PeerId, count: int = 1) -> None:
        """Add a behaviour penalty (P7): a broken IWANT promise, a GRAFT during backoff."""
        if self.score is not None:
            self.score.add_penalty(peer, count)

    def received(self, peer: PeerId, result: RpcResult, now: float) -> None:
        """Report the messages of an RPC: new ones enter validation, duplicates may count for
        P3, and messages breaking the signing policy cost the sender P4."""
        if self.score is None:
            return
        for item in result.received:
            topic = item.message.topic
            self.score.validate_message(peer, topic, item.msg_id, now)
            self._pending[item.msg_id] = (peer, topic)
            while len(self._pending) > MAX_PENDING_VALIDATIONS:
                self._pending.popitem(last=False)
        for msg_id, topic in result.duplicated:
            self.score.duplicate_message(peer, topic, msg_id, now)
        for message, _ in result.invalid:
            self.score.reject_message(peer, message.topic, b"", RejectReason.INVALID_SIGNATURE, now)

    def validated(self, msg_id: bytes, result: ValidationResult, now: float) -> bool:
        """Report the validators' verdict on a message received earlier (once; later reports
        of the same message, or of unknown ones, do nothing).

        Args:
            msg_id: the message's ID.
            result: the verdict.
            now: the current time.

        Returns:
            Whether the message was awaiting a verdict.
        """
        pending = self._pending.pop(msg_id, None)
        if pending is None or self.score is None:
            return False
        peer, topic = pending
        match result:
            case ValidationResult.ACCEPT:
                self.score.deliver_message(peer, topic, msg_id, now)
            case ValidationResult.REJECT:
                reason = RejectReason.VALIDATION_FAILED
                self.score.reject_message(peer, topic, msg_id, reason, now)
            case ValidationResult.IGNORE:
                reason = RejectReason.VALIDATION_IGNORED
                self.score.reject_message(peer, topic, msg_id, reason, now)
        return True

    def next_deadline(self) -> float | None:
        """When the score's decay is next due (``None``: scoring off or idle)."""
        return None if self.score is None else self.score.next_deadline()

    def handle_timer(self, now: float) -> None:
        """Run the score's decay ticks due by ``now``."""
        if self.score is not None:
            self.score.handle_timer(now)
