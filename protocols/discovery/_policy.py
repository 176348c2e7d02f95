"""The discovery service's dial policy as a sans-IO core (a ``p2pstack.sansio.TimedCore``): which
discovered peers to dial and when, and which discoveries are worth announcing.

Rules:

* keep at least ``min_connections`` connected peers: while fewer are connected (dials in flight
  counting as connected), dial candidates, fewest failures first, then oldest first;
* an *eager* candidate (a bootstrap peer) is dialed even when there are enough connections;
* at most ``max_concurrent_dials`` dials at once;
* a peer whose dial failed waits ``backoff_base · 2^(failures-1)`` seconds, at most
  ``backoff_max``, before the next attempt; a success (or the peer connecting to us) forgets
  its failures;
* never ourselves, a connected peer or a peer being dialed;
* at most ``max_candidates`` candidates are kept: the oldest one not being dialed is forgotten.

Announcements (``note``) are deduplicated per (peer, source): a discovery is announced when the
peer is new for that source, brings an address not announced yet, or was last announced
``reannounce_interval`` seconds ago or more.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from p2pstack.errors import LocalProtocolError

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.identity import PeerId

__all__ = ["DialPolicy", "DialPolicyConfig", "DialPolicyStatistics"]

_positive = attrs.validators.gt(0)
_positive_float = attrs.validators.gt(0.0)


@attrs.frozen(kw_only=True)
class DialPolicyConfig:
    """Settings of the dial policy (seconds for times). Derive variants with ``attrs.evolve``.

    Attributes:
        min_connections: connected peers to keep at least (0: dial only eager candidates).
        max_concurrent_dials: dials in flight at once.
        backoff_base: wait after a peer's first failed dial.
        backoff_max: cap of the exponential wait.
        max_candidates: peers remembered as dial candidates (and announcement records).
        reannounce_interval: an unchanged discovery is announced again after this long.
    """

    min_connections: int = attrs.field(default=8, validator=attrs.validators.ge(0))
    max_concurrent_dials: int = attrs.field(default=4, validator=_positive)
    backoff_base: float = attrs.field(default=1.0, validator=_positive_float)
    backoff_max: float = attrs.field(default=300.0, validator=_positive_float)
    max_candidates: int = attrs.field(default=1024, validator=_positive)
    reannounce_interval: float = attrs.field(default=600.0, validator=_positive_float)

    def __attrs_post_init__(self) -> None:
        if self.backoff_max < self.backoff_base:
            raise ValueError("backoff_max must be at least backoff_base")


@attrs.frozen(kw_only=True)
class DialPolicyStatistics:
    """A snapshot of the policy's state and counters."""

    candidates: int
    connected: int
    dialing: int
    dials: int
    dial_failures: int
    evicted: int


@attrs.define
class _Candidate:
    failures: int = 0
    not_before: float = 0.0
    eager: bool = False


