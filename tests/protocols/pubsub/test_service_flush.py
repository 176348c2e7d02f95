"""``Pubsub.flush``: it returns once every RPC queued for the given peers has been written, or
their link has ended (what ``p2pstack pubsub sub|pub`` waits for before reporting)."""

from __future__ import annotations

import anyio
import pytest

from protocols.pubsub import FLOODSUB_PROTOCOL_ID, RPC, Pubsub, SubOpts, frame_rpc
from tests.protocols.pubsub._network import FLOOD, open_pubsub_host, ps, pubsub_network
from tests.protocols.pubsub.test_service_behaviour import _raw_host
from transports.memory import MemoryNetwork

pytestmark = pytest.mark.anyio


async def test_flush_returns_once_written() -> None:
    async with pubsub_network(2, [(0, 1)], lambda _i: Pubsub(FLOOD)) as (a, b):
        with anyio.fail_after(10):
            await ps(a).flush()  # nothing queued
            sub = ps(b).subscribe("t")
            await ps(a).wait_until(lambda s: b.peer_id in s.peers("t"))
            for n in range(50):
                ps(a).publish("t", bytes([n]) * 20_000)
            await ps(a).flush([b.peer_id])
            stats = ps(a).queue_statistics(b.peer_id)
            assert stats is not None and (stats.messages, stats.control) == (0, 0)
            assert [(await sub.receive()).data[0] for _ in range(50)] == list(range(50))
        sub.close()


async def test_flush_of_a_peer_that_never_reads_ends_with_its_link() -> None:
    net = MemoryNetwork()
    make = lambda _i: Pubsub(FLOOD, write_timeout=1.0)  # noqa: E731
    async with pubsub_network(1, [], make, net) as (a,), _raw_host(net, FLOODSUB_PROTOCOL_ID) as r:
        with anyio.fail_after(10):
            await r.connect(a.addrs[0])
            stream = await r.new_stream(a.peer_id, FLOODSUB_PROTOCOL_ID)
            await stream.send(frame_rpc(RPC(subscriptions=(SubOpts(True, "t"),))))
            await ps(a).wait_until(lambda s: r.peer_id in s.peers("t"))
            for _ in range(40):  # far more than the stream's window
                ps(a).publish("t", bytes(32 * 1024))
            stats = ps(a).queue_statistics(r.peer_id)
            assert stats is not None and stats.messages > 0
            await ps(a).flush()  # returns when the stuck write times out and the link ends
        assert r.peer_id not in ps(a).peers()
        assert ps(a).statistics().write_failures == 1
        await stream.reset()


async def test_what_was_flushed_before_stop_is_read() -> None:
    """Stopping closes the streams with FIN, not RST: a reset may make the receiver drop what
    it has not read yet (yamux discards a reset stream's buffer), so a message published and
    flushed just before the host closes must still arrive."""
    net = MemoryNetwork()
    async with open_pubsub_host(net, Pubsub(FLOOD)) as receiver:
        sub = ps(receiver).subscribe("t")
        for n in range(10):
            with anyio.fail_after(10):
                async with open_pubsub_host(net, Pubsub(FLOOD)) as sender:
                    await sender.connect(receiver.addrs[0])
                    await ps(sender).wait_until(lambda s: receiver.peer_id in s.peers("t"))
                    ps(sender).publish("t", n.to_bytes(2, "big") * 5000)
                    await ps(sender).flush()
                assert (await sub.receive()).data[:2] == n.to_bytes(2, "big")
        sub.close()
