"""js-libp2p drops a returned peer that is not closer to the target than the peer that named it.
These networks show what that shortcut misses and that our lookup, which keeps every returned
peer, finds it."""

from __future__ import annotations

import random

import attrs

from p2pstack.identity import PeerId
from protocols.kad._keyspace import distance, key_of, peer_key
from protocols.kad._lookup import Lookup, LookupConfig
from protocols.kad._types import KadPeer
from tests.protocols.kad.lookup_net import FakeNetwork, make_peers, run, true_closest

LOCAL = PeerId.from_bytes(b"\x12\x20" + bytes(32))


@attrs.define
class ShortcutNetwork(FakeNetwork):
    """Answers as ``FakeNetwork`` does, then applies js's filter on the asking side."""

    def answer(self, peer: PeerId, target: bytes) -> list[KadPeer]:
        own = distance(peer_key(peer), target)
        named = super().answer(peer, target)
        return [p for p in named if distance(peer_key(p.peer_id), target) < own]


def lookup_found(net: FakeNetwork, target: bytes, seeds: list[PeerId]) -> list[PeerId]:
    lookup = Lookup(
        target, [KadPeer(peer_id=s) for s in seeds], local=LOCAL, config=LookupConfig(), now=0.0
    )
    run(lookup, net, target)
    return [p.peer_id for p in lookup.result().closest]


def test_a_detour_through_a_farther_peer_reaches_the_closest() -> None:
    target = key_of(b"detour")
    ranked = true_closest(target, make_peers(12, random.Random(1)), 12)
    seed, far = ranked[5], ranked[8]
    # The seed knows only peers farther than itself; one of them knows the closest five.
    views = {seed: [far, ranked[9]], far: ranked[:5]}
    ours = lookup_found(FakeNetwork(peers=ranked, views=views), target, [seed])
    shortcut = lookup_found(ShortcutNetwork(peers=ranked, views=views), target, [seed])
    assert shortcut == [seed]
    assert ours[:5] == ranked[:5]
    assert set(ours) == set(ranked)


def test_sparse_small_network_shortcut_misses_what_we_find() -> None:
    rng = random.Random(2)
    peers = make_peers(40, rng)
    views = {p: rng.sample([q for q in peers if q != p], 3) for p in peers}
    ours_total = shortcut_total = 0
    for _ in range(30):
        target = key_of(rng.randbytes(8))
        truth = set(true_closest(target, peers, 20))
        seeds = rng.sample(peers, 2)
        ours = set(lookup_found(FakeNetwork(peers=peers, views=views), target, seeds))
        shortcut = set(lookup_found(ShortcutNetwork(peers=peers, views=views), target, seeds))
        assert len(ours & truth) >= len(shortcut & truth)
        ours_total += len(ours & truth)
        shortcut_total += len(shortcut & truth)
    assert ours_total > 2 * shortcut_total
