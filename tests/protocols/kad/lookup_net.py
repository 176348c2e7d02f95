"""A fake in-memory network for driving ``Lookup`` in tests: peers with a view of the network
(global, or a routing table with small buckets), a latency each, and a behaviour (answer, never
answer, refuse at once). ``run`` plays the driver on a virtual clock."""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable

import attrs

from p2pstack.identity import PeerId
from protocols.kad._keyspace import bucket_index, closest, peer_key
from protocols.kad._lookup import Lookup
from protocols.kad._types import KadPeer

ANSWER, SILENT, REFUSE = "answer", "silent", "refuse"


def make_peers(count: int, rng: random.Random) -> list[PeerId]:
    return [PeerId.from_bytes(b"\x12\x20" + rng.randbytes(32)) for _ in range(count)]


def true_closest(target: bytes, peers: Iterable[PeerId], k: int) -> list[PeerId]:
    return closest(target, peers, k, peer_key)


@attrs.define
class FakeNetwork:
    """Every peer answers FIND_NODE with the ``k`` peers closest to the target it knows."""

    peers: list[PeerId]
    k: int = 20
    views: dict[PeerId, list[PeerId]] = attrs.field(factory=dict)
    behaviour: dict[PeerId, str] = attrs.field(factory=dict)
    latency: dict[PeerId, float] = attrs.field(factory=dict)
    requests: Counter[PeerId] = attrs.field(factory=Counter)

    def answer(self, peer: PeerId, target: bytes) -> list[KadPeer]:
        known = self.views.get(peer, self.peers)
        named = closest(target, (p for p in known if p != peer), self.k, peer_key)
        return [KadPeer(peer_id=p) for p in named]


def global_network(count: int, rng: random.Random, *, k: int = 20) -> FakeNetwork:
    peers = make_peers(count, rng)
    net = FakeNetwork(peers=peers, k=k)
    net.latency = {p: rng.uniform(0.01, 0.2) for p in peers}
    return net


def table_network(count: int, rng: random.Random, *, bucket_size: int) -> FakeNetwork:
    """Each peer knows at most ``bucket_size`` random peers per k-bucket of its table."""
    net = global_network(count, rng)
    for peer in net.peers:
        buckets: dict[int, list[PeerId]] = {}
        for other in net.peers:
            if other != peer:
                buckets.setdefault(bucket_index(peer_key(peer), peer_key(other)), []).append(other)
        view: list[PeerId] = []
        for members in buckets.values():
            view += rng.sample(members, min(bucket_size, len(members)))
        net.views[peer] = view
    return net


@attrs.define
class Trace:
    max_in_flight: int = 0
    elapsed: float = 0.0
    steps: int = 0


def run(
    lookup: Lookup,
    net: FakeNetwork,
    target: bytes,
    *,
    now: float = 0.0,
    on_event: Callable[[Lookup, float], None] | None = None,
) -> Trace:
    """Drive ``lookup`` to its end against ``net`` on a virtual clock starting at ``now``."""
    start = now
    trace = Trace()
    pending: list[tuple[float, int, PeerId, str]] = []
    seq = 0
    while not lookup.done:
        trace.steps += 1
        assert trace.steps < 100_000, "lookup does not terminate"
        for peer in lookup.next_requests(now):
            net.requests[peer.peer_id] += 1
            kind = net.behaviour.get(peer.peer_id, ANSWER)
            if kind != SILENT:
                delay = net.latency.get(peer.peer_id, 0.05) if kind == ANSWER else 0.001
                heapq.heappush(pending, (now + delay, seq, peer.peer_id, kind))
                seq += 1
        trace.max_in_flight = max(trace.max_in_flight, len(lookup.in_flight))
        deadline = lookup.next_deadline()
        if deadline is None:
            break
        if pending and pending[0][0] <= deadline:
            now, _, peer_id, kind = heapq.heappop(pending)
            if kind == ANSWER:
                lookup.on_response(peer_id, net.answer(peer_id, target), now)
            else:
                lookup.on_failure(peer_id, now)
        else:
            now = deadline
            lookup.handle_timer(now)
        if on_event is not None:
            on_event(lookup, now)
    trace.elapsed = now - start
    return trace


def percentile(values: list[int], fraction: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]
