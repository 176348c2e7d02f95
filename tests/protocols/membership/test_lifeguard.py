import math

import pytest

from protocols.membership import SwimConfig, retransmit_limit, suspicion_timeout
from protocols.membership._lifeguard import Awareness, BroadcastQueue, Suspicion
from protocols.membership._wire import Suspect, broadcast_size
from tests.protocols.membership._net import peer


def test_memberlist_lan_defaults() -> None:
    c = SwimConfig()
    assert (c.probe_interval, c.probe_timeout, c.indirect_checks) == (1.0, 0.5, 3)
    assert (c.suspicion_mult, c.suspicion_max_timeout_mult, c.retransmit_mult) == (4, 6, 4)
    assert (c.awareness_max_multiplier, c.gossip_interval, c.gossip_nodes) == (8, 0.2, 3)
    assert c.push_pull_interval == 30.0


@pytest.mark.parametrize(("n", "expected"), [(1, 4.0), (10, 4.0), (100, 8.0), (1000, 12.0)])
def test_suspicion_timeout(n: int, expected: float) -> None:
    assert suspicion_timeout(4, n, 1.0) == pytest.approx(expected)


@pytest.mark.parametrize(("n", "expected"), [(1, 4), (9, 4), (10, 8), (999, 12), (1000, 16)])
def test_retransmit_limit(n: int, expected: int) -> None:
    assert retransmit_limit(4, n) == expected


def test_suspicion_shrinks_with_confirmations() -> None:
    s = Suspicion.new(10.0, peer(0), k=2, min_t=4.0, max_t=24.0)
    assert s.deadline == 34.0
    assert s.confirm(peer(0)) is False  # the first suspecter is not a confirmation
    assert s.confirm(peer(1)) is True
    assert s.confirm(peer(1)) is False
    assert s.timeout() == pytest.approx(24 - math.log(2) / math.log(3) * 20, abs=1e-3)
    assert s.confirm(peer(2)) is True
    assert s.timeout() == 4.0
    assert s.confirm(peer(3)) is False  # k reached


def test_suspicion_without_expected_confirmations_is_minimal() -> None:
    s = Suspicion.new(0.0, peer(0), k=0, min_t=4.0, max_t=24.0)
    assert s.deadline == 4.0
    assert s.confirm(peer(1)) is False


def test_awareness_bounds_and_scaling() -> None:
    a = Awareness(8)
    a.apply_delta(-3)
    assert a.scale(0.5) == 0.5
    a.apply_delta(100)
    assert a.score == 7
    assert a.scale(1.0) == 8.0


def test_broadcast_queue_order_limit_and_replacement() -> None:
    q = BroadcastQueue(max_entries=3)
    for i in range(3):
        q.push(Suspect(peer(i), 0, peer(9)))
    q.push(Suspect(peer(1), 5, peer(9)))  # replaces the older claim about peer 1
    assert len(q) == 3
    first = [b for b, _ in q.take(4096, limit=2)]
    assert [b.peer_id for b in first] == [peer(1), peer(2), peer(0)]  # newest first
    assert first[0] == Suspect(peer(1), 5, peer(9))
    assert q.take(4096, limit=2) and len(q) == 0  # dropped after two transmissions
    q.push(Suspect(peer(0), 0, peer(9)))
    q.push(Suspect(peer(1), 0, peer(9)))
    one = q.take(broadcast_size(Suspect(peer(0), 0, peer(9))) + 10, limit=9)
    assert len(one) == 1  # budget bounds the piggyback
    for i in range(5):
        q.push(Suspect(peer(10 + i), 0, peer(9)))
    assert len(q) == 3  # bounded


def test_broadcast_queue_skip() -> None:
    q = BroadcastQueue(max_entries=8)
    q.push(Suspect(peer(1), 0, peer(9)))
    assert q.take(4096, limit=1, skip=lambda b: b.peer_id == peer(1)) == []
    assert len(q) == 1


def test_peer_set_draws_distinct_accepted_peers() -> None:
    import random

    from protocols.membership._shared import PeerSet

    s = PeerSet()
    for i in range(50):
        s.add(peer(i))
    s.add(peer(0))
    for i in range(0, 50, 2):
        s.discard(peer(i))
    s.discard(peer(0))
    assert len(s) == 25 and peer(1) in s and peer(2) not in s
    rng = random.Random(3)
    drawn = s.sample(rng, 3, lambda p: p != peer(1))
    assert len(drawn) == 3 and len(set(drawn)) == 3
    assert all(p in s and p != peer(1) for p in drawn)
    assert s.sample(rng, 3, lambda p: p == peer(1)) in ([peer(1)], [])
    small = PeerSet()
    small.add(peer(1))
    assert small.sample(rng, 3, lambda p: True) == [peer(1)]
