"""The sans-IO closest-peers lookup, driven over a fake in-memory network on a virtual clock."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiaddr import Multiaddr

from fuzz._kad import fuzz_kad_lookup
from p2pstack.identity import PeerId
from protocols.kad._keyspace import distance, key_of, peer_key
from protocols.kad._lookup import MAX_ADDRS_PER_CANDIDATE, Lookup, LookupConfig, LookupResult
from protocols.kad._types import KadPeer
from tests.protocols.kad.lookup_net import (
    REFUSE,
    SILENT,
    global_network,
    make_peers,
    percentile,
    run,
    table_network,
    true_closest,
)

LOCAL = PeerId.from_bytes(b"\x12\x20" + bytes(32))
TARGET = key_of(b"target")


def kp(peer: PeerId, *addrs: str) -> KadPeer:
    return KadPeer(peer_id=peer, addrs=tuple(Multiaddr(a) for a in addrs))


def new_lookup(seeds: list[PeerId], config: LookupConfig | None = None, **kw: object) -> Lookup:
    target = kw.pop("target", TARGET)
    assert isinstance(target, bytes) and not kw
    return Lookup(
        target, [kp(s) for s in seeds], local=LOCAL, config=config or LookupConfig(), now=0.0
    )


def ids(result: LookupResult) -> list[PeerId]:
    return [p.peer_id for p in result.closest]


@pytest.mark.parametrize("seed", range(5))
def test_finds_the_true_k_closest_of_200_peers(seed: int) -> None:
    rng = random.Random(seed)
    net = global_network(200, rng)
    target = key_of(rng.randbytes(8))
    lookup = new_lookup(rng.sample(net.peers, 3), target=target)
    run(lookup, net, target)
    result = lookup.result()
    assert lookup.done and not lookup.timed_out
    assert ids(result) == true_closest(target, net.peers, 20)
    # The seeds' first answers already name the 20 closest, which are then all asked.
    assert 1 <= result.hops <= 2
    assert result.queried == result.messages and result.failed == 0
    assert 20 <= result.messages <= 23


def test_finds_the_true_k_closest_through_routing_tables_in_few_hops() -> None:
    rng = random.Random(7)
    net = table_network(200, rng, bucket_size=2)
    hops, messages = [], []
    for _ in range(20):
        target = key_of(rng.randbytes(8))
        lookup = new_lookup(rng.sample(net.peers, 3), target=target)
        run(lookup, net, target)
        result = lookup.result()
        assert ids(result) == true_closest(target, net.peers, 20)
        hops.append(result.hops)
        messages.append(result.messages)
    # log2(200) ~ 7.6; with 2 peers per bucket lookups take several rounds, never dozens.
    assert 2 <= statistics.median(hops) <= 6
    assert percentile(hops, 0.9) <= 8
    assert max(messages) < 100


@pytest.mark.parametrize("alpha", [1, 3, 10])
def test_never_more_than_alpha_requests_in_flight(alpha: int) -> None:
    rng = random.Random(alpha)
    net = table_network(200, rng, bucket_size=3)
    config = LookupConfig(alpha=alpha)
    lookup = new_lookup(rng.sample(net.peers, 12), config)
    seen: list[int] = []
    trace = run(lookup, net, TARGET, on_event=lambda lk, _: seen.append(len(lk.in_flight)))
    assert trace.max_in_flight == alpha
    assert max(seen) <= alpha
    assert ids(lookup.result()) == true_closest(TARGET, net.peers, 20)


def test_silent_peers_time_out_and_the_closest_live_peers_are_found() -> None:
    rng = random.Random(11)
    net = global_network(200, rng)
    dead = set(rng.sample(net.peers, 60))
    net.behaviour = dict.fromkeys(dead, SILENT)
    live = [p for p in net.peers if p not in dead]
    # Answers name the 25 closest: the 20 closest live peers are then all named by someone.
    net.k = 25
    config = LookupConfig(request_timeout=2.0, query_timeout=60.0)
    lookup = new_lookup(rng.sample(live, 3), config)
    trace = run(lookup, net, TARGET)
    result = lookup.result()
    assert not lookup.timed_out
    assert ids(result) == true_closest(TARGET, live, 20)
    assert result.failed == len(dead & set(net.requests)) > 0
    assert result.messages == result.queried + result.failed
    # Failures cost a request timeout each, but alpha of them overlap.
    assert trace.elapsed < 2.0 * result.failed


def test_refusing_peers_fail_at_once_and_are_never_asked_again() -> None:
    rng = random.Random(12)
    net = global_network(200, rng)
    refusing = set(true_closest(TARGET, net.peers, 10)[::2])
    net.k = 25
    net.behaviour = dict.fromkeys(refusing, REFUSE)
    lookup = new_lookup(rng.sample(net.peers, 3))
    run(lookup, net, TARGET)
    result = lookup.result()
    # Every answer names the refusing peers again; each was still asked exactly once.
    assert all(net.requests[p] == 1 for p in refusing)
    assert max(net.requests.values()) == 1
    assert result.failed == len(refusing)
    live = [p for p in net.peers if p not in refusing]
    assert ids(result) == true_closest(TARGET, live, 20)


def test_query_deadline_ends_the_lookup_with_what_it_has() -> None:
    rng = random.Random(13)
    net = global_network(200, rng)
    net.latency = dict.fromkeys(net.peers, 4.0)
    config = LookupConfig(request_timeout=10.0, query_timeout=9.0)
    lookup = new_lookup(rng.sample(net.peers, 3), config)
    trace = run(lookup, net, TARGET)
    assert lookup.done and lookup.timed_out
    assert trace.elapsed == 9.0
    assert lookup.next_deadline() is None
    result = lookup.result()
    assert result.timed_out
    # Two rounds of 4 s fit: the seeds and the first alpha of the peers they named.
    assert result.queried == 6 and result.messages == 9
    assert lookup.next_requests(10.0) == []


def test_deadline_is_applied_by_any_call_that_carries_the_time() -> None:
    peers = make_peers(5, random.Random(1))
    lookup = new_lookup(peers, LookupConfig(query_timeout=5.0, request_timeout=1.0))
    assert len(lookup.next_requests(0.0)) == 3
    assert lookup.next_deadline() == 1.0
    lookup.on_response(peers[0], [], 0.5)
    lookup.handle_timer(1.0)  # the two others time out
    assert lookup.result().failed == 2
    assert len(lookup.next_requests(1.0)) == 2
    assert lookup.next_deadline() == 2.0
    assert lookup.next_requests(5.0) == []
    assert lookup.timed_out


def test_stop_ends_the_lookup_and_late_answers_are_ignored() -> None:
    peers = make_peers(6, random.Random(2))
    lookup = new_lookup(peers)
    sent = lookup.next_requests(0.0)
    lookup.on_response(sent[0].peer_id, [], 0.1)
    lookup.stop()
    assert lookup.done and not lookup.timed_out
    assert lookup.next_requests(0.2) == [] and lookup.next_deadline() is None
    lookup.on_response(sent[1].peer_id, [kp(p) for p in make_peers(3, random.Random(3))], 0.3)
    lookup.on_failure(sent[2].peer_id, 0.3)
    result = lookup.result()
    assert result.queried == 1 and result.failed == 0 and result.messages == 3
    assert ids(result) == [sent[0].peer_id]
    assert set(lookup.in_flight) == {sent[1].peer_id, sent[2].peer_id}


def test_answers_from_peers_not_asked_or_after_a_timeout_are_ignored() -> None:
    peers = make_peers(4, random.Random(4))
    lookup = new_lookup(peers[:1], LookupConfig(request_timeout=1.0))
    (asked,) = lookup.next_requests(0.0)
    lookup.on_response(peers[1], [kp(peers[2])], 0.1)  # never asked
    lookup.handle_timer(1.0)
    lookup.on_response(asked.peer_id, [kp(peers[3])], 1.1)  # too late
    assert lookup.done
    result = lookup.result()
    assert result.closest == [] and result.failed == 1 and result.queried == 0
    assert result.hops == 0


def test_local_peer_and_duplicates_are_ignored() -> None:
    peers = make_peers(3, random.Random(5))
    lookup = new_lookup([LOCAL, peers[0], peers[0], peers[1]])
    first = lookup.next_requests(0.0)
    assert [p.peer_id for p in first] == sorted(
        peers[:2], key=lambda p: distance(peer_key(p), TARGET)
    )
    lookup.on_response(peers[0], [kp(LOCAL), kp(peers[1]), kp(peers[2]), kp(peers[2])], 0.1)
    assert [p.peer_id for p in lookup.next_requests(0.1)] == [peers[2]]
    lookup.on_response(peers[1], [kp(LOCAL), kp(peers[0])], 0.2)
    lookup.on_response(peers[2], [kp(LOCAL)], 0.3)
    assert lookup.done
    result = lookup.result()
    assert sorted(ids(result)) == sorted(peers) and result.messages == 3


def test_no_seeds_is_done_at_once() -> None:
    lookup = new_lookup([LOCAL])
    assert lookup.done and not lookup.timed_out
    assert lookup.result() == LookupResult(closest=[], hops=0, queried=0, failed=0, messages=0)


def test_hops_count_rounds_to_the_closest_peer() -> None:
    # A chain: the seed names b, which names c (the closest); a shortcut names c at hop 2 later.
    a, b, c, d = sorted(
        make_peers(4, random.Random(6)), key=lambda p: -distance(peer_key(p), TARGET)
    )
    lookup = new_lookup([a], LookupConfig(alpha=1))
    assert lookup.next_requests(0.0) == [kp(a)]
    lookup.on_response(a, [kp(b)], 0.1)
    assert lookup.next_requests(0.1) == [kp(b)]
    lookup.on_response(b, [kp(c)], 0.2)
    assert lookup.next_requests(0.2) == [kp(c)]
    lookup.on_response(c, [kp(d)], 0.3)
    assert lookup.result().hops == 3
    (asked,) = lookup.next_requests(0.3)
    assert asked.peer_id == d
    lookup.on_response(d, [], 0.4)
    assert lookup.done and lookup.result().hops == 4
    assert ids(lookup.result()) == [d, c, b, a]

    # The same peer named by a hop-1 peer before it answers is at hop 2.
    lookup = new_lookup([a, b], LookupConfig(alpha=1))
    (first,) = lookup.next_requests(0.0)
    assert first.peer_id == b
    lookup.on_response(b, [kp(c)], 0.1)  # c at hop 2
    assert lookup.next_requests(0.1) == [kp(c)]
    lookup.on_response(c, [kp(d)], 0.2)  # d at hop 3
    (asked,) = lookup.next_requests(0.2)
    assert asked.peer_id == d
    lookup.on_response(d, [], 0.3)
    assert lookup.result().hops == 3


def test_every_peer_of_an_answer_is_kept_even_beyond_k() -> None:
    rng = random.Random(8)
    named = make_peers(50, rng)
    seed = make_peers(1, rng)[0]
    lookup = new_lookup([seed], LookupConfig(k=5, alpha=5))
    lookup.next_requests(0.0)
    lookup.on_response(seed, [kp(p) for p in named], 0.1)
    ranked = true_closest(TARGET, named, 50)
    assert {p.peer_id for p in lookup.next_requests(0.1)} == set(ranked[:5])
    for peer in ranked[:3]:
        lookup.on_failure(peer, 0.2)
    # The 6th to 8th closest of that answer move up when three of the first five fail.
    assert {p.peer_id for p in lookup.next_requests(0.2)} == set(ranked[5:8])


def test_addresses_from_several_answers_are_merged_and_bounded() -> None:
    peers = make_peers(3, random.Random(9))
    lookup = new_lookup(peers[:2], LookupConfig(alpha=2))
    lookup.next_requests(0.0)
    lookup.on_response(peers[0], [kp(peers[2], "/ip4/1.1.1.1/tcp/1")], 0.1)
    many = [f"/ip4/2.2.2.2/tcp/{port}" for port in range(1, 40)]
    lookup.on_response(peers[1], [kp(peers[2], "/ip4/1.1.1.1/tcp/1", *many)], 0.2)
    (asked,) = lookup.next_requests(0.2)
    assert asked.addrs[0] == Multiaddr("/ip4/1.1.1.1/tcp/1")
    assert len(asked.addrs) == MAX_ADDRS_PER_CANDIDATE


def test_same_inputs_same_lookup() -> None:
    def once() -> tuple[LookupResult, dict[PeerId, int]]:
        rng = random.Random(10)
        net = table_network(200, rng, bucket_size=3)
        lookup = new_lookup(rng.sample(net.peers, 3))
        run(lookup, net, TARGET)
        return lookup.result(), dict(net.requests)

    assert once() == once()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        LookupConfig(k=0)
    with pytest.raises(ValueError):
        LookupConfig(alpha=0)
    with pytest.raises(ValueError):
        LookupConfig(request_timeout=0.0)
    with pytest.raises(ValueError):
        Lookup(b"short", [], local=LOCAL, config=LookupConfig(), now=0.0)


@given(st.binary(max_size=300))
def test_any_sequence_of_events_keeps_the_invariants(data: bytes) -> None:
    # The fuzz target's harness: alpha bound, nobody asked twice nor the local peer, counts add
    # up, ranked result, and the query deadline always ends the lookup.
    fuzz_kad_lookup(data)
