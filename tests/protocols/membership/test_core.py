import random

import pytest

from protocols.membership import (
    MAX_INCARNATION_JUMP,
    IncarnationTooFarError,
    InvalidClaimSignature,
    MemberAlive,
    MemberJoined,
    MemberState,
    MemberSuspected,
    Metadata,
    MetadataChanged,
    MetadataTooLarge,
    SwimConfig,
    SwimCore,
    SwimProtocolError,
    WireLimits,
    decode_message,
    encode_message,
)
from protocols.membership._wire import (
    Ack,
    Alive,
    Dead,
    Leave,
    Message,
    Nack,
    Ping,
    PingReq,
    PushPull,
    Suspect,
    alive_payload,
)
from tests.protocols.membership._net import make_core, peer, signer

P0, P1, P2, EVIL = peer(0), peer(1), peer(2), peer(66)


def _decode(data: bytes) -> Message:
    return decode_message(data, WireLimits(max_size=1 << 24))


def _pump(*cores: SwimCore, now: float = 0.0) -> int:
    """Deliver messages between the given cores until quiet; returns how many."""
    by_id = {c.local: c for c in cores}
    count = 0
    for _ in range(100):
        moved = False
        for c in cores:
            for dst, data in c.outgoing():
                if dst in by_id:
                    by_id[dst].handle_message(now, c.local, data)
                    count += 1
                    moved = True
        if not moved:
            return count
    raise AssertionError("messages kept flowing")


def _joined(n: int, config: SwimConfig | None = None) -> list[SwimCore]:
    cores = [make_core(i, config=config) for i in range(n)]
    for c in cores[1:]:
        c.join(0.0, P0)
        _pump(*cores)
    for c in cores:
        c.handle_timer(30.0)  # push-pull spreads the full view
        _pump(*cores, now=30.0)
    return cores


def _signed_alive(i: int, inc: int, meta: Metadata | None = None) -> Alive:
    meta = meta or Metadata()
    p = peer(i)
    addrs = (b"\x04\x7f\x00\x00\x01\x06\x10\x00",)
    return Alive(p, inc, addrs, meta, signer(p)(alive_payload(p, inc, addrs, meta)))


def test_join_by_push_pull() -> None:
    a, b = make_core(0), make_core(1)
    b.join(0.0, P0)
    [(dst, data)] = b.outgoing()
    assert dst == P0
    request = _decode(data).primary
    assert isinstance(request, PushPull) and request.join and not request.reply
    a.handle_message(0.0, P1, data)
    assert [type(e) for e in a.events()] == [MemberJoined]
    [(dst, reply)] = a.outgoing()
    assert dst == P1 and isinstance(_decode(reply).primary, PushPull)
    b.handle_message(0.0, P0, reply)
    assert b.member(P0) is not None and b.member(P0).state is MemberState.ALIVE  # type: ignore[union-attr]  # a None there fails the test as well
    assert b.events() == [MemberJoined(P0, 0)]


def test_ping_ack_round() -> None:
    a, b = _joined(2)
    a.handle_timer(31.0)  # due probe
    out = a.outgoing()
    pings = [(d, _decode(m)) for d, m in out if isinstance(_decode(m).primary, Ping)]
    assert pings and pings[0][0] == P1
    ping = pings[0][1].primary
    assert isinstance(ping, Ping) and ping.target == P1
    b.handle_message(31.0, P0, encode_message(Message(ping), max_size=1024))
    [(dst, data)] = b.outgoing()
    assert dst == P0 and _decode(data).primary == Ack(ping.seq)
    a.handle_message(31.01, P1, data)
    a.handle_timer(32.5)  # the probe ends acked; the next one starts
    assert a.member(P1).state is MemberState.ALIVE  # type: ignore[union-attr]  # a None there fails the test as well
    assert a.statistics().awareness == 0
    a.outgoing()
    a.handle_timer(35.0)  # that one is never answered: no helper, so awareness rises by one
    assert a.member(P1).state is MemberState.SUSPECT  # type: ignore[union-attr]  # a None there fails the test as well
    assert a.statistics().awareness == 1


