"""Attacks the gossipsub v1.1 peer score answers
(https://github.com/libp2p/specs/blob/master/pubsub/gossipsub/gossipsub-v1.1.md#peer-scoring):
badly signed messages (P4), RPCs of a graylisted peer (ignored but for subscriptions), GRAFT
during backoff (PRUNE, backoff restarted, P7) and IHAVE promises never kept (P7). Each checks
the penalty, that the bad input went nowhere, and that honest traffic keeps flowing."""

from __future__ import annotations

import os

import anyio
import attrs
import pytest

from protocols.pubsub import (
    RPC,
    ControlGraft,
    ControlIHave,
    ControlIWant,
    ControlMessage,
    ControlPrune,
    SubOpts,
    signed_bytes,
)
from tests.adversarial.conftest import Report
from tests.adversarial.pubsub_arena import (
    NODE_GOSSIP,
    PROMPT,
    THRESHOLDS,
    TOPIC,
    Attacker,
    PubsubArena,
    breakdown,
    identity,
    open_pubsub_arena,
    ps,
    router_sizes,
)

pytestmark = pytest.mark.anyio


async def _invalid_count(arena: PubsubArena, count: int) -> None:
    with anyio.fail_after(PROMPT):
        await ps(arena.node).wait_until(lambda p: p.statistics().invalid >= count)
    assert ps(arena.node).statistics().invalid == count


def _p4(arena: PubsubArena, attacker: Attacker) -> float:
    return breakdown(arena.node, attacker.host).topics[TOPIC].p4


async def test_bad_signatures_cost_p4(report: Report) -> None:
    async with open_pubsub_arena() as arena:
        attacker = await arena.attacker()
        last = (await arena.honest_delivery())[-1]
        assert last.seqno is not None
        other = identity()
        good = attacker.message(b"payload")
        by_other = attacker.message(b"payload")
        forged = attrs.evolve(
            attacker.message(b"forged"),
            from_=arena.publisher.peer_id,
            seqno=(last.seqno + 1).to_bytes(8, "big"),  # the publisher's next message ID
        )
        bad = {
            "data changed after signing": attrs.evolve(good, data=b"tampered"),
            "signed by another key": attrs.evolve(
                by_other, signature=other.private_key.sign(signed_bytes(by_other))
            ),
            "no signature": attrs.evolve(attacker.message(b"x"), signature=None),
            "key of another peer": attrs.evolve(
                attacker.message(b"x"), key=other.public_key.to_protobuf()
            ),
            "no from, no seqno": attrs.evolve(
                attacker.message(b"x"), from_=None, seqno=None, signature=None
            ),
            "claims the honest publisher's next seqno": forged,
        }
        for count, (name, message) in enumerate(bad.items(), start=1):
            await attacker.send(RPC(publish=(message,)))
            await _invalid_count(arena, count)
            report.add(
                f"pubsub: bad signature ({name})",
                sent="1 message",
                expected=f"dropped; P4 counter {count} (P4 = counter^2)",
                observed=f"P4 = {_p4(arena, attacker):.2f}",
                seconds=None,
            )
        # P4 is the count of invalid messages squared (weight -1).
        p4 = _p4(arena, attacker)
        assert 5.9**2 <= p4 <= 36.0
        score = ps(arena.node).score(attacker.host.peer_id)
        assert -36.0 <= score <= -34.0
        assert THRESHOLDS.graylist < score < THRESHOLDS.gossip
        stats = ps(arena.node).statistics()
        assert stats.received == 2 and stats.delivered == 2  # the two honest messages
        # The forged copy did not shadow the publisher's real next message (same ID).
        delivered = await arena.honest_delivery()
        assert [m.seqno for m in delivered] == [last.seqno + 1] * 2  # node and subscriber


async def _graylist(arena: PubsubArena, attacker: Attacker) -> None:
    # P4 counter 10: -100, well below the graylist threshold of -80 (in one RPC: from the 9th
    # on, later RPCs would be ignored).
    bad = [attrs.evolve(attacker.message(f"bad {n}".encode()), data=b"x") for n in range(10)]
    await attacker.send(RPC(publish=tuple(bad)))
    await _invalid_count(arena, 10)
    assert ps(arena.node).score(attacker.host.peer_id) < THRESHOLDS.graylist


async def test_graylisted_peer_is_ignored_but_for_subscriptions(report: Report) -> None:
    async with open_pubsub_arena() as arena:
        attacker = await arena.attacker()
        cached = (await arena.honest_delivery())[0].msg_id
        await _graylist(arena, attacker)
        node = ps(arena.node)
        # Coming back on a new connection does not wash the score (it is retained).
        await arena.reconnect(attacker)
        assert node.score(attacker.host.peer_id) < THRESHOLDS.graylist
        before = node.statistics()
        heard = len(attacker.received)
        valid = attacker.message(b"valid, but from a graylisted peer")
        control = ControlMessage(
            ihave=(ControlIHave(TOPIC, [os.urandom(8) for _ in range(10)]),),
            iwant=(ControlIWant([cached]),),
            graft=(ControlGraft(TOPIC),),
        )
        await attacker.send(
            RPC(subscriptions=(SubOpts(True, TOPIC),), publish=(valid,), control=control)
        )
        await attacker.barrier()
        replies = attacker.received[heard:]
        assert all(not rpc.publish and rpc.control is None for rpc in replies), replies
        after = node.statistics()
        assert (after.received, after.invalid) == (before.received, before.invalid)
        assert attacker.host.peer_id in node.peers(TOPIC)  # subscriptions still apply
        assert attacker.host.peer_id not in node.mesh(TOPIC)
        assert router_sizes(arena.node)["promises"] == 0  # no IWANT went out for its IHAVE
        report.add(
            "pubsub: RPCs of a graylisted peer",
            sent="message, IHAVE, IWANT, GRAFT, subscription (after reconnecting)",
            expected="only the subscription applied",
            observed=f"{len(replies)} RPCs back, none with messages or control",
            seconds=None,
        )
        await arena.honest_delivery(count=3)


