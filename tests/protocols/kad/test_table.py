"""The Kademlia routing table: bucket placement, LRS eviction behind liveness checks, refresh keys,
closest() against brute force."""

from __future__ import annotations

import hashlib
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pstack.identity import PeerId
from protocols.kad._keyspace import common_prefix_length, distance, key_of, peer_key
from protocols.kad._table import MAX_REFRESH_CPL, AddResult, RoutingTable


def make_peer(seed: int | bytes) -> PeerId:
    """A sha2-256 peer ID derived from ``seed`` (no key generation needed)."""
    data = seed if isinstance(seed, bytes) else seed.to_bytes(8, "big")
    return PeerId(b"\x12\x20" + hashlib.sha256(data).digest())


LOCAL = make_peer(b"local")


def peers_in_bucket(local: PeerId, index: int, count: int, start: int = 0) -> list[PeerId]:
    """``count`` distinct peers whose key shares exactly ``index`` leading bits with ``local``."""
    found: list[PeerId] = []
    seed = start
    while len(found) < count:
        peer = make_peer(seed)
        seed += 1
        if common_prefix_length(peer_key(peer), peer_key(local)) == index:
            found.append(peer)
    return found


def new_table(k: int = 20, now: float = 0.0, interval: float = 600.0) -> RoutingTable:
    return RoutingTable(LOCAL, k=k, refresh_interval=interval, now=now, rng=random.Random(7))


def test_rejects_local_and_bad_arguments() -> None:
    table = new_table()
    assert table.add(LOCAL, 0.0) is AddResult.REJECTED
    assert len(table) == 0
    assert LOCAL not in table
    with pytest.raises(ValueError, match="k must"):
        RoutingTable(LOCAL, k=0, now=0.0, rng=random.Random())
    with pytest.raises(ValueError, match="refresh_interval"):
        RoutingTable(LOCAL, refresh_interval=0, now=0.0, rng=random.Random())
    with pytest.raises(ValueError, match="local peer"):
        table.bucket_of(LOCAL)


def test_bucket_placement_by_common_prefix_length() -> None:
    table = new_table(k=200)
    peers = [make_peer(i) for i in range(200)]
    for peer in peers:
        assert table.add(peer, 1.0) is AddResult.ADDED
    assert len(table) == 200
    buckets = table.buckets()
    local = peer_key(LOCAL)
    for index, bucket in enumerate(buckets):
        for peer in bucket:
            assert common_prefix_length(peer_key(peer), local) == index
            assert table.bucket_of(peer) == index
    # Half of random peers fall in bucket 0, a quarter in bucket 1 (within broad margins).
    assert 70 <= len(buckets[0]) <= 130
    assert 25 <= len(buckets[1]) <= 75
    assert buckets[-1], "buckets() stops at the deepest non-empty bucket"
    assert sorted(table.peers()) == sorted(peers)
    assert all(peer in table for peer in peers)
    assert "not a peer" not in table


def test_add_again_moves_to_tail() -> None:
    table = new_table()
    first, second, third = peers_in_bucket(LOCAL, 0, 3)
    for peer in (first, second, third):
        table.add(peer, 0.0)
    assert table.buckets()[0] == [first, second, third]
    assert table.add(first, 1.0) is AddResult.UPDATED
    assert table.buckets()[0] == [second, third, first]
    assert len(table) == 3


def full_bucket(k: int = 3) -> tuple[RoutingTable, list[PeerId], list[PeerId]]:
    table = new_table(k=k)
    members = peers_in_bucket(LOCAL, 0, k + 3)
    for peer in members[:k]:
        assert table.add(peer, 0.0) is AddResult.ADDED
    return table, members[:k], members[k:]


def test_full_bucket_queues_one_check_of_the_lrs_peer() -> None:
    table, members, extra = full_bucket()
    assert table.checks_due() == []
    assert table.add(extra[0], 1.0) is AddResult.PENDING
    assert extra[0] not in table
    assert table.checks_due() == [members[0]]
    assert table.checks_due() == [], "each check is handed out once"
    # A second newcomer replaces the first as the candidate; still one check.
    assert table.add(extra[1], 2.0) is AddResult.PENDING
    assert table.checks_due() == []
    assert table.pending_checks() == {members[0]: extra[1]}


def test_check_alive_keeps_lrs_and_drops_candidate() -> None:
    table, members, extra = full_bucket()
    table.add(extra[0], 1.0)
    assert table.checks_due() == [members[0]]
    table.on_check(members[0], True, 2.0)
    assert table.buckets()[0] == [members[1], members[2], members[0]]
    assert extra[0] not in table
    assert table.pending_checks() == {}
    # The next newcomer checks the new LRS peer.
    assert table.add(extra[1], 3.0) is AddResult.PENDING
    assert table.checks_due() == [members[1]]