def test_failed_probe_goes_indirect_then_suspects_and_buddy_pings() -> None:
    a, _, _ = _joined(3)
    now = 40.0
    a.handle_timer(now)
    a.outgoing()
    target = a._probe.target  # type: ignore[union-attr]  # a None there fails the test as well
    helper = P2 if target == P1 else P1
    now += 0.6
    a.handle_timer(now)  # probe timeout: ping-req through the other member
    reqs = [(d, _decode(m).primary) for d, m in a.outgoing()]
    assert (helper, PingReq(a._probe.seq, target)) in reqs  # type: ignore[union-attr]  # a None there fails the test as well
    a.handle_message(now, helper, encode_message(Message(Nack(a._probe.seq)), max_size=64))  # type: ignore[union-attr]  # a None there fails the test as well
    now = a.next_deadline() or 0.0
    while not any(isinstance(e, MemberSuspected) for e in a.events()):
        a.handle_timer(now)
        now += 0.1
        assert now < 60
    assert a.member(target).state is MemberState.SUSPECT  # type: ignore[union-attr]  # a None there fails the test as well
    # The next probe of the suspect carries the suspicion first (buddy system).
    for _ in range(40):
        now += 0.5
        a.handle_timer(now)
        for dst, data in a.outgoing():
            msg = _decode(data)
            if dst == target and isinstance(msg.primary, Ping):
                assert (
                    isinstance(msg.broadcasts[0], Suspect) and msg.broadcasts[0].peer_id == target
                )
                return
    raise AssertionError("the suspect was not probed")


def test_relay_sends_nack_after_timeout_and_forwards_ack() -> None:
    relay = make_core(1)
    relay.handle_message(0.0, P0, encode_message(Message(PingReq(77, P2)), max_size=128))
    [(dst, data)] = relay.outgoing()
    ping = _decode(data).primary
    assert dst == P2 and isinstance(ping, Ping)
    relay.handle_timer(0.6)
    assert [(d, _decode(m).primary) for d, m in relay.outgoing()] == [(P0, Nack(77))]
    relay.handle_message(1.0, P0, encode_message(Message(PingReq(78, P2)), max_size=128))
    [(_, data)] = relay.outgoing()
    ping = _decode(data).primary
    assert isinstance(ping, Ping)
    relay.handle_message(1.1, P2, encode_message(Message(Ack(ping.seq)), max_size=128))
    assert [(d, _decode(m).primary) for d, m in relay.outgoing()] == [(P0, Ack(78))]


def test_suspected_member_refutes() -> None:
    a = make_core(0)
    a.handle_message(0.0, P1, encode_message(Message(None, (Suspect(P0, 0, P1),)), max_size=512))
    assert a.incarnation == 1
    a.handle_message(0.0, P1, encode_message(Message(None, (Dead(P0, 1, P1),)), max_size=512))
    assert a.incarnation == 2
    a.handle_message(0.0, P1, encode_message(Message(Ping(1, P0)), max_size=512))
    [(_, data)] = a.outgoing()
    claims = _decode(data).broadcasts
    assert any(isinstance(c, Alive) and c.peer_id == P0 and c.incarnation == 2 for c in claims)


def test_a_prober_that_missed_the_refutation_gets_it_with_the_ack() -> None:
    # b refuted a suspicion (incarnation 1), but the refutation missed a, which still suspects
    # b at incarnation 0 and would declare it dead when its suspicion times out. a's buddy
    # probe tells b; b's ack carries its current claim, and a takes b back.
    a, b = make_core(0), make_core(1)
    a.preload(0.0, [b.self_claim()])
    b.handle_message(0.0, P2, encode_message(Message(None, (Suspect(P1, 0, P2),)), max_size=512))
    assert b.incarnation == 1
    b._queue.discard(P1)  # its retransmissions are spent
    a.handle_message(1.0, P2, encode_message(Message(None, (Suspect(P1, 0, P2),)), max_size=512))
    assert a.member(P1).state is MemberState.SUSPECT  # type: ignore[union-attr]  # a None there fails the test as well
    probe = encode_message(Message(Ping(5, P1), (Suspect(P1, 0, P0),)), max_size=512)
    b.handle_message(2.0, P0, probe)
    [(dst, data)] = b.outgoing()
    assert dst == P0 and b.incarnation == 1  # no new refutation: the claim was old
    a.handle_message(2.05, P1, data)
    back = a.member(P1)
    assert back is not None and back.state is MemberState.ALIVE and back.incarnation == 1
    # Without Lifeguard (plain SWIM) the ack is bare.
    plain = make_core(1, config=SwimConfig(lifeguard=False))
    plain.handle_message(
        0.0, P2, encode_message(Message(None, (Suspect(P1, 0, P2),)), max_size=512)
    )
    plain._queue.discard(P1)
    plain.handle_message(2.0, P0, probe)
    [(_, data)] = plain.outgoing()
    assert not [c for c in _decode(data).broadcasts if isinstance(c, Alive)]


