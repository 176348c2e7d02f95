"""The pubsub overlay on its own (the base the pubsub workloads build on): a line of router
cores relays a message end to end hop by hop, a node that stops cuts the line, a restarted
node runs one heartbeat chain, and floodsub and gossipsub count what they send."""

from __future__ import annotations

import random

import pytest

from p2pstack.identity import Identity
from p2pstack.roots.scenarios._pubsub_net import EventQueue, Overlay
from p2pstack.roots.scenarios._pubsub_record import DeliveryRecorder
from p2pstack.sim import SeededRandom, run_virtual
from protocols.pubsub import FloodsubConfig, GossipsubConfig, GossipsubRouter
from transports.simnet import Latency, LinkSpec

N = 6


def line(config: GossipsubConfig | FloodsubConfig) -> tuple[Overlay, DeliveryRecorder]:
    ids = {
        i: Identity.generate(random_bytes=SeededRandom(1, f"id/{i}").random_bytes)
        for i in range(1, N + 1)
    }
    recorder = DeliveryRecorder(N)
    overlay = Overlay(
        "test",
        config,
        ids,
        link=LinkSpec(latency=Latency(kind="fixed", a=0.01)),
        events=EventQueue(),
        rng=random.Random(7),
        recorder=recorder,
    )
    return overlay, recorder


@pytest.mark.parametrize("router", ["gossipsub", "floodsub"])
def test_a_line_relays_hop_by_hop_and_a_stop_cuts_it(router: str) -> None:
    config = (
        GossipsubConfig(d=2, d_lo=1, d_hi=3, d_out=1)
        if router == "gossipsub"
        else (FloodsubConfig())
    )
    overlay, recorder = line(config)

    async def main() -> None:
        for i in range(1, N + 1):
            overlay.start(i, 0.0, ["t"])
        for i in range(1, N):
            overlay.connect(i, i + 1, 0.0)
        await overlay.events.run(3.0)  # subscriptions out, meshes formed at the heartbeats
        first = overlay.publish(1, "t", b"one", 3.0)
        await overlay.events.run(4.0)
        overlay.stop(3, 4.0)
        second = overlay.publish(1, "t", b"two", 4.0)
        await overlay.events.run(8.0)
        assert first is not None and second is not None
        got = recorder.deliveries
        # Hop by hop down the line: 10 ms per link, hop count = distance.
        assert {n: h for n, (_, h) in got[first].items()} == {n: n - 1 for n in range(2, N + 1)}
        t2, _ = got[first][2]
        t6, _ = got[first][6]
        assert t6 - t2 == pytest.approx(0.04)
        assert set(got[second]) == {2}  # node 3 is gone: nothing beyond it
        assert recorder.rpcs_sent > 0 and sum(recorder.bytes_sent.values()) > 0

    run_virtual(main)


def test_a_restarted_node_runs_one_heartbeat_chain() -> None:
    overlay, _ = line(GossipsubConfig())

    async def main() -> None:
        overlay.start(1, 0.0, ["t"])
        await overlay.events.run(0.5)
        overlay.stop(1, 0.5)
        overlay.start(1, 0.7, ["t"])
        await overlay.events.run(10.0)
        router = overlay.nodes[1].router
        assert isinstance(router, GossipsubRouter)
        assert router.heartbeats == 9  # at 1.7, 2.7, ... 9.7
        timers = [e for e in overlay.events.heap if e[2] == overlay._on_timer]
        assert len(timers) == 1  # the old router's chain ended at the stop

    run_virtual(main)


def test_what_was_in_flight_to_a_restarted_node_is_lost() -> None:
    overlay, recorder = line(GossipsubConfig())

    async def main() -> None:
        overlay.start(1, 0.0, ["t"])
        overlay.start(2, 0.0, ["t"])
        overlay.connect(1, 2, 0.0)
        await overlay.events.run(2.0)
        msg_id = overlay.publish(2, "t", b"data", 2.0)
        overlay.stop(1, 2.001)  # the message is on the wire (10 ms)
        overlay.start(1, 2.002, ["t"])
        await overlay.events.run(3.0)
        assert msg_id is not None and recorder.deliveries[msg_id] == {}
        assert overlay.errors == 0  # not handed to the new router as from an unknown peer

    run_virtual(main)
