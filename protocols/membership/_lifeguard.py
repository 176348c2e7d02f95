"""Lifeguard's local health (awareness) and dynamic suspicion timeouts, and the infection-style
broadcast queue (hashicorp/memberlist ``awareness.go``, ``suspicion.go``, ``queue.go``;
Dadgar et al., "Lifeguard: Local Health Awareness for More Accurate Failure Detection", 2018)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import attrs

from p2pstack.identity import PeerId
from protocols.membership._wire import Broadcast, encode_broadcast

__all__ = ["Awareness", "BroadcastQueue", "Suspicion"]


class Awareness:
    """The local health multiplier: a score in ``[0, max_multiplier)``; timeouts are scaled by
    ``score + 1``. Failed probes without the expected nacks and refutations raise it, successful
    probes lower it."""

    def __init__(self, max_multiplier: int) -> None:
        self._max = max_multiplier
        self.score = 0

    def apply_delta(self, delta: int) -> None:
        self.score = min(max(self.score + delta, 0), self._max - 1)

    def scale(self, timeout: float) -> float:
        return timeout * (self.score + 1)


@attrs.define
class Suspicion:
    """A suspicion timer that starts at ``max_timeout`` and shrinks toward ``min_timeout`` as
    independent confirmations arrive: ``max - log(n + 1) / log(k + 1) * (max - min)`` after ``n``
    of the ``k`` expected confirmations (memberlist ``remainingSuspicionTime``). With ``k < 1``
    the timeout is ``min_timeout`` from the start."""

    start: float
    k: int
    min_timeout: float
    max_timeout: float
    confirmations: set[PeerId]
    n: int = 0
    deadline: float = 0.0

    @classmethod
    def new(cls, start: float, sender: PeerId, k: int, min_t: float, max_t: float) -> Suspicion:
        s = cls(start, k, min_t, max_t if k >= 1 else min_t, {sender})
        s.deadline = start + s.timeout()
        return s

    def timeout(self) -> float:
        if self.k < 1:
            return self.min_timeout
        frac = math.log(self.n + 1) / math.log(self.k + 1)
        raw = self.max_timeout - frac * (self.max_timeout - self.min_timeout)
        return max(math.floor(raw * 1000) / 1000, self.min_timeout)

    def confirm(self, sender: PeerId) -> bool:
        """Count ``sender``'s suspicion once; ``True`` if it was new (and should be gossiped)."""
        if self.n >= self.k or sender in self.confirmations:
            return False
        self.confirmations.add(sender)
        self.n += 1
        self.deadline = self.start + self.timeout()
        return True


@attrs.define
class _Entry:
    broadcast: Broadcast
    encoded: bytes
    order: int
    transmits: int = 0


class BroadcastQueue:
    """Broadcasts waiting to be piggybacked, at most one per member (a newer claim replaces an
    older one), each sent up to the retransmit limit; least transmitted, then newest, first."""

    def __init__(self, max_entries: int) -> None:
        self._entries: dict[PeerId, _Entry] = {}
        self._max = max_entries
        self._counter = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, peer_id: PeerId) -> bool:
        return peer_id in self._entries

    def push(self, broadcast: Broadcast) -> None:
        self._entries.pop(broadcast.peer_id, None)
        if len(self._entries) >= self._max:
            worst = max(self._entries.values(), key=lambda e: (e.transmits, -e.order))
            del self._entries[worst.broadcast.peer_id]
        self._entries[broadcast.peer_id] = _Entry(
            broadcast, encode_broadcast(broadcast), next(self._counter)
        )

    def discard(self, peer_id: PeerId) -> None:
        self._entries.pop(peer_id, None)

    def take(
        self, budget: int, limit: int, skip: Callable[[Broadcast], bool] | None = None
    ) -> list[tuple[Broadcast, bytes]]:
        """Broadcasts fitting in ``budget`` bytes, with their encodings (for
        ``encode_message(encoded=...)``); each taken one counts a transmission and is dropped at
        ``limit`` transmissions. ``skip`` leaves entries out (not counted)."""
        out: list[tuple[Broadcast, bytes]] = []
        for entry in sorted(self._entries.values(), key=lambda e: (e.transmits, -e.order)):
            if budget < 16:
                break
            size = len(entry.encoded)
            if size > budget or (skip is not None and skip(entry.broadcast)):
                continue
            budget -= size
            out.append((entry.broadcast, entry.encoded))
            entry.transmits += 1
            if entry.transmits >= limit:
                del self._entries[entry.broadcast.peer_id]
        return out
