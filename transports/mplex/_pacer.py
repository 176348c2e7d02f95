"""Pacing of mplex stream opens, sans-IO: at most N ``NewStream`` messages within any sliding
window, so that a js-libp2p peer's open-rate limit is never hit (see ``transports.mplex``)."""

from __future__ import annotations

from collections import deque

__all__ = ["StreamOpenPacer"]


class StreamOpenPacer:
    """Limits how many streams are opened within any sliding time window (sans-IO: the caller
    passes the current time).

    Args:
        max_opens: opens allowed within any ``window`` seconds.
        window: the window length in seconds; 0 disables pacing.
    """

    def __init__(self, max_opens: int, window: float) -> None:
        if max_opens <= 0 or window < 0:
            raise ValueError("max_opens must be positive and window non-negative")
        self._window = window
        self._times: deque[float] = deque(maxlen=max_opens)

    def delay(self, now: float) -> float:
        """Seconds to wait from ``now`` before the next open is allowed (0.0 if it is now)."""
        if not self._window or len(self._times) < (self._times.maxlen or 0):
            return 0.0
        return max(0.0, self._times[0] + self._window - now)

    def record(self, now: float) -> None:
        """Record an open made at ``now`` (call after the ``NewStream`` was written)."""
        self._times.append(now)
