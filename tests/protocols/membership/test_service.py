"""The Membership service over memory hosts: join, failure detection, leave, metadata, picks,
forged input and the connection policy."""

from __future__ import annotations

from typing import Any

import anyio
import attrs
import pytest

from p2pstack.dialer import DialBackoff
from p2pstack.errors import StreamReset
from p2pstack.events import PeerFailed, Subscription
from p2pstack.framing import write_lp
from p2pstack.host import Host
from p2pstack.sim import run_virtual
from protocols.membership import (
    PROTOCOL_ID,
    ConnectionPolicy,
    MemberDead,
    MemberJoined,
    MemberLeft,
    Membership,
    MemberState,
    Message,
    Metadata,
    encode_message,
)
from protocols.membership._wire import Alive
from tests.protocols.membership._hosts import (
    FAST,
    Crashing,
    cluster,
    converge,
    host,
    membership,
    wait_state,
)


@pytest.mark.anyio
async def test_join_converges_and_publishes_events() -> None:
    async with cluster(2) as (hosts, net, _stacks):
        a = hosts[0]
        with a.service(Membership).subscribe() as sub:
            # A third member joins through b: a hears of it by gossip.
            async with host(net, [membership(7)]) as c:
                await c.service(Membership).join(hosts[1].addrs[0])
                await converge([*hosts, c], 2)
                with anyio.fail_after(5):
                    event = await sub.receive()
                assert isinstance(event, MemberJoined) and event.peer_id == c.peer_id
                assert {m.peer_id for m in a.service(Membership).members()} == {
                    hosts[1].peer_id,
                    c.peer_id,
                }


@pytest.mark.anyio
async def test_crashed_member_declared_dead_and_others_react() -> None:
    def make(i: int) -> Membership:
        return Crashing(config=FAST, seed=i) if i == 5 else membership(i)

    async with cluster(6, make=make) as (hosts, _net, stacks):
        victim = hosts[5]
        survivors = hosts[:5]
        failed: list[PeerFailed] = []
        survivors[0].events.on(PeerFailed, failed.append)
        await stacks[5].aclose()  # no leave: a crash as the others see it
        # Suspicion timeout: 2 * max(1, log10 6) * 0.2 s = 0.4 s, at most 2x that; plus
        # detection (a probe round of 5 members) and gossip: a generous bound on a busy box.
        took = await wait_state(survivors, victim.peer_id, MemberState.DEAD, timeout=12)
        assert took < 12
        assert PeerFailed(peer_id=victim.peer_id, source="membership") in failed
        # The dialer does not redial a dead member.
        with pytest.raises(DialBackoff):
            await survivors[0].dial_peer(victim.peer_id)
        assert all(victim.peer_id not in m.live_members() for m in _services(survivors))


def _services(hosts: list[Host]) -> list[Membership]:
    return [h.service(Membership) for h in hosts]


@pytest.mark.anyio
async def test_graceful_leave_shows_left() -> None:
    async with cluster(5) as (hosts, _net, stacks):
        leaver = hosts[4]
        with hosts[0].service(Membership).subscribe() as sub:
            await stacks[4].aclose()
            took = await wait_state(hosts[:4], leaver.peer_id, MemberState.LEFT, timeout=8)
            assert took < 8
            with anyio.fail_after(5):
                event = await sub.receive()
            assert isinstance(event, MemberLeft) and event.peer_id == leaver.peer_id
            assert not any(isinstance(e, MemberDead) for e in _drain(sub))