class DialPolicy:
    """Decides the discovery service's dials.

    Feed it discoveries (``add``), connection changes (``connected``/``disconnected``) and dial
    outcomes (``dial_finished``); after each input, and after ``handle_timer``, take the dials
    to start with ``take_dials()`` (each peer is then "dialing" until ``dial_finished``).

    Args:
        local: our own peer ID (never dialed).
        config: the rules' numbers.
    """

    def __init__(self, local: PeerId, config: DialPolicyConfig | None = None) -> None:
        self.config = config or DialPolicyConfig()
        self._local = local
        self._candidates: dict[PeerId, _Candidate] = {}  # insertion order: oldest first
        self._connected: set[PeerId] = set()
        self._dialing: set[PeerId] = set()
        self._ready: list[PeerId] = []
        self._announced: dict[tuple[PeerId, str], tuple[frozenset[Multiaddr], float]] = {}
        self._dials = 0
        self._failures = 0
        self._evicted = 0

    # -- inputs ---------------------------------------------------------------------------------

    def add(self, peer: PeerId, now: float, *, eager: bool = False) -> None:
        """A discoverer found ``peer``: remember it as a dial candidate.

        Args:
            peer: the peer (ourselves is ignored).
            now: the current time.
            eager: dial it even when there are enough connections (until a dial succeeds).
        """
        if peer == self._local:
            return
        candidate = self._candidates.get(peer)
        if candidate is None:
            candidate = self._candidates[peer] = _Candidate()
            self._evict()
        candidate.eager = candidate.eager or (eager and peer not in self._connected)
        self._select(now)

    def connected(self, peer: PeerId, now: float) -> None:
        """The host has a connection to ``peer`` (ours or theirs): its failures are forgotten."""
        self._connected.add(peer)
        candidate = self._candidates.get(peer)
        if candidate is not None:
            candidate.failures, candidate.not_before, candidate.eager = 0, 0.0, False

    def disconnected(self, peer: PeerId, now: float) -> None:
        """The host's last connection to ``peer`` closed."""
        self._connected.discard(peer)
        self._select(now)

    def dial_finished(self, peer: PeerId, now: float, *, ok: bool) -> None:
        """A dial started from ``take_dials`` ended (a success forgets the peer's failures; the
        connection itself is reported with ``connected``).

        Raises:
            LocalProtocolError: ``peer`` was not being dialed.
        """
        if peer not in self._dialing:
            raise LocalProtocolError(f"no dial to {peer} in flight")
        self._dialing.discard(peer)
        candidate = self._candidates.get(peer)
        if ok:
            # Only ``connected``/``disconnected`` say whether the peer is connected: the
            # connection may already have closed again when its dial returns.
            if candidate is not None:
                candidate.failures, candidate.not_before, candidate.eager = 0, 0.0, False
        elif candidate is not None:
            self._failures += 1
            candidate.failures += 1
            wait = self.config.backoff_base * 2.0 ** min(candidate.failures - 1, 62)
            candidate.not_before = now + min(wait, self.config.backoff_max)
        self._select(now)

    def note(self, peer: PeerId, source: str, addrs: Iterable[Multiaddr], now: float) -> bool:
        """Whether a discovery of ``peer`` by ``source`` should be announced (see the module
        docstring); records it if so."""
        if peer == self._local:
            return False
        key = (peer, source)
        new = frozenset(addrs)
        previous = self._announced.get(key)
        if previous is not None:
            seen, when = previous
            if new <= seen and now - when < self.config.reannounce_interval:
                return False
            new = new | seen if now - when < self.config.reannounce_interval else new
            del self._announced[key]  # re-insert: newest last
        self._announced[key] = (new, now)
        while len(self._announced) > self.config.max_candidates:
            del self._announced[next(iter(self._announced))]
        return True

    # -- outputs --------------------------------------------------------------------------------

    def take_dials(self) -> list[PeerId]:
        """The peers to dial now (each returned once; report each with ``dial_finished``)."""
        ready, self._ready = self._ready, []
        return ready

    def next_deadline(self) -> float | None:
        """When a candidate in backoff may be dialed, if a dial slot is free and one is
        wanted; ``None`` otherwise (an input will make room)."""
        if len(self._dialing) >= self.config.max_concurrent_dials:
            return None
        want_more = self._wanted() > 0
        waits = [
            c.not_before
            for peer, c in self._candidates.items()
            if (want_more or c.eager) and self._eligible(peer)
        ]
        return min(waits, default=None)

    def handle_timer(self, now: float) -> None:
        """Move candidates whose backoff ended to the dials to start."""
        self._select(now)

    def statistics(self) -> DialPolicyStatistics:
        """Counters and sizes."""
        return DialPolicyStatistics(
            candidates=len(self._candidates),
            connected=len(self._connected),
            dialing=len(self._dialing),
            dials=self._dials,
            dial_failures=self._failures,
            evicted=self._evicted,
        )

    # -- internals ------------------------------------------------------------------------------

    def _wanted(self) -> int:
        return self.config.min_connections - len(self._connected) - len(self._dialing)

    def _eligible(self, peer: PeerId) -> bool:
        return peer not in self._connected and peer not in self._dialing

    def _select(self, now: float) -> None:
        slots = self.config.max_concurrent_dials - len(self._dialing)
        if slots <= 0:
            return
        due = [
            (c.failures, order, peer, c.eager)
            for order, (peer, c) in enumerate(self._candidates.items())
            if c.not_before <= now and self._eligible(peer)
        ]
        due.sort()
        wanted = self._wanted()
        for _, _, peer, eager in due:
            if slots == 0:
                break
            if wanted <= 0 and not eager:
                continue
            self._dialing.add(peer)
            self._ready.append(peer)
            self._dials += 1
            slots -= 1
            wanted -= 1

    def _evict(self) -> None:
        while len(self._candidates) > self.config.max_candidates:
            victim = next((p for p in self._candidates if p not in self._dialing), None)
            if victim is None:
                return
            del self._candidates[victim]
            self._evicted += 1