def test_check_dead_evicts_lrs_and_admits_candidate() -> None:
    table, members, extra = full_bucket()
    table.add(extra[0], 1.0)
    table.checks_due()
    table.on_check(members[0], False, 2.0)
    assert members[0] not in table
    assert table.buckets()[0] == [members[1], members[2], extra[0]]
    assert table.pending_checks() == {}
    assert len(table) == 3


def test_lrs_seen_during_check_counts_as_alive() -> None:
    table, members, extra = full_bucket()
    table.add(extra[0], 1.0)
    assert table.add(members[0], 1.5) is AddResult.UPDATED
    assert table.pending_checks() == {}
    assert table.checks_due() == []
    table.on_check(members[0], False, 2.0)  # stale report: ignored
    assert members[0] in table
    assert extra[0] not in table


def test_remove_during_check() -> None:
    table, members, extra = full_bucket()
    table.add(extra[0], 1.0)
    assert table.remove(members[0]) is True
    assert extra[0] in table, "the candidate takes the freed place"
    assert table.remove(members[0]) is False
    table.on_check(members[0], False, 2.0)  # no longer pending: ignored
    assert len(table) == 3


def test_removing_another_member_admits_the_candidate() -> None:
    table, members, extra = full_bucket()
    table.add(extra[0], 1.0)
    assert table.checks_due() == [members[0]]
    assert table.remove(members[1]) is True
    assert table.buckets()[0] == [members[0], members[2], extra[0]]
    assert table.pending_checks() == {}
    table.on_check(members[0], False, 2.0)  # the check is void: the LRS peer stays
    assert members[0] in table


def test_remove_candidate_cancels_check() -> None:
    table, members, extra = full_bucket()
    table.add(extra[0], 1.0)
    assert table.remove(extra[0]) is False
    assert table.pending_checks() == {}
    table.on_check(members[0], False, 2.0)
    assert members[0] in table


def test_checks_are_per_bucket() -> None:
    table = new_table(k=2)
    zero = peers_in_bucket(LOCAL, 0, 3)
    one = peers_in_bucket(LOCAL, 1, 3)
    for peer in zero[:2] + one[:2]:
        table.add(peer, 0.0)
    assert table.add(zero[2], 1.0) is AddResult.PENDING
    assert table.add(one[2], 1.0) is AddResult.PENDING
    assert sorted(table.checks_due()) == sorted([zero[0], one[0]])
    table.on_check(one[0], False, 2.0)
    assert table.buckets()[1] == [one[1], one[2]]
    assert table.buckets()[0] == zero[:2]


def test_on_check_of_unknown_peer_is_ignored() -> None:
    table, members, _ = full_bucket()
    table.on_check(make_peer(b"stranger"), False, 1.0)
    table.on_check(members[1], False, 1.0)  # in the table but not under check
    assert len(table) == 3


def brute_force(peers: list[PeerId], point: bytes, count: int) -> list[PeerId]:
    return sorted(peers, key=lambda peer: distance(peer_key(peer), point))[:count]


@settings(max_examples=60, deadline=None)
@given(
    seeds=st.lists(st.integers(0, 10_000), max_size=120, unique=True),
    target=st.binary(min_size=1, max_size=40),
    count=st.integers(0, 30),
    k=st.integers(1, 20),
)
def test_closest_matches_brute_force(seeds: list[int], target: bytes, count: int, k: int) -> None:
    table = new_table(k=k)
    for seed in seeds:
        table.add(make_peer(seed), 0.0)
    point = key_of(target)
    assert table.closest(point, count) == brute_force(table.peers(), point, count)


@settings(max_examples=30, deadline=None)
@given(seeds=st.lists(st.integers(0, 10_000), min_size=1, max_size=80, unique=True))
def test_closest_to_members_and_local(seeds: list[int]) -> None:
    table = new_table()
    for seed in seeds:
        table.add(make_peer(seed), 0.0)
    peers = table.peers()
    for point in [peer_key(LOCAL), peer_key(peers[0]), peer_key(peers[-1])]:
        assert table.closest(point, 10) == brute_force(peers, point, 10)
    assert table.closest(peer_key(peers[0]), 1) == [peers[0]]


def test_refresh_deadlines_and_keys_land_in_stale_buckets() -> None:
    table = new_table(now=100.0, interval=50.0)
    assert table.next_deadline() is None, "nothing to refresh in an empty table"
    for index in (0, 1, 2, 4):
        for peer in peers_in_bucket(LOCAL, index, 2):
            table.add(peer, 100.0)
    assert table.next_deadline() == 150.0
    table.handle_timer(149.0)
    assert table.refresh_due() == []
    table.handle_timer(150.0)
    keys = table.refresh_due()
    assert table.refresh_due() == [], "each key is returned once"
    local = peer_key(LOCAL)
    # Buckets 0..4 are refreshed (go refreshes every bucket up to the deepest non-empty one).
    assert sorted(common_prefix_length(key_of(key), local) for key in keys) == [0, 1, 2, 3, 4]
    for key in keys:
        assert len(key) == 34 and key[:2] == b"\x12\x20"
        PeerId.from_bytes(key)  # shaped like a peer ID
    assert table.next_deadline() == 200.0
    table.handle_timer(170.0)
    assert table.refresh_due() == []