def _drain(sub: Subscription[Any]) -> list[object]:
    out: list[object] = []
    while True:
        try:
            out.append(sub.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            return out


@pytest.mark.anyio
async def test_metadata_propagates_and_pick_prefers_low_load() -> None:
    async with cluster(5) as (hosts, _net, _stacks):
        loads = {h.peer_id: float(10 * i) for i, h in enumerate(hosts)}
        for h in hosts:
            h.service(Membership).set_metadata(load=loads[h.peer_id], entries={"role": b"w"})
        picker = hosts[0].service(Membership)
        with anyio.fail_after(10):
            while True:
                seen = {m.peer_id: m.metadata for m in picker.members()}
                if all(seen[p] == Metadata(load=loads[p], entries={"role": b"w"}) for p in seen):
                    break
                await anyio.sleep(0.05)
        picks = [picker.pick_member_by_load() for _ in range(400)]
        counts = {p: picks.count(p) for p in seen}
        # Power of two choices over 4 members: the least loaded wins every pair it is in
        # (1/2 of the picks), the most loaded never.
        least = hosts[1].peer_id
        most = hosts[4].peer_id
        assert counts[most] == 0
        assert counts[least] > 150
        assert hosts[0].peer_id not in counts


@pytest.mark.anyio
async def test_forged_and_garbage_messages_reset_the_stream() -> None:
    async with cluster(3) as (hosts, _net, _stacks):
        target, liar = hosts[0], hosts[1]
        third = hosts[2].peer_id
        forged = Alive(third, 99, (), Metadata(load=-1.0), b"not a signature")
        payloads = [
            encode_message(Message(None, (forged,)), max_size=1024),
            b"\xff\xff\xff\xff",  # not a SWIM message
        ]
        for payload in payloads:
            with anyio.fail_after(5):
                stream = await liar.new_stream(target.peer_id, PROTOCOL_ID)
                await write_lp(stream, payload)
                await stream.send_eof()
                with pytest.raises(StreamReset):
                    await stream.receive()
        service = target.service(Membership)
        assert service.statistics().bad_messages == 2
        member = service.member(third)
        assert member is not None and member.incarnation < 99 and member.metadata.load == 0.0
        # The host carries on: the cluster still works.
        await converge(hosts, 2)


@pytest.mark.anyio
async def test_connections_per_member_bounded_by_policy() -> None:
    policy = ConnectionPolicy(lookahead=2, idle_timeout=0.6, max_connections=3)

    def make(i: int) -> Membership:
        return Membership(config=FAST, policy=attrs.evolve(policy), seed=i)

    async with cluster(6, make=make) as (hosts, _net, _stacks):
        # After the joins' connections idled out, each member keeps about its probe window.
        with anyio.fail_after(12):
            while True:
                own = [h.service(Membership).statistics().own_connections for h in hosts]
                if max(own) <= policy.max_connections:
                    break
                await anyio.sleep(0.1)
        await anyio.sleep(1.0)
        own = [h.service(Membership).statistics().own_connections for h in hosts]
        assert max(own) <= policy.max_connections + 1  # one dial may be under way
        assert sum(h.service(Membership).statistics().closed_by_policy for h in hosts) > 0
        await converge(hosts, 5)  # membership still complete


@pytest.mark.anyio
async def test_connections_other_services_opened_are_left_open() -> None:
    policy = ConnectionPolicy(lookahead=1, idle_timeout=0.3, max_connections=1)

    def make(i: int) -> Membership:
        return Membership(config=FAST, policy=attrs.evolve(policy), seed=i)

    async with cluster(4, make=make) as (hosts, net, _stacks), host(net, [make(9)]) as extra:
        with anyio.fail_after(5):
            app_conn = await extra.connect(hosts[1].addrs[0])  # the app's, not SWIM's
        await extra.service(Membership).join(hosts[0].addrs[0])
        await converge([*hosts, extra], 4)
        await anyio.sleep(2.0)  # many idle timeouts and policy rounds
        assert not app_conn.is_closed
        closed = sum(h.service(Membership).statistics().closed_by_policy for h in hosts)
        assert closed > 0  # the policy did close its own connections meanwhile


@pytest.mark.anyio
async def test_join_connections_are_closed_by_the_policy_too() -> None:
    policy = ConnectionPolicy(lookahead=1, idle_timeout=0.3, max_connections=1)

    slower = attrs.evolve(FAST, probe_interval=0.4, probe_timeout=0.2)  # idle gaps per pair

    def make(i: int) -> Membership:
        return Membership(config=slower, policy=attrs.evolve(policy), seed=i)

    async with cluster(6, make=make) as (hosts, _net, _stacks):
        seed = hosts[0]
        # Every member joined through the seed; without closing those connections the seed
        # would stay connected to all 5.
        with anyio.fail_after(12):
            while True:
                if len({c.remote_peer for c in seed.connections()}) < 5:
                    break
                await anyio.sleep(0.05)
        await converge(hosts, 5)


def test_failure_detection_in_virtual_time() -> None:
    """The driver runs on the anyio clock only, so the simulator's virtual time drives it: a
    crash is declared dead within detection (a probe round of 4 members, 0.8 s) plus the
    largest suspicion timeout (2 x 2 x 0.2 s) plus gossip, to the virtual millisecond."""

    def make(i: int) -> Membership:
        return Crashing(config=FAST, seed=i) if i == 4 else membership(i)

    async def main() -> float:
        async with cluster(5, make=make) as (hosts, _net, stacks):
            await stacks[4].aclose()
            return await wait_state(hosts[:4], hosts[4].peer_id, MemberState.DEAD, timeout=30)

    took = run_virtual(main)
    assert 0.4 <= took <= 0.8 + 0.8 + 0.5
