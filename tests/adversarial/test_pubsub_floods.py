"""Floods against a node running the ``Pubsub`` service: IWANT for the same and for unknown
messages, control floods (GRAFT for made-up topics, IDONTWANT), and a peer that never reads what
the node forwards it. Each checks the bound that holds (retransmissions, state sizes, queued
bytes, the write timeout) and that honest traffic keeps flowing."""

from __future__ import annotations

import os

import anyio
import attrs
import pytest

from protocols.pubsub import (
    RPC,
    ControlGraft,
    ControlIDontWant,
    ControlIWant,
    ControlMessage,
    SubOpts,
)
from tests.adversarial.conftest import Report
from tests.adversarial.node import RSS_SLACK, measure
from tests.adversarial.pubsub_arena import (
    NODE_FLOOD,
    NODE_GOSSIP,
    PROMPT,
    TOPIC,
    Attacker,
    open_pubsub_arena,
    ps,
    router_sizes,
)

pytestmark = pytest.mark.anyio

#: The node keeps messages for IWANT for 50 heartbeats (10 s), longer than the test.
LONG_HISTORY = attrs.evolve(NODE_GOSSIP, history_length=50)
#: Pause between batches of the never-reading test: 128 KiB per 0.1 s, a few MiB in all.
BATCH_PAUSE = 0.1


def _served(attacker: Attacker) -> int:
    return sum(len(rpc.publish) for rpc in attacker.received)


async def test_iwant_flood_is_answered_at_most_gossip_retransmission_times(
    report: Report,
) -> None:
    async with open_pubsub_arena(LONG_HISTORY) as arena:
        attacker = await arena.attacker()
        cached = sorted({m.msg_id for m in await arena.honest_delivery(count=5)})
        assert len(cached) == 5
        before = router_sizes(arena.node)
        rounds, unknown = 10, 5000
        started = anyio.current_time()
        for n in range(rounds):
            ids = cached + [os.urandom(8) for _ in range(unknown)]
            await attacker.send(RPC(control=ControlMessage(iwant=(ControlIWant(ids),))))
            if n % 3 == 0:
                await arena.honest_delivery()  # during the flood too
        retransmission = NODE_GOSSIP.gossip_retransmission
        await attacker.wait_for(lambda _: _served(attacker) >= len(cached) * retransmission)
        await attacker.barrier()
        seconds = anyio.current_time() - started
        served = [m for rpc in attacker.received for m in rpc.publish]
        ids_served = [NODE_GOSSIP.message_id(m) for m in served]
        assert sorted(ids_served) == sorted(cached * retransmission)
        # Unknown IDs left nothing behind: only the 4 honest messages sent meanwhile were added.
        honest = {"seen": before["seen"] + 4, "mcache": before["mcache"] + 4}
        assert router_sizes(arena.node) == before | honest
        assert ps(arena.node).score(attacker.host.peer_id) == 0  # the spec sets no penalty
        report.add(
            "pubsub: IWANT flood",
            sent=f"{rounds} IWANT x ({len(cached)} cached + {unknown} unknown IDs)",
            expected=f"each cached message served {retransmission} times, unknown IDs ignored",
            observed=f"{len(served)} messages served",
            seconds=round(seconds, 3),
        )
        await arena.honest_delivery(count=3)


