"""Admission of inbound perf requests per peer: concurrent requests and requests per minute.

Perf costs the server real bandwidth and CPU per request (an 8-byte request may ask for GiBs),
so a serving node bounds what each peer may ask. Kept apart from the service so that the
concurrency part can move onto the host's per-peer resource scopes later.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["PeerAdmission"]

#: Seconds of requests one peer may send in a burst (its bucket holds this much of its rate).
_BURST_SECONDS = 10.0
#: Buckets kept before full ones are looked for and dropped.
_PRUNE_MIN = 64


class PeerAdmission:
    """Per-peer concurrency cap and token-bucket rate limit.

    A peer's bucket holds ``per_minute / 6`` requests (ten seconds' worth, at least one) and
    refills at ``per_minute / 60`` per second. State is kept only for peers with a request
    running or a bucket not yet full again, so its size is bounded by recently active peers.
    """

    def __init__(self, *, per_peer: int, per_minute: float | None) -> None:
        """Args:
        per_peer: most requests one peer may have running at once.
        per_minute: sustained requests per minute per peer (``None``: no rate limit).

        Raises:
            ValueError: a limit is not positive.
        """
        if per_peer < 1:
            raise ValueError("per_peer must be at least 1")
        if per_minute is not None and per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self._per_peer = per_peer
        self._rate = None if per_minute is None else per_minute / 60.0
        self._capacity = 1.0 if per_minute is None else max(1.0, per_minute / 60 * _BURST_SECONDS)
        self._running: dict[Hashable, int] = {}
        #: peer -> (tokens, time of that count)
        self._buckets: dict[Hashable, tuple[float, float]] = {}
        self._prune_at = _PRUNE_MIN

    def admit(self, peer: Hashable, now: float) -> str | None:
        """Try to start one request for ``peer`` at time ``now`` (seconds).

        Returns:
            ``None`` if admitted (call ``done`` when it ends), else why not: ``"busy"`` (the
            peer has ``per_peer`` requests running) or ``"rate"`` (its bucket is empty).
        """
        running = self._running.get(peer, 0)
        if running >= self._per_peer:
            return "busy"
        if self._rate is not None:
            tokens = self._tokens(peer, now)
            if tokens < 1.0:
                return "rate"
            self._buckets[peer] = (tokens - 1.0, now)
            self._forget_full(now)
        self._running[peer] = running + 1
        return None

    def done(self, peer: Hashable) -> None:
        """End one request that ``admit`` let ``peer`` start."""
        running = self._running[peer] - 1
        if running:
            self._running[peer] = running
        else:
            del self._running[peer]

    def _tokens(self, peer: Hashable, now: float) -> float:
        assert self._rate is not None
        tokens, then = self._buckets.get(peer, (self._capacity, now))
        return min(self._capacity, tokens + (now - then) * self._rate)

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled, once there are many (amortised O(1) per call)."""
        if len(self._buckets) < self._prune_at:
            return
        full = [p for p in self._buckets if self._tokens(p, now) >= self._capacity]
        for peer in full:
            del self._buckets[peer]
        self._prune_at = max(_PRUNE_MIN, 2 * len(self._buckets))

    def tracked_peers(self) -> int:
        """Peers with state held (for tests and statistics)."""
        return len(self._running.keys() | self._buckets.keys())
