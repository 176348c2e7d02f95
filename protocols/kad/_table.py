"""The Kademlia routing table of the libp2p DHT, sans-IO: k-buckets indexed by common prefix length
with the local key, least-recently-seen eviction behind a liveness check, and bucket refresh
deadlines (https://github.com/libp2p/specs/blob/master/kad-dht/README.md#kademlia-routing-table).

The table never pings, sleeps or draws randomness itself. When a peer arrives for a full bucket
the table queues a liveness check of that bucket's least-recently-seen (LRS) peer
(:meth:`RoutingTable.checks_due`); the driver pings it over ``/ipfs/ping/1.0.0`` (the spec
forbids sending kad ``PING``) and reports back with :meth:`RoutingTable.on_check`. Meanwhile the
newcomer waits as the bucket's replacement: if the LRS peer answers it moves to the tail and the
newcomer is dropped (the original Kademlia rule: old live peers are the most likely to stay), if
not it is evicted and the newcomer takes its place.

Refresh follows go-libp2p-kbucket: each bucket up to common prefix length 15 (or the deepest
bucket holding a peer, when shallower) is refreshed when no lookup near it completed for
``refresh_interval``; deeper buckets hold so few of the keyspace's peers that a lookup of our own
ID covers them.
"""

from __future__ import annotations

import enum
import hashlib
import random

import attrs

from p2pstack.identity import PeerId
from protocols.kad._keyspace import KEY_BITS, common_prefix_length, peer_key

__all__ = ["MAX_REFRESH_CPL", "AddResult", "RoutingTable"]

#: Deepest bucket refreshed with a random key: finding a key in bucket ``c`` takes about
#: ``2 ** (c + 1)`` hashes, and go-libp2p-kbucket stops at the same depth.
MAX_REFRESH_CPL = 15

#: Refresh keys are shaped like sha2-256 peer IDs (multihash code 0x12, length 32), as go's are,
#: so that servers which parse a FIND_NODE key as a peer ID accept them.
_REFRESH_KEY_PREFIX = b"\x12\x20"

#: Attempts at finding a refresh key for one bucket before giving up until the next deadline
#: (the expected count for bucket 15 is 65,536; failing 2**22 times has probability ~e**-64).
_MAX_REFRESH_TRIES = 1 << 22


class AddResult(enum.Enum):
    """What :meth:`RoutingTable.add` did with a peer."""

    ADDED = enum.auto()  #: a new peer went into a bucket with room
    UPDATED = enum.auto()  #: already present; moved to the tail (most recently seen)
    PENDING = enum.auto()  #: bucket full; waits as the replacement while its LRS peer is checked
    REJECTED = enum.auto()  #: never admitted (the local peer)


@attrs.define
class _Check:
    """A liveness check of a full bucket's least-recently-seen peer."""

    peer: PeerId
    candidate: PeerId
    announced: bool = False