async def test_control_floods_keep_bounded_state(report: Report) -> None:
    async with open_pubsub_arena() as arena:
        attacker = await arena.attacker()
        before = router_sizes(arena.node)
        cfg = NODE_GOSSIP
        grafts = tuple(ControlGraft(f"made-up-{i}") for i in range(3000))
        await attacker.send(RPC(control=ControlMessage(graft=grafts)))
        for _ in range(4):
            ids = [os.urandom(8) for _ in range(4000)]
            await attacker.send(RPC(control=ControlMessage(idontwant=(ControlIDontWant(ids),))))
            await arena.honest_delivery()  # during the flood too
        churn = tuple(SubOpts(n % 2 == 0, "churn") for n in range(4000))
        await attacker.send(RPC(subscriptions=churn))
        await attacker.barrier()
        after = router_sizes(arena.node)
        assert after["peer_topics"] == before["peer_topics"]  # joined and left 2,000 times
        # The spec's spam protection: GRAFTs for unknown topics are ignored (no PRUNE back,
        # no backoff kept); IDONTWANT IDs are capped per heartbeat and forgotten after a few.
        assert all(rpc.control is None for rpc in attacker.received)
        assert after["backoff"] == before["backoff"] == 0
        assert after["mesh"] == before["mesh"]
        bound = cfg.max_idontwant_messages * (cfg.idontwant_ttl + 1)
        assert 0 < after["dont_send"] <= bound
        with anyio.fail_after(PROMPT):
            await ps(arena.node).wait_until(lambda _: router_sizes(arena.node)["dont_send"] == 0)
        report.add(
            "pubsub: GRAFT for 3,000 made-up topics, 16,000 IDONTWANT IDs, 4,000 SUB/UNSUB",
            sent="6 RPCs",
            expected=f"no reply, no backoff; at most {bound} IDONTWANT IDs kept, then none",
            observed=f"no reply; {after['dont_send']} IDs kept, then 0",
            seconds=None,
        )
        await arena.honest_delivery(count=3)


@pytest.mark.parametrize("router", ["gossipsub", "floodsub"])
async def test_peer_that_never_reads_is_dropped(router: str, report: Report) -> None:
    max_queued, write_timeout = 256 * 1024, 2.0
    config = NODE_GOSSIP if router == "gossipsub" else NODE_FLOOD
    async with open_pubsub_arena(
        config, max_queued_bytes=max_queued, write_timeout=write_timeout
    ) as arena:
        node = ps(arena.node)
        attacker = await arena.attacker(reading=False)
        peer = attacker.host.peer_id
        await attacker.send(
            RPC(
                subscriptions=(SubOpts(True, TOPIC),),
                control=ControlMessage(graft=(ControlGraft(TOPIC),)),
            )
        )
        with anyio.fail_after(PROMPT):
            await node.wait_until(lambda p: peer in p.mesh(TOPIC))
        memory = measure()
        started = anyio.current_time()
        batches, queued_max = 0, 0
        # 8 KiB messages in batches of 16 (the honest subscriber takes each batch) until the
        # node gives up on the peer that reads nothing. Paced, so that the traffic (which the
        # message cache keeps for its history window, by design) is a few MiB on any machine
        # and the RSS bound below measures what the unread peer costs, not how fast this
        # machine could publish.
        with anyio.fail_after(write_timeout + 4 * PROMPT):
            while peer in node.peers():
                await arena.honest_delivery(count=16, size=8192)
                batches += 1
                await anyio.sleep(BATCH_PAUSE)
                stats = node.queue_statistics(peer)
                if stats is not None:
                    queued_max = max(queued_max, stats.message_bytes)
                    assert stats.message_bytes <= max_queued
        seconds = anyio.current_time() - started
        final = node.statistics()
        assert final.write_failures == 1
        assert final.dropped_outbound > 0  # its queue overflowed before the timeout
        assert queued_max > max_queued // 2
        assert node.queue_statistics(peer) is None
        assert seconds >= write_timeout
        # Everything in this process (four hosts, the attacker's unread stream included).
        grown = measure().rss - memory.rss
        assert grown <= RSS_SLACK, f"RSS grew {grown >> 10} KiB over {batches} batches"
        report.add(
            f"{router}: mesh peer that never reads",
            sent=f"{batches * 16} x 8 KiB forwarded to it",
            expected=f"queue <= {max_queued >> 10} KiB, dropped after a {write_timeout} s write",
            observed=f"queue peaked at {queued_max >> 10} KiB; dropped",
            seconds=round(seconds, 3),
        )
        await arena.honest_delivery(count=3)
