"""Small simulated clusters of SWIM cores (fake time, fixed seeds, message loss)."""

from p2pstack.identity import PeerId
from protocols.membership import (
    MemberDead,
    MemberEvent,
    MemberJoined,
    MemberLeft,
    MemberState,
    MemberSuspected,
    Metadata,
    SwimConfig,
    encode_message,
)
from protocols.membership._wire import Dead, Message, Suspect
from tests.protocols.membership._net import Network, peer

EVIL = peer(66)


def _cluster(
    n: int, *, seed: int = 1, loss: float = 0.01, config: SwimConfig | None = None
) -> Network:
    net = Network(n, seed=seed, loss=0.0, config=config)
    net.join_all()  # joins run over streams that the driver retries: no loss here
    net.run(5.0)
    net.loss = loss
    for p, core in net.cores.items():
        assert len([m for m in core.members() if m.state is MemberState.ALIVE]) == n - 1, p
    return net


def _false_dead(net: Network, since: float, exclude: set[PeerId]) -> list[MemberDead]:
    return [
        e
        for t, _, e in net.events
        if t >= since and isinstance(e, MemberDead) and e.peer_id not in exclude
    ]


def test_crashed_member_detected_then_declared_dead() -> None:
    net = _cluster(12)
    victim = peer(7)
    net.crashed.add(victim)
    t0 = net.now
    net.run(30.0)
    first_suspicion = net.first(MemberSuspected, victim)
    first_dead = net.first(MemberDead, victim)
    assert first_suspicion is not None and first_suspicion - t0 < 4.0  # a few probe periods
    assert first_dead is not None
    # Not before the minimum suspicion timeout: 4 * max(1, log10 12) * 1 s.
    assert first_dead - first_suspicion >= 4 * 1.079 - 1e-6
    assert first_dead - t0 < 4.0 + 6 * 4.32
    for p, core in net.cores.items():
        if p != victim:
            assert core.member(victim).state is MemberState.DEAD, p  # type: ignore[union-attr]  # a None there fails the test as well
    assert _false_dead(net, 0.0, {victim}) == []


def test_false_suspicion_is_refuted() -> None:
    net = _cluster(10)
    victim = peer(3)
    lie = encode_message(Message(None, (Suspect(victim, 0, EVIL),)), max_size=1024)
    for p in list(net.cores)[:4]:
        if p != victim:
            net.send(EVIL, p, lie)
    t0 = net.now
    net.run(15.0)
    assert net.first(MemberSuspected, victim) is not None
    assert net.cores[victim].incarnation >= 1
    assert _false_dead(net, t0, set()) == []
    for p, core in net.cores.items():
        if p != victim:
            assert core.member(victim).state is MemberState.ALIVE, p  # type: ignore[union-attr]  # a None there fails the test as well


def test_graceful_leave() -> None:
    net = _cluster(10)
    leaver = peer(4)
    net.cores[leaver].leave(net.now)
    net.run(5.0)
    assert not net.cores[leaver].leave_pending
    net.crashed.add(leaver)  # the process exits
    net.run(10.0)
    for p, core in net.cores.items():
        if p != leaver:
            assert core.member(leaver).state is MemberState.LEFT, p  # type: ignore[union-attr]  # a None there fails the test as well
    assert net.first(MemberLeft, leaver) is not None
    assert net.first(MemberDead, leaver) is None


def test_metadata_propagates() -> None:
    net = _cluster(12)
    source = peer(5)
    net.cores[source].set_metadata(load=42.0, entries={"zone": b"a"})
    net.run(3.0)
    for p, core in net.cores.items():
        if p != source:
            assert core.member(source).metadata == Metadata(42.0, {"zone": b"a"}), p  # type: ignore[union-attr]  # a None there fails the test as well
    picker = net.cores[peer(0)]
    picks = {picker.pick_member_by_load() for _ in range(200)}
    assert source not in picks  # every other member reports load 0


def test_lying_member_cannot_keep_a_live_one_dead() -> None:
    net = _cluster(10)
    victim = peer(2)
    honest = [p for p in net.cores if p != victim]
    alive_samples = total = 0
    for step in range(40):  # 20 s of lies: "victim is dead", to everyone, twice a second
        lie = encode_message(Message(None, (Dead(victim, step, EVIL),)), max_size=1024)
        for p in honest:
            net.send(EVIL, p, lie)
        net.run(0.5)
        for p in honest:
            total += 1
            alive_samples += net.state_of(p, victim) is MemberState.ALIVE
    assert net.cores[victim].incarnation >= 10  # it kept refuting
    assert alive_samples / total > 0.5  # mostly seen alive even under attack
    net.run(5.0)  # the liar stops
    for p in honest:
        assert net.state_of(p, victim) is MemberState.ALIVE, p
    assert net.first(MemberJoined, victim) is not None  # back from each false death


def test_lifeguard_reduces_false_positives_with_late_timers() -> None:
    # Summed over three seeds: one run's count swings with the trajectory (seed 2 alone: 41 or
    # 72 suspicions with Lifeguard, depending on whether an ack carries a missed refutation).
    false_suspicions = {True: 0, False: 0}
    false_dead = {True: 0, False: 0}
    for seed in (2, 3, 4):
        for lifeguard in (True, False):
            net = _cluster(12, seed=seed, loss=0.1, config=SwimConfig(lifeguard=lifeguard))
            slow = {peer(1), peer(2)}
            for p in (peer(1), peer(2)):  # in a fixed order (a set's follows the hash seed)
                net.set_slow(p, 1.5)  # starved of CPU: timers and reads only every 1.5 s
            t0 = net.now
            net.run(30.0)
            false_suspicions[lifeguard] += sum(
                1
                for t, _, e in net.events
                if t >= t0 and isinstance(e, MemberSuspected) and e.peer_id not in slow
            )
            false_dead[lifeguard] += len(_false_dead(net, t0, slow))
    # Without Lifeguard a healthy member is sometimes declared dead (once here), never with it.
    assert false_dead[True] == 0
    assert false_dead[False] > false_dead[True], false_dead
    assert false_suspicions[False] > 300
    assert false_suspicions[True] * 4 < false_suspicions[False], false_suspicions


def test_same_seed_same_run() -> None:
    def run() -> list[tuple[float, PeerId, MemberEvent]]:
        net = _cluster(8, seed=5, loss=0.05)
        net.crashed.add(peer(3))
        net.run(10.0)
        return net.events

    assert run() == run()
