"""The iterative, alpha-parallel closest-peers lookup of the Kademlia DHT as a sans-IO state
machine (https://github.com/libp2p/specs/blob/master/kad-dht/README.md#peer-routing).

The driver asks :meth:`Lookup.next_requests` whom to query, sends each peer a request (FIND_NODE,
GET_VALUE or GET_PROVIDERS: the lookup does not care), and feeds back what happens:
:meth:`~Lookup.on_response` with the closer peers the answer named, :meth:`~Lookup.on_failure`
when the request failed, and :meth:`~Lookup.handle_timer` at :meth:`~Lookup.next_deadline`. No
clock and no randomness inside: the same lookup runs on the network and on the simulator.

Rules:

* The candidates are every peer heard of (seeds and peers named in answers), except the local
  peer and peers that failed, ranked by XOR distance to the target.
* At most ``alpha`` requests are in flight. A new request goes to the closest candidate not yet
  asked, but only among the ``k`` closest candidates: a peer outside them cannot improve the
  result until some of them fail.
* The lookup is *done* when the ``k`` closest candidates have all answered (a failed peer drops
  out of the candidates and the next one moves up), when the candidates run out, when the caller
  calls :meth:`~Lookup.stop`, or at the query deadline (then ``timed_out`` is set).
* A returned peer is never dropped for not being closer than the peer that named it (js does
  that; in small or sparse networks it ends lookups before they reach the closest peers).
  Every peer of an answer is kept, even beyond ``k``: when some of the closest fail, the
  farther ones are what is left. Memory stays bounded by the decoder, which reads at most
  ``MAX_PEERS_PER_LIST`` (100) peers per answer.
* A request not answered within ``request_timeout`` counts as a failure, and a failed peer is
  never asked again in this lookup. Answers after a timeout, after the end of the lookup, or from
  peers never asked are ignored.

Hops: a seed is at hop 1; a peer first named by a peer at hop ``h`` is at hop ``h + 1`` (the
smallest over every naming seen before it answered). The lookup's ``hops`` is the hop
of the closest peer that answered: how many rounds of requests a sequential lookup needs to reach
it, which is the figure the IPFS measurements report (median 4 on ~16k servers).
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Sequence

import attrs

from p2pstack.identity import PeerId
from protocols.kad._keyspace import KEY_BYTES, peer_key
from protocols.kad._types import KadPeer

__all__ = ["MAX_ADDRS_PER_CANDIDATE", "Lookup", "LookupConfig", "LookupResult"]

#: Addresses kept per candidate when several answers name it with different addresses.
MAX_ADDRS_PER_CANDIDATE = 32


@attrs.frozen(kw_only=True)
class LookupConfig:
    """Parameters of one lookup.

    Attributes:
        k: how many closest peers the lookup finds (the spec's and go/js/rust's 20).
        alpha: requests in flight at once (js and rust use 3, go 10, the spec suggests 10).
        request_timeout: seconds before an unanswered request counts as failed.
        query_timeout: seconds before the whole lookup ends with what it has.

    Why alpha = 3: on the fake network of the tests (1,000 peers with 20-per-bucket tables,
    10-200 ms latency, 40 lookups seeded with 20 peers), alpha 1 / 3 / 5 / 10 took a median of
    2.1 / 0.8 / 0.6 / 0.4 s and 20 / 22 / 24 / 29 requests; with 10% of the peers silent and a
    5 s request timeout, 12.0 / 5.7 / 5.4 / 5.3 s and 22 / 24 / 26 / 31 requests. 3 gets most of
    the speed for 10% more requests than the minimum; beyond it the timeouts dominate and every
    step of alpha costs requests (and load on the closest peers, which every lookup asks).

    Raises:
        ValueError: a value is not positive.
    """

    k: int = attrs.field(default=20, validator=attrs.validators.gt(0))
    alpha: int = attrs.field(default=3, validator=attrs.validators.gt(0))
    request_timeout: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    query_timeout: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))


@attrs.frozen(kw_only=True)
class LookupResult:
    """What a lookup found and what it cost.

    Attributes:
        closest: peers that answered, nearest to the target first, at most ``k``.
        hops: the hop of the nearest peer that answered (module docs); 0 if none answered.
        queried: peers that answered.
        failed: peers whose request failed or timed out.
        messages: requests sent (answered, failed, and still in flight at the end).
        timed_out: the query deadline ended the lookup.
    """

    closest: list[KadPeer]
    hops: int
    queried: int
    failed: int
    messages: int
    timed_out: bool = False


class _State(enum.Enum):
    HEARD = enum.auto()
    WAITING = enum.auto()
    ANSWERED = enum.auto()
    FAILED = enum.auto()


class _Candidate:
    __slots__ = ("deadline", "distance", "hop", "peer", "state")

    def __init__(self, peer: KadPeer, distance: int, hop: int) -> None:
        self.peer = peer
        self.distance = distance
        self.hop = hop
        self.state = _State.HEARD
        self.deadline = 0.0


class Lookup:
    """One closest-peers lookup (see the module docs for its rules).

    Args:
        target: the keyspace point looked up (32 bytes: ``key_of(key)`` or ``peer_key(peer)``).
        seeds: the peers to start from (usually the routing table's closest to ``target``).
        local: our own peer ID, never queried.
        config: ``k``, ``alpha`` and the timeouts.
        now: the current time; the query deadline is ``now + config.query_timeout``.

    Raises:
        ValueError: ``target`` is not 32 bytes long.
    """

    def __init__(
        self,
        target: bytes,
        seeds: Iterable[KadPeer],
        *,
        local: PeerId,
        config: LookupConfig,
        now: float,
    ) -> None:
        if len(target) != KEY_BYTES:
            raise ValueError(f"lookup target must be a {KEY_BYTES}-byte keyspace point")
        self._target = int.from_bytes(target, "big")
        self._local = local
        self._config = config
        self._deadline = now + config.query_timeout
        self._candidates: dict[PeerId, _Candidate] = {}
        # Candidates that have not failed, nearest first, as (distance, peer ID).
        self._ranked: list[tuple[int, PeerId]] = []
        self._waiting: dict[PeerId, _Candidate] = {}
        self._answered = 0
        self._failed = 0
        self._messages = 0
        self.done = False
        self.timed_out = False
        for seed in seeds:
            self._learn(seed, hop=1)
        self._check_done()

    @property
    def in_flight(self) -> tuple[PeerId, ...]:
        """Peers asked and not yet answered (a driver cancels these once the lookup is done)."""
        return tuple(self._waiting)

    def next_requests(self, now: float) -> list[KadPeer]:
        """Peers to send a request to now; each is in flight from this call on.

        Args:
            now: the current time (overdue requests and the query deadline are applied first).

        Returns:
            The peers to ask, nearest first; empty when ``alpha`` requests are in flight, when no
            candidate is left to ask, or when the lookup is done.
        """
        self._advance(now)
        if self.done:
            return []
        slots = self._config.alpha - len(self._waiting)
        out: list[KadPeer] = []
        for _, peer_id in self._ranked[: self._config.k]:
            if slots <= 0:
                break
            candidate = self._candidates[peer_id]
            if candidate.state is _State.HEARD:
                candidate.state = _State.WAITING
                candidate.deadline = now + self._config.request_timeout
                self._waiting[peer_id] = candidate
                self._messages += 1
                slots -= 1
                out.append(candidate.peer)
        return out

    def on_response(self, peer: PeerId, closer: Sequence[KadPeer], now: float) -> None:
        """Record ``peer``'s answer and the peers it named.

        Args:
            peer: the peer that answered (ignored unless its request is in flight).
            closer: the ``closerPeers`` of its answer, in any order.
            now: the current time.
        """
        self._advance(now)
        candidate = None if self.done else self._waiting.pop(peer, None)
        if candidate is None:
            return
        candidate.state = _State.ANSWERED
        self._answered += 1
        for other in closer:
            self._learn(other, hop=candidate.hop + 1)
        self._check_done()

    def on_failure(self, peer: PeerId, now: float) -> None:
        """Record that the request to ``peer`` failed (refused, reset, bad answer, ...).

        Args:
            peer: the peer asked (ignored unless its request is in flight).
            now: the current time.
        """
        self._advance(now)
        if not self.done and peer in self._waiting:
            self._fail(peer)
            self._check_done()

    def stop(self) -> None:
        """End the lookup now (the caller has what it needs: a quorum of values, providers)."""
        self.done = True

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` has work: the first request timeout or the query deadline
        (``None`` once done)."""
        if self.done:
            return None
        return min([self._deadline, *(c.deadline for c in self._waiting.values())])

    def handle_timer(self, now: float) -> None:
        """Fail the requests that are overdue and end the lookup at the query deadline.

        Args:
            now: the current time.
        """
        self._advance(now)

    def result(self) -> LookupResult:
        """What the lookup found so far (final once ``done``)."""
        answered = [
            self._candidates[peer_id]
            for _, peer_id in self._ranked
            if self._candidates[peer_id].state is _State.ANSWERED
        ][: self._config.k]
        return LookupResult(
            closest=[c.peer for c in answered],
            hops=answered[0].hop if answered else 0,
            queried=self._answered,
            failed=self._failed,
            messages=self._messages,
            timed_out=self.timed_out,
        )

    def _distance(self, peer: PeerId) -> int:
        return int.from_bytes(peer_key(peer), "big") ^ self._target

    def _learn(self, peer: KadPeer, hop: int) -> None:
        known = self._candidates.get(peer.peer_id)
        if known is None:
            if peer.peer_id == self._local:
                return
            distance = self._distance(peer.peer_id)
            peer = attrs.evolve(peer, addrs=peer.addrs[:MAX_ADDRS_PER_CANDIDATE])
            self._candidates[peer.peer_id] = _Candidate(peer, distance, hop)
            bisect.insort(self._ranked, (distance, peer.peer_id))
            return
        if known.state in (_State.HEARD, _State.WAITING):
            known.hop = min(known.hop, hop)
        new = [a for a in peer.addrs if a not in known.peer.addrs]
        room = MAX_ADDRS_PER_CANDIDATE - len(known.peer.addrs)
        if new and room > 0:
            known.peer = attrs.evolve(known.peer, addrs=known.peer.addrs + tuple(new[:room]))

    def _fail(self, peer: PeerId) -> None:
        candidate = self._waiting.pop(peer)
        candidate.state = _State.FAILED
        self._failed += 1
        index = bisect.bisect_left(self._ranked, (candidate.distance, peer))
        del self._ranked[index]

    def _advance(self, now: float) -> None:
        if self.done:
            return
        if now >= self._deadline:
            self.done = True
            self.timed_out = True
            return
        overdue = [p for p, c in self._waiting.items() if c.deadline <= now]
        for peer in overdue:
            self._fail(peer)
        if overdue:
            self._check_done()

    def _check_done(self) -> None:
        top = self._ranked[: self._config.k]
        if all(self._candidates[p].state is _State.ANSWERED for _, p in top):
            self.done = True