def _prunes(attacker: Attacker) -> list[ControlPrune]:
    return [p for rpc in attacker.received if rpc.control for p in rpc.control.prune]


async def test_graft_during_backoff_costs_p7(report: Report) -> None:
    async with open_pubsub_arena() as arena:
        attacker = await arena.attacker()
        node = ps(arena.node)
        peer = attacker.host.peer_id
        graft = RPC(control=ControlMessage(graft=(ControlGraft(TOPIC),)))
        await attacker.send(RPC(subscriptions=(SubOpts(True, TOPIC),), control=graft.control))
        with anyio.fail_after(PROMPT):
            await node.wait_until(lambda p: peer in p.mesh(TOPIC))
        prune = ControlPrune(TOPIC, backoff=60)
        await attacker.send(RPC(control=ControlMessage(prune=(prune,))))
        with anyio.fail_after(PROMPT):
            await node.wait_until(lambda p: peer not in p.mesh(TOPIC))
        assert breakdown(arena.node, attacker.host).p7 == 0
        for round_, counter in ((1, 2.0), (2, 4.0)):
            started = anyio.current_time()
            await attacker.send(graft)
            with anyio.fail_after(PROMPT):
                while len(prunes := _prunes(attacker)) < round_:
                    await attacker.wait_for(lambda _: True, start=len(attacker.received))
            assert prunes == [ControlPrune(TOPIC, (), 60)] * round_  # no PX, the backoff
            assert peer not in node.mesh(TOPIC)
            # Two penalties per GRAFT (go): one for the backoff, one more as it comes within
            # graft_flood_threshold (10 s) of the PRUNE. P7 is the counter squared.
            p7 = breakdown(arena.node, attacker.host).p7
            assert (counter * 0.99) ** 2 <= p7 <= counter**2
            report.add(
                f"pubsub: GRAFT during backoff (#{round_})",
                sent="GRAFT 0 s after PRUNE(backoff 60 s)",
                expected=f"PRUNE(backoff 60 s), P7 counter +2 -> {counter:.0f}",
                observed=f"PRUNE, P7 = {p7:.2f}",
                seconds=round(anyio.current_time() - started, 3),
            )
        restarted = arena.node_backoff(peer)
        assert restarted > anyio.current_time() + NODE_GOSSIP.prune_backoff - PROMPT
        # -10 * 4^2 = -160: graylisted, so the next GRAFT is not even answered.
        assert node.score(peer) < THRESHOLDS.graylist
        await attacker.send(graft)
        await attacker.barrier()
        assert len(_prunes(attacker)) == 2
        assert breakdown(arena.node, attacker.host).p7 <= 16.0
        await arena.honest_delivery(count=3)


async def test_broken_ihave_promises_cost_p7(report: Report) -> None:
    async with open_pubsub_arena() as arena:
        attacker = await arena.attacker()
        node_cfg = NODE_GOSSIP
        # 6,000 8-byte IDs in 12 IHAVEs: what fits in the node's 64 KiB RPC bound.
        bogus = [os.urandom(8) for _ in range(node_cfg.max_ihave_length + 1000)]
        ihaves = tuple(ControlIHave(TOPIC, bogus[i : i + 500]) for i in range(0, len(bogus), 500))
        heard = len(attacker.received)
        started = anyio.current_time()
        await attacker.send(RPC(control=ControlMessage(ihave=ihaves)))
        asked = await attacker.wait_for(
            lambda rpc: rpc.control is not None and bool(rpc.control.iwant), start=heard
        )
        assert asked.control is not None
        wanted = [i for iwant in asked.control.iwant for i in iwant.message_ids]
        # At most max_ihave_length IDs asked per heartbeat, whatever was advertised.
        assert len(wanted) == len(set(wanted)) == node_cfg.max_ihave_length
        assert set(wanted) <= set(bogus)
        with anyio.fail_after(node_cfg.iwant_followup + PROMPT):
            await ps(arena.node).wait_until(lambda _: breakdown(arena.node, attacker.host).p7 > 0)
        seconds = anyio.current_time() - started
        # One promise tracked per IHAVE-answering IWANT (go): one penalty, P7 = 1^2.
        p7 = breakdown(arena.node, attacker.host).p7
        assert 0.98 <= p7 <= 1.0
        assert seconds >= node_cfg.iwant_followup - 0.5
        assert router_sizes(arena.node)["promises"] == 0
        iwants = [r for r in attacker.received[heard:] if r.control and r.control.iwant]
        report.add(
            "pubsub: IHAVE of 6,000 bogus IDs, never delivered",
            sent="12 IHAVE x 500 IDs in one RPC",
            expected="at most 5,000 IDs asked; P7 +1 after the IWANT follow-up",
            observed=f"{len(wanted)} IDs asked in {len(iwants)} IWANT; P7 = {p7:.2f}",
            seconds=round(seconds, 3),
        )
        await arena.honest_delivery(count=3)