def test_refutation_restores_alive() -> None:
    a = make_core(0)
    a.handle_message(0.0, P1, encode_message(Message(None, (_signed_alive(1, 0),)), max_size=512))
    a.handle_message(1.0, P2, encode_message(Message(None, (Suspect(P1, 0, P2),)), max_size=512))
    assert a.member(P1).state is MemberState.SUSPECT  # type: ignore[union-attr]  # a None there fails the test as well
    a.handle_message(2.0, P1, encode_message(Message(None, (_signed_alive(1, 1),)), max_size=512))
    assert a.member(P1).state is MemberState.ALIVE  # type: ignore[union-attr]  # a None there fails the test as well
    events = a.events()
    assert events[-1] == MemberAlive(P1, 1)


def test_forged_claims_refused_but_rest_applied() -> None:
    a = make_core(0)
    forged = Alive(P2, 3, (), Metadata(), b"not a signature")
    good = _signed_alive(1, 0)
    data = encode_message(Message(None, (forged, good)), max_size=1024)
    with pytest.raises(InvalidClaimSignature):
        a.handle_message(0.0, EVIL, data)
    assert a.member(P2) is None and a.member(P1) is not None
    assert a.statistics().claims_rejected == 1
    with pytest.raises(InvalidClaimSignature):
        a.handle_message(
            0.0, EVIL, encode_message(Message(None, (Leave(P1, 1, b"x"),)), max_size=512)
        )
    assert a.member(P1).state is MemberState.ALIVE  # type: ignore[union-attr]  # a None there fails the test as well


def test_incarnation_far_in_the_future_refused() -> None:
    a = make_core(0)
    a.handle_message(0.0, P1, encode_message(Message(None, (_signed_alive(1, 5),)), max_size=512))
    far = _signed_alive(1, 5 + MAX_INCARNATION_JUMP + 1)
    with pytest.raises(IncarnationTooFarError):
        a.handle_message(0.0, P1, encode_message(Message(None, (far,)), max_size=512))
    with pytest.raises(IncarnationTooFarError):
        a.handle_message(
            0.0, EVIL, encode_message(Message(None, (Dead(P1, 2**40, EVIL),)), max_size=512)
        )
    assert a.member(P1).incarnation == 5  # type: ignore[union-attr]  # a None there fails the test as well
    assert a.member(P1).state is MemberState.ALIVE  # type: ignore[union-attr]  # a None there fails the test as well
    with pytest.raises(IncarnationTooFarError):
        a.handle_message(
            0.0, EVIL, encode_message(Message(None, (Suspect(P0, 2**40, EVIL),)), max_size=512)
        )
    assert a.incarnation == 1  # refuted anyway, by one step


def test_unsigned_claims_do_not_raise_incarnations() -> None:
    a = make_core(0)
    a.handle_message(0.0, P1, encode_message(Message(None, (_signed_alive(1, 5),)), max_size=512))
    a.handle_message(
        0.0, EVIL, encode_message(Message(None, (Dead(P1, 1000, EVIL),)), max_size=512)
    )
    assert a.member(P1).state is MemberState.DEAD  # type: ignore[union-attr]  # a None there fails the test as well
    a.handle_message(0.0, P1, encode_message(Message(None, (_signed_alive(1, 6),)), max_size=512))
    assert a.member(P1).state is MemberState.ALIVE  # type: ignore[union-attr]  # a None there fails the test as well


def test_member_table_is_bounded() -> None:
    a = make_core(0, config=SwimConfig(max_members=3))
    claims = tuple(_signed_alive(i, 0) for i in range(1, 8))
    a.handle_message(0.0, EVIL, encode_message(Message(None, claims), max_size=4096))
    assert len(a.members()) == 3
    assert a.statistics().claims_rejected == 4


def test_metadata_set_propagates_and_is_bounded() -> None:
    a, b = _joined(2)
    b.events()
    a.set_metadata(load=3.0, entries={"role": b"worker"})
    assert a.incarnation == 1
    with pytest.raises(MetadataTooLarge):
        a.set_metadata(entries={"blob": b"\0" * 600})
    a.handle_timer(30.5)
    _pump(a, b, now=30.5)
    a.handle_timer(31.5)
    _pump(a, b, now=31.5)
    member = b.member(P0)
    assert member is not None and member.metadata == Metadata(3.0, {"role": b"worker"})
    assert MetadataChanged(P0, Metadata(3.0, {"role": b"worker"})) in b.events()