def test_mark_refreshed_postpones_one_bucket() -> None:
    table = new_table(now=0.0, interval=10.0)
    for index in (0, 1):
        table.add(peers_in_bucket(LOCAL, index, 1)[0], 0.0)
    table.mark_refreshed(peer_key(peers_in_bucket(LOCAL, 1, 1, start=99)[0]), 5.0)
    assert table.next_deadline() == 10.0
    table.handle_timer(10.0)
    keys = table.refresh_due()
    assert [common_prefix_length(key_of(key), peer_key(LOCAL)) for key in keys] == [0]
    assert table.next_deadline() == 15.0
    table.handle_timer(15.0)
    keys = table.refresh_due()
    assert [common_prefix_length(key_of(key), peer_key(LOCAL)) for key in keys] == [1]
    # A lookup of our own key is deeper than any refreshed bucket: refreshes nothing.
    table.mark_refreshed(peer_key(LOCAL), 100.0)
    assert table.next_deadline() == 20.0


def deep_pair() -> tuple[PeerId, PeerId]:
    """Two peers sharing more than MAX_REFRESH_CPL leading key bits (birthday search)."""
    peers = sorted((make_peer(seed) for seed in range(3000)), key=peer_key)
    for first, second in itertools.pairwise(peers):
        if common_prefix_length(peer_key(first), peer_key(second)) > MAX_REFRESH_CPL:
            return first, second
    raise AssertionError("no deep pair among 3000 peers")


def test_refresh_depth_is_capped() -> None:
    local, deep = deep_pair()
    table = RoutingTable(local, k=20, refresh_interval=1.0, now=0.0, rng=random.Random(3))
    table.add(deep, 0.0)
    index = table.bucket_of(deep)
    assert index > MAX_REFRESH_CPL
    assert table.buckets()[index] == [deep]
    table.handle_timer(1.0)
    keys = table.refresh_due()
    cpls = [common_prefix_length(key_of(key), peer_key(local)) for key in keys]
    assert cpls == list(range(MAX_REFRESH_CPL + 1))
    # A lookup deeper than the cap restarts no bucket's period.
    table.mark_refreshed(peer_key(deep), 1.5)
    assert table.next_deadline() == 2.0


def test_refresh_is_deterministic_for_a_seed() -> None:
    def keys() -> list[bytes]:
        table = new_table(now=0.0, interval=1.0)
        for index in range(4):
            table.add(peers_in_bucket(LOCAL, index, 1)[0], 0.0)
        table.handle_timer(1.0)
        return table.refresh_due()

    assert keys() == keys()


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["add", "remove", "alive", "dead"]), st.integers(0, 40)),
        max_size=150,
    )
)
def test_invariants_under_random_operations(ops: list[tuple[str, int]]) -> None:
    table = new_table(k=3)
    pool = peers_in_bucket(LOCAL, 0, 25) + peers_in_bucket(LOCAL, 1, 16)
    for step, (op, which) in enumerate(ops):
        peer = pool[which]
        if op == "add":
            before = peer in table
            result = table.add(peer, float(step))
            assert (result is AddResult.UPDATED) == before
            if result is AddResult.PENDING:
                assert table.pending_checks()[table.buckets()[table.bucket_of(peer)][0]] == peer
        elif op == "remove":
            was = peer in table
            assert table.remove(peer) == was
            assert peer not in table
        else:
            for checked in table.checks_due():
                table.on_check(checked, op == "alive", float(step))
        buckets = table.buckets()
        assert all(len(bucket) <= 3 for bucket in buckets)
        assert len(table) == len(set(table.peers())) == sum(map(len, buckets))
        for checked, candidate in table.pending_checks().items():
            assert checked in table
            bucket = buckets[table.bucket_of(checked)]
            assert bucket[0] == checked and len(bucket) == 3
            assert candidate not in table


def test_closest_on_a_large_table_matches_brute_force() -> None:
    table = new_table(k=1000)
    for seed in range(1000):
        table.add(make_peer(seed), 0.0)
    peers = table.peers()
    assert len(table.buckets()) > 8
    points = [key_of(bytes([byte])) for byte in range(32)] + [peer_key(p) for p in peers[::40]]
    for point in [*points, peer_key(LOCAL)]:
        for count in (1, 7, 41):
            assert table.closest(point, count) == brute_force(peers, point, count)