class RoutingTable:
    """Kademlia k-buckets around ``local``.

    Bucket ``i`` holds peers whose key shares exactly ``i`` leading bits with the local key
    (bucket 0 is the farther half of the keyspace). Each bucket lists peers least recently seen
    first and holds at most ``k``.

    Args:
        local: our own peer ID (never admitted).
        k: bucket size (the spec's replication parameter, 20).
        refresh_interval: seconds without a lookup in a bucket after which it is refreshed.
        now: the current time (seconds), the start of every bucket's refresh period.
        rng: the source of refresh keys.

    Raises:
        ValueError: ``k`` or ``refresh_interval`` is not positive.
    """

    def __init__(
        self,
        local: PeerId,
        *,
        k: int = 20,
        refresh_interval: float = 600.0,
        now: float,
        rng: random.Random,
    ) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        if refresh_interval <= 0:
            raise ValueError("refresh_interval must be positive")
        self.local = local
        self.k = k
        self.refresh_interval = refresh_interval
        self._rng = rng
        self._local_key = peer_key(local)
        self._local_int = int.from_bytes(self._local_key, "big")
        self._buckets: list[list[PeerId]] = [[] for _ in range(KEY_BITS)]
        self._index: dict[PeerId, int] = {}
        self._points: dict[PeerId, int] = {}
        self._checks: dict[int, _Check] = {}
        self._deepest = -1  # deepest non-empty bucket
        self._refreshed = [now] * (MAX_REFRESH_CPL + 1)
        self._refresh_keys: list[bytes] = []

    # -- membership ----------------------------------------------------------------------------

    def add(self, peer: PeerId, now: float) -> AddResult:
        """Record that ``peer`` (a DHT server) was seen.

        Args:
            peer: the peer heard from.
            now: the current time (seconds); unused today, kept for the contract's symmetry.

        Returns:
            What happened; ``PENDING`` means a liveness check of the bucket's least-recently-seen
            peer is queued (see :meth:`checks_due`) or already running, and ``peer`` is now the
            bucket's replacement candidate (replacing an earlier one).
        """
        del now
        if peer == self.local:
            return AddResult.REJECTED
        index = self._index.get(peer)
        if index is not None:
            self._touch(peer, index)
            return AddResult.UPDATED
        point = self._point(peer)
        index = KEY_BITS - (point ^ self._local_int).bit_length()
        bucket = self._buckets[index]
        if len(bucket) < self.k:
            self._insert(peer, index, point)
            return AddResult.ADDED
        check = self._checks.get(index)
        if check is None:
            self._checks[index] = _Check(peer=bucket[0], candidate=peer)
        else:
            check.candidate = peer
        return AddResult.PENDING

    def checks_due(self) -> list[PeerId]:
        """Least-recently-seen peers whose liveness the driver should check now; each is
        returned once, and each must be answered with :meth:`on_check`."""
        due = []
        for check in self._checks.values():
            if not check.announced:
                check.announced = True
                due.append(check.peer)
        return due

    def on_check(self, peer: PeerId, alive: bool, now: float) -> None:
        """Report the outcome of a liveness check of ``peer`` (ignored when none is pending,
        e.g. after :meth:`remove`).

        Args:
            peer: the checked peer.
            alive: whether it answered.
            now: the current time (seconds).
        """
        del now
        index = self._index.get(peer)
        check = None if index is None else self._checks.get(index)
        if index is None or check is None or check.peer != peer:
            return
        if alive:
            self._touch(peer, index)
        else:
            self.remove(peer)

    def remove(self, peer: PeerId) -> bool:
        """Drop ``peer`` from the table (and from any replacement slot). When its bucket has a
        check pending, the waiting candidate takes the freed place and the check is void.

        Returns:
            Whether ``peer`` was in the table.
        """
        for index, waiting in list(self._checks.items()):
            if waiting.candidate == peer:
                del self._checks[index]
        if peer not in self._index:
            return False
        index = self._index.pop(peer)
        self._buckets[index].remove(peer)
        del self._points[peer]
        while self._deepest >= 0 and not self._buckets[self._deepest]:
            self._deepest -= 1
        check = self._checks.pop(index, None)
        if check is not None:
            self._insert(check.candidate, index, self._point(check.candidate))
        return True

    def __contains__(self, peer: object) -> bool:
        return peer in self._index

    def __len__(self) -> int:
        return len(self._index)

    # -- queries -------------------------------------------------------------------------------

    def closest(self, point: bytes, count: int) -> list[PeerId]:
        """The ``count`` peers of the table nearest to the keyspace ``point``, nearest first.

        Buckets are visited in distance order, so only the buckets that contribute are sorted.
        With ``d`` the common prefix length of ``point`` and the local key, bucket ``d`` is
        nearest (its peers and ``point`` agree on bit ``d``). A deeper bucket ``j`` agrees with
        ``point`` on bits ``d + 1 .. j - 1`` like every bucket deeper than it, so it comes before
        all of them when ``point`` differs from the local key at bit ``j`` and after all of them
        otherwise. Buckets ``d - 1``, ``d - 2``, ... follow, each farther than the last.

        Args:
            point: a 32-byte keyspace point (``key_of(key)`` or ``peer_key(peer)``).
            count: how many peers at most.

        Returns:
            At most ``count`` peers (fewer when the table is smaller).
        """
        target = int.from_bytes(point, "big")
        differs = target ^ self._local_int
        shared = min(KEY_BITS - differs.bit_length(), KEY_BITS - 1)
        before: list[int] = []
        after: list[int] = []
        for index in range(shared + 1, self._deepest + 1):
            if self._buckets[index]:
                bit = (differs >> (KEY_BITS - 1 - index)) & 1
                (before if bit else after).append(index)
        order = [shared, *before, *reversed(after), *range(shared - 1, -1, -1)]
        points = self._points
        result: list[PeerId] = []
        for index in order:
            if len(result) >= count:
                break
            bucket = self._buckets[index]
            if bucket:
                ranked = sorted(bucket, key=lambda peer: points[peer] ^ target)
                result.extend(ranked[: count - len(result)])
        return result

    def peers(self) -> list[PeerId]:
        """Every peer of the table, bucket 0 first, least recently seen first in each."""
        return [peer for bucket in self._buckets for peer in bucket]

    def buckets(self) -> list[list[PeerId]]:
        """Copies of the buckets (index = common prefix length with the local key), up to the
        deepest non-empty one; least recently seen first in each."""
        return [list(bucket) for bucket in self._buckets[: self._deepest + 1]]

    def bucket_of(self, peer: PeerId) -> int:
        """The bucket ``peer`` belongs in (whether or not it is in the table).

        Raises:
            ValueError: ``peer`` is the local peer.
        """
        if peer == self.local:
            raise ValueError("the local peer has no bucket")
        return KEY_BITS - (self._point(peer) ^ self._local_int).bit_length()

    def pending_checks(self) -> dict[PeerId, PeerId]:
        """Checked LRS peer -> waiting replacement candidate, for every pending check."""
        return {check.peer: check.candidate for check in self._checks.values()}

    # -- refresh -------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When the next bucket becomes stale, or ``None`` while the table is empty."""
        depth = self._refresh_depth()
        if depth < 0:
            return None
        return min(self._refreshed[: depth + 1]) + self.refresh_interval

    def handle_timer(self, now: float) -> None:
        """Queue a refresh key (see :meth:`refresh_due`) for every bucket stale at ``now``.

        A bucket's period restarts when its key is queued, so that a lookup which never
        completes does not make it due again before ``refresh_interval`` has passed.
        """
        for cpl in range(self._refresh_depth() + 1):
            if self._refreshed[cpl] + self.refresh_interval <= now:
                self._refreshed[cpl] = now
                self._refresh_keys.append(self._refresh_key(cpl))

    def refresh_due(self) -> list[bytes]:
        """FIND_NODE keys to look up now, each returned once: raw keys (shaped like sha2-256
        peer IDs) whose SHA-256 point falls in a stale bucket."""
        keys, self._refresh_keys = self._refresh_keys, []
        return keys

    def mark_refreshed(self, point: bytes, now: float) -> None:
        """A lookup of keyspace ``point`` completed: its bucket's refresh period restarts.
        Points deeper than :data:`MAX_REFRESH_CPL` refresh nothing (those buckets are never
        refreshed by key)."""
        cpl = common_prefix_length(point, self._local_key)
        if cpl <= MAX_REFRESH_CPL:
            self._refreshed[cpl] = now

    # -- internals -----------------------------------------------------------------------------

    def _point(self, peer: PeerId) -> int:
        point = self._points.get(peer)
        if point is None:
            point = int.from_bytes(peer_key(peer), "big")
        return point

    def _insert(self, peer: PeerId, index: int, point: int) -> None:
        self._buckets[index].append(peer)
        self._index[peer] = index
        self._points[peer] = point
        self._deepest = max(self._deepest, index)

    def _touch(self, peer: PeerId, index: int) -> None:
        """Move ``peer`` to its bucket's tail; a pending check of it resolves as alive."""
        bucket = self._buckets[index]
        bucket.remove(peer)
        bucket.append(peer)
        check = self._checks.get(index)
        if check is not None and check.peer == peer:
            del self._checks[index]

    def _refresh_depth(self) -> int:
        """The deepest bucket refreshed by key (-1 when the table is empty)."""
        return min(self._deepest, MAX_REFRESH_CPL)

    def _refresh_key(self, cpl: int) -> bytes:
        """A peer-ID-shaped key whose SHA-256 shares exactly ``cpl`` leading bits with the local
        key, found by hashing random candidates from the table's rng."""
        width = cpl + 1
        wanted = (self._local_int >> (KEY_BITS - width)) ^ 1
        for _ in range(_MAX_REFRESH_TRIES):
            key = _REFRESH_KEY_PREFIX + self._rng.randbytes(32)
            digest = hashlib.sha256(key).digest()
            if int.from_bytes(digest[:4], "big") >> (32 - width) == wanted:
                return key
        raise RuntimeError(f"no refresh key found for bucket {cpl}")  # pragma: no cover