def test_pick_member_by_load_prefers_lower_load() -> None:
    a = make_core(0)
    claims = tuple(_signed_alive(i, 0, Metadata(float(i))) for i in range(1, 6))
    a.handle_message(0.0, P1, encode_message(Message(None, claims), max_size=4096))
    rng = random.Random(1)
    picks = [a.pick_member_by_load(rng) for _ in range(400)]
    assert picks.count(peer(5)) == 0  # the most loaded never wins a pair
    assert picks.count(peer(1)) > picks.count(peer(4))
    assert make_core(9).pick_member_by_load(rng) is None


def test_upcoming_probe_targets_are_the_probe_order() -> None:
    cores = _joined(6)
    a = cores[0]
    upcoming = a.upcoming_probe_targets(12)  # past the end of this round, into the next
    assert len(upcoming) == 5 and P0 not in upcoming
    assert set(upcoming) == {c.local for c in cores[1:]}
    probed: list[object] = []
    seqs: set[int] = set()
    now = 40.0
    while len(probed) < len(upcoming):
        a.handle_timer(now)
        a.outgoing()
        probe = a._probe
        if probe is not None and probe.seq not in seqs:
            seqs.add(probe.seq)
            if probe.target not in probed:
                probed.append(probe.target)
        now = a.next_deadline() or now + 1
        assert now < 400
    assert probed == upcoming


def test_leave_is_signed_and_gossiped() -> None:
    a, b = _joined(2)
    b.events()
    a.leave(31.0)
    assert a.leave_pending
    _pump(a, b, now=31.0)
    assert b.member(P0).state is MemberState.LEFT  # type: ignore[union-attr]  # a None there fails the test as well
    for t in range(10):
        a.handle_timer(32.0 + t)
        _pump(a, b, now=32.0 + t)
    assert not a.leave_pending


def test_oversized_probe_message_refused() -> None:
    a = make_core(0, config=SwimConfig(max_message_size=200))
    claims = tuple(_signed_alive(i, 0) for i in range(1, 5))
    with pytest.raises(SwimProtocolError):
        a.handle_message(0.0, P1, encode_message(Message(Ack(1), claims), max_size=4096))
    assert a.members() == []


def test_push_pull_stays_within_its_bound() -> None:
    a = make_core(0, config=SwimConfig(max_push_pull_size=1000))
    claims = tuple(_signed_alive(i, 0, Metadata(0.0, {"k": b"x" * 100})) for i in range(1, 12))
    for claim in claims:
        a.handle_message(0.0, P1, encode_message(Message(None, (claim,)), max_size=4096))
    assert len(a.members()) == 11
    a.join(0.0, P1)
    [(_, data)] = a.outgoing()
    assert len(data) <= 1000
    push = _decode(data).primary
    assert isinstance(push, PushPull) and 1 < len(push.members) < 12


def test_rejoin_after_leave_is_a_new_incarnation() -> None:
    a = make_core(0)
    a.leave(0.0)
    left_at = a.incarnation
    a.join(1.0, P1)
    assert a.incarnation == left_at + 1 and not a.leaving
    [*_, (_, data)] = a.outgoing()
    push = _decode(data).primary
    assert isinstance(push, PushPull) and push.members[0].alive.incarnation == left_at + 1


def test_preload_starts_from_a_known_view_without_gossip() -> None:
    cores = [make_core(i) for i in range(5)]
    claims = [c.self_claim() for c in cores]
    forged = Alive(peer(9), 0, (), Metadata(), b"bad")
    with pytest.raises(InvalidClaimSignature):
        cores[0].preload(0.0, [*claims, forged])
    assert {m.peer_id for m in cores[0].members()} == {c.local for c in cores[1:]}
    assert cores[0].statistics().broadcasts_queued == 0
    assert [type(e) for e in cores[0].events()] == [MemberJoined] * 4


def test_gossip_window_keeps_gossip_on_the_next_probe_targets() -> None:
    cores = _joined(8, config=SwimConfig(gossip_window=2))
    a = cores[0]
    a.set_metadata(load=1.0)  # something to gossip
    window = set(a.upcoming_probe_targets(2))
    a.handle_timer(a._next_gossip)
    gossip = [dst for dst, data in a.outgoing() if _decode(data).primary is None]
    assert gossip and set(gossip) <= window
