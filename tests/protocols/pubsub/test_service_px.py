"""Peer exchange through the Pubsub service: a peer pruned from a full mesh is offered another
peer's signed record and connects to it."""

from __future__ import annotations

import anyio
import attrs
import pytest

from protocols.pubsub import Pubsub
from tests.protocols.pubsub._network import GOSSIP, ps, pubsub_network

#: A's mesh holds one peer, so a second GRAFT is refused with PRUNE and peer exchange.
TINY = attrs.evolve(GOSSIP, d=1, d_lo=1, d_hi=1, d_out=0, d_lazy=1, do_px=True)
PX = attrs.evolve(GOSSIP, do_px=True)


@pytest.mark.anyio
async def test_pruned_peer_connects_to_offered_peer() -> None:
    def make(i: int) -> Pubsub:
        return Pubsub(TINY if i == 0 else PX)

    async with pubsub_network(3, [(1, 0), (2, 0)], make) as (a, b, c):
        ps(a).subscribe("t")
        ps(b).subscribe("t")
        with anyio.fail_after(10):
            await ps(a).wait_until(lambda s: s.mesh("t") == [b.peer_id])
            ps(c).subscribe("t")
            await ps(c).wait_until(lambda s: b.peer_id in s.peers("t"))
        assert c.connections(b.peer_id)
        assert ps(a).mesh("t") == [b.peer_id]
