"""Cores adopting one shared converged view: each behaves as if it had preloaded the view, and
what one core changes never shows in another core or in the view."""

import random

import pytest

from protocols.membership import InvalidClaimSignature, MemberState, Metadata, SharedView
from protocols.membership._shared import MemberOverlay, PeerSet, PeerSetOverlay
from protocols.membership._wire import Alive, Dead, Suspect
from tests.protocols.membership._net import make_core, peer, verify


def _cores(n: int) -> tuple[list, SharedView]:  # type: ignore[type-arg]  # list of SwimCore
    cores = [make_core(i) for i in range(n)]
    view = SharedView(0.0, [c.self_claim() for c in cores], verify)
    for c in cores:
        c.adopt(view)
    return cores, view


def test_a_forged_claim_is_refused_when_the_view_is_built() -> None:
    claims = [make_core(i).self_claim() for i in range(3)]
    with pytest.raises(InvalidClaimSignature):
        SharedView(0.0, [*claims, Alive(peer(9), 0, (), Metadata(), b"bad")], verify)


def test_adopting_cores_see_everyone_but_themselves() -> None:
    cores, _ = _cores(6)
    preloaded = make_core(0)
    preloaded.preload(0.0, [c.self_claim() for c in cores])
    a = cores[0]
    assert {m.peer_id for m in a.members()} == {m.peer_id for m in preloaded.members()}
    assert a.live_count() == preloaded.live_count() == 6
    assert a.member(a.local) is None
    assert not a.events() and a.statistics().broadcasts_queued == 0
    assert set(a.upcoming_probe_targets(5)) == set(c.local for c in cores[1:])


def test_one_cores_changes_stay_its_own() -> None:
    cores, view = _cores(5)
    a, b, c = cores[0], cores[1], cores[2]
    victim = c.local
    a.apply(1.0, Dead(victim, 0, b.local))
    dead = a.member(victim)
    assert dead is not None and dead.state is MemberState.DEAD
    assert a.live_count() == 4
    other = b.member(victim)
    assert other is not None and other.state is MemberState.ALIVE and b.live_count() == 5
    assert view.members[victim].state is MemberState.ALIVE
    # The victim refutes; its new claim reaches a, which takes it back.
    c.apply(1.0, Suspect(victim, 0, a.local))
    assert c.incarnation == 1
    a.apply(2.0, c.self_claim())
    back = a.member(victim)
    assert back is not None and back.state is MemberState.ALIVE and back.incarnation == 1
    assert view.members[victim].incarnation == 0
    assert b.member(victim) == view.members[victim]


def test_member_overlay_is_a_mapping_over_the_view() -> None:
    cores, view = _cores(4)
    ids = [c.local for c in cores]
    m = MemberOverlay(view, ids[0])
    assert len(m) == 3 and ids[0] not in m and ids[1] in m
    assert set(m) == set(ids[1:])
    record = m[ids[1]]
    assert record is not view.members[ids[1]] and record == view.members[ids[1]]
    assert m[ids[1]] is record  # copied once
    del m[ids[2]]
    assert ids[2] not in m and len(m) == 2 and m.get(ids[2]) is None
    with pytest.raises(KeyError):
        del m[ids[2]]
    m[ids[2]] = view.members[ids[3]]
    assert len(m) == 3 and ids[2] in m
    m[peer(50)] = view.members[ids[3]]
    assert len(m) == 4 and len(list(m.values())) == 4


def test_peer_set_overlay_draws_like_a_peer_set() -> None:
    cores, view = _cores(40)
    ids = [c.local for c in cores]
    overlay = PeerSetOverlay(view, ids[0])
    plain = PeerSet()
    for p in ids[1:]:
        plain.add(p)
    for p in ids[5:15]:
        overlay.discard(p)
        plain.discard(p)
    overlay.add(ids[7])
    plain.add(ids[7])
    overlay.add(peer(99))
    plain.add(peer(99))
    assert len(overlay) == len(plain) == 31
    assert all((p in overlay) == (p in plain) for p in [*ids, peer(99)])
    rng = random.Random(1)
    drawn = set()
    for _ in range(200):
        got = overlay.sample(rng, 3, lambda p: True)
        assert len(got) == 3 and len(set(got)) == 3 and all(p in plain for p in got)
        drawn.update(got)
    assert drawn == set(plain.items)
    small = overlay.sample(rng, 40, lambda p: p != ids[7])
    assert set(small) == set(plain.items) - {ids[7]}
