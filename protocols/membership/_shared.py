"""A converged view shared by many cores (simulations of 10,000 members): each member's alive
record is built and verified once, and every core that adopts the view keeps only what it
changed (copy on first access) instead of a full table of its own.

A full table costs some 250 bytes per member per core (a ``Member`` record, a dict entry and a
position in the live set), so 10,000 cores knowing each other hold 10^8 records, about 25 GB. A
core adopting a :class:`SharedView` holds an overlay of the records it touched, the members it
removed and its own probe order (8 bytes per member)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Sequence, ValuesView

import attrs

from p2pstack.identity import PeerId
from protocols.membership._types import (
    InvalidClaimSignature,
    Member,
    MemberState,
    VerifyFn,
)
from protocols.membership._wire import Alive, alive_payload

__all__ = ["MemberOverlay", "PeerSet", "PeerSetOverlay", "SharedView"]


class SharedView:
    """Every member's alive record from signed alive claims (each signature checked once).

    Raises:
        InvalidClaimSignature: a claim is not signed by the member it is about.
    """

    def __init__(self, now: float, claims: Sequence[Alive], verify: VerifyFn) -> None:
        self.members: dict[PeerId, Member] = {}
        for a in claims:
            payload = alive_payload(a.peer_id, a.incarnation, a.addrs, a.metadata)
            if not verify(a.peer_id, payload, a.signature):
                raise InvalidClaimSignature(f"alive claim about {a.peer_id} not signed by it")
            self.members[a.peer_id] = Member(
                a.peer_id,
                a.addrs,
                a.incarnation,
                MemberState.ALIVE,
                now,
                a.metadata,
                alive_signature=a.signature,
                alive_incarnation=a.incarnation,
            )
        self.ids: list[PeerId] = list(self.members)
        self.positions: dict[PeerId, int] = {p: i for i, p in enumerate(self.ids)}


class _OverlayValues(ValuesView[Member]):
    def __init__(self, overlay: MemberOverlay) -> None:
        super().__init__(overlay)
        self._overlay = overlay

    def __iter__(self) -> Iterator[Member]:
        return self._overlay.iter_records()


class MemberOverlay(dict[PeerId, Member]):
    """A core's member table over a :class:`SharedView`: the records this core accessed
    (copied from the view on first access, so that the core changes only its own copy), over the
    view's records minus the ones removed and ``hidden`` (the local member).

    Only the mapping methods the core uses are provided: ``[]``, ``get``, ``in``, ``len``,
    ``del``, assignment, iteration and ``values()`` (which yields the view's records uncopied,
    for reading)."""

    def __init__(self, view: SharedView, hidden: PeerId) -> None:
        super().__init__()
        self._base = view.members
        self._gone: set[PeerId] = {hidden} if hidden in view.members else set()
        self._size = len(view.members) - len(self._gone)

    def _shared(self, key: object) -> bool:
        return key in self._base and key not in self._gone

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or self._shared(key)

    def __getitem__(self, key: PeerId) -> Member:
        record = dict.get(self, key)
        if record is not None:
            return record
        if not self._shared(key):
            raise KeyError(key)
        record = attrs.evolve(self._base[key])
        dict.__setitem__(self, key, record)
        return record

    def get(self, key: PeerId, default: Member | None = None) -> Member | None:  # type: ignore[override]  # one signature of dict.get is enough here
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key: PeerId, value: Member) -> None:
        if key not in self:
            self._size += 1
        self._gone.discard(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: PeerId) -> None:
        if key not in self:
            raise KeyError(key)
        dict.pop(self, key, None)
        if key in self._base:
            self._gone.add(key)
        self._size -= 1

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[PeerId]:
        yield from dict.__iter__(self)
        for key in self._base:
            if not dict.__contains__(self, key) and key not in self._gone:
                yield key

    def iter_records(self) -> Iterator[Member]:
        yield from dict.values(self)
        for key, record in self._base.items():
            if not dict.__contains__(self, key) and key not in self._gone:
                yield record

    def values(self) -> _OverlayValues:  # type: ignore[override]  # a view over both layers
        return _OverlayValues(self)


class PeerSet:
    """Peers with O(1) add, remove and random draws (a list plus positions), so that choosing
    gossip targets and helpers does not scan the whole table."""

    def __init__(self) -> None:
        self.items: list[PeerId] = []
        self._pos: dict[PeerId, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._pos

    def add(self, peer_id: PeerId) -> None:
        if peer_id not in self._pos:
            self._pos[peer_id] = len(self.items)
            self.items.append(peer_id)

    def discard(self, peer_id: PeerId) -> None:
        i = self._pos.pop(peer_id, None)
        if i is None:
            return
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self._pos[last] = i

    def sample(self, rng: random.Random, k: int, accept: Callable[[PeerId], bool]) -> list[PeerId]:
        """Up to ``k`` distinct random peers that ``accept`` takes."""
        if len(self.items) <= 4 * k + 4:
            pool = [p for p in self.items if accept(p)]
            return rng.sample(pool, min(k, len(pool)))
        out: list[PeerId] = []
        for _ in range(8 * k + 8):  # bounded rejection sampling; few peers are refused
            peer_id = self.items[rng.randrange(len(self.items))]
            if peer_id not in out and accept(peer_id):
                out.append(peer_id)
                if len(out) == k:
                    break
        return out


class PeerSetOverlay(PeerSet):
    """A :class:`PeerSet` over a :class:`SharedView`'s members: the view's peers minus the
    removed ones (``hidden`` from the start), plus peers added that the view does not hold."""

    def __init__(self, view: SharedView, hidden: PeerId) -> None:
        super().__init__()
        self._base = view.ids
        self._base_pos = view.positions
        self._removed: set[PeerId] = {hidden} if hidden in view.positions else set()

    def __len__(self) -> int:
        return len(self._base) - len(self._removed) + len(self.items)

    def __contains__(self, peer_id: object) -> bool:
        if peer_id in self._base_pos:
            return peer_id not in self._removed
        return peer_id in self._pos

    def add(self, peer_id: PeerId) -> None:
        if peer_id in self._base_pos:
            self._removed.discard(peer_id)
        else:
            super().add(peer_id)

    def discard(self, peer_id: PeerId) -> None:
        if peer_id in self._base_pos:
            self._removed.add(peer_id)
        else:
            super().discard(peer_id)

    def sample(self, rng: random.Random, k: int, accept: Callable[[PeerId], bool]) -> list[PeerId]:
        if len(self) <= 4 * k + 4:
            pool = [p for p in itertools.chain(self._base, self.items) if p in self and accept(p)]
            return rng.sample(pool, min(k, len(pool)))
        out: list[PeerId] = []
        total = len(self._base) + len(self.items)
        for _ in range(8 * k + 8):
            i = rng.randrange(total)
            peer_id = self._base[i] if i < len(self._base) else self.items[i - len(self._base)]
            if peer_id not in self._removed and peer_id not in out and accept(peer_id):
                out.append(peer_id)
                if len(out) == k:
                    break
        return out
