"""The Pubsub service's behaviour under unsubscription, validators, a peer that never reads
and a peer that sends malformed RPCs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel
import attrs
import pytest

from p2pstack.builder import open_host
from p2pstack.errors import StreamReset
from p2pstack.host import Host, Stream
from p2pstack.identity import PeerId
from protocols.identify import Identify
from protocols.pubsub import (
    FLOODSUB_PROTOCOL_ID,
    GOSSIPSUB_V11_PROTOCOL_ID,
    GOSSIPSUB_V12_PROTOCOL_ID,
    RPC,
    Pubsub,
    PubsubMessage,
    SubOpts,
    TopicPeerChanged,
    ValidationResult,
    frame_rpc,
    make_message,
)
from tests.protocols.pubsub._network import (
    GOSSIP,
    NO_KEEPALIVE,
    ROUTERS,
    collect,
    line,
    ps,
    pubsub_network,
    settle,
)
from tests.protocols.pubsub.test_gossipsub_score import score_params
from transports.memory import MemoryNetwork, MemoryTransport
from transports.plaintext import Plaintext
from transports.yamux import Yamux


@pytest.mark.anyio
@pytest.mark.parametrize("router", ["floodsub", "gossipsub"])
async def test_unsubscribe_stops_delivery(router: str) -> None:
    async with pubsub_network(2, [(0, 1)], lambda _i: Pubsub(ROUTERS[router])) as (a, b):
        keep = ps(b).subscribe("y")
        async with ps(b).subscribe("x") as gone:
            with anyio.fail_after(10):
                await ps(a).wait_until(lambda s: b.peer_id in s.peers("x"))
        with anyio.fail_after(10):
            await ps(a).wait_until(lambda s: b.peer_id not in s.peers("x"))
            assert [m async for m in gone] == []
            ps(a).publish("x", b"not for b")
            await ps(a).wait_until(lambda s: b.peer_id in s.peers("y"))
            ps(a).publish("y", b"for b")
            assert (await keep.receive()).data == b"for b"
        assert ps(b).topics == {"y"}
        stats = ps(b).statistics()
        assert stats.delivered == 1 and stats.received == 1


def _reject_bad(message: PubsubMessage) -> ValidationResult:
    return ValidationResult.REJECT if message.data == b"bad" else ValidationResult.ACCEPT


async def _ignore_ugly(message: PubsubMessage) -> ValidationResult:
    await anyio.lowlevel.checkpoint()
    return ValidationResult.IGNORE if message.data == b"ugly" else ValidationResult.ACCEPT


@pytest.mark.anyio
@pytest.mark.parametrize("router", ["floodsub", "gossipsub"])
async def test_validators_drop_and_do_not_forward(router: str) -> None:
    async with pubsub_network(3, line(3), lambda _i: Pubsub(ROUTERS[router])) as hosts:
        a, b, c = hosts
        ps(b).add_validator("t", _reject_bad)
        ps(c).add_validator("t", _ignore_ugly)
        subs = [ps(h).subscribe("t") for h in (b, c, a)]
        with anyio.fail_after(20):
            await settle(hosts, line(3), "t", mesh=router == "gossipsub")
        for data in (b"bad", b"ugly", b"good"):
            ps(a).publish("t", data)
        at_b: list[PubsubMessage] = []
        at_c: list[PubsubMessage] = []
        with anyio.fail_after(10):
            await collect(subs[0], 2, at_b)
            await collect(subs[1], 1, at_c)
            await ps(c).wait_until(lambda s: s.statistics().ignored == 1)
        assert [m.data for m in at_b] == [b"ugly", b"good"]
        assert [m.data for m in at_c] == [b"good"]
        assert ps(b).statistics().rejected == 1
        stats = ps(c).statistics()
        assert (stats.received, stats.rejected, stats.delivered) == (2, 0, 1)


@pytest.mark.anyio
async def test_slow_validator_times_out_and_concurrency_is_bounded() -> None:
    release = anyio.Event()

    async def hold(message: PubsubMessage) -> bool:
        if message.data == b"slow":
            await anyio.sleep_forever()
        await release.wait()
        return True

    def make(i: int) -> Pubsub:
        return Pubsub(GOSSIP, validation_timeout=0.5, max_pending_validations=2)

    async with pubsub_network(2, [(0, 1)], make) as (a, b):
        ps(b).add_validator("t", hold)
        sub = ps(b).subscribe("t")
        with anyio.fail_after(10):
            await ps(a).wait_until(lambda s: b.peer_id in s.peers("t"))
            for data in (b"slow", b"one", b"two", b"three"):
                ps(a).publish("t", data)
            await ps(b).wait_until(lambda s: s.statistics().throttled == 2)
            release.set()
            assert (await sub.receive()).data == b"one"
            await ps(b).wait_until(lambda s: s.statistics().ignored == 1)
        assert ps(b).statistics().delivered == 1


@asynccontextmanager
async def _raw_host(
    net: MemoryNetwork, protocol: str = GOSSIPSUB_V12_PROTOCOL_ID
) -> AsyncIterator[Host]:
    """A host that lists a pubsub protocol but never reads what is sent on it."""

    async def never_read(stream: Stream) -> None:
        await anyio.sleep_forever()

    async with open_host(
        transports=[MemoryTransport(net)],
        security=[Plaintext()],
        muxers=[Yamux(NO_KEEPALIVE)],
        services=[Identify()],
        listen=["/memory/0"],
    ) as host:
        host.set_stream_handler(protocol, never_read)
        yield host


@pytest.mark.anyio
@pytest.mark.parametrize("router", ["floodsub", "gossipsub"])
async def test_peer_that_never_reads_does_not_stall_others(router: str) -> None:
    limit = 256 * 1024
    count, size = 40, 32 * 1024  # 1.25 MiB: several times the queue and the stream window

    def make(i: int) -> Pubsub:
        return Pubsub(ROUTERS[router], max_queued_bytes=limit, write_timeout=4.0)

    net = MemoryNetwork()
    protocol = FLOODSUB_PROTOCOL_ID if router == "floodsub" else GOSSIPSUB_V12_PROTOCOL_ID
    async with pubsub_network(2, [(0, 1)], make, net) as (a, b), _raw_host(net, protocol) as r:
        sub = ps(b).subscribe("t")
        with anyio.fail_after(10):
            await r.connect(a.addrs[0])
            stream = await r.new_stream(a.peer_id, protocol)
            await stream.send(frame_rpc(RPC(subscriptions=(SubOpts(True, "t"),))))
            want = {b.peer_id, r.peer_id}
            await ps(a).wait_until(lambda s: set(s.peers("t")) == want)
        with anyio.fail_after(10):  # b gets each message while r's queue stays bounded
            for n in range(count):
                ps(a).publish("t", n.to_bytes(4, "big") * (size // 4))
                assert int.from_bytes((await sub.receive()).data[:4], "big") == n
                assert _queued(ps(a), r.peer_id) <= limit
        assert ps(a).statistics().dropped_outbound > 0
        with anyio.fail_after(10):  # the stuck write times out: the peer is dropped
            await ps(a).wait_until(lambda s: r.peer_id not in s.peers())
        assert ps(a).statistics().write_failures == 1
        await stream.reset()


def _queued(service: Pubsub, peer: PeerId) -> int:
    stats = service.queue_statistics(peer)
    return 0 if stats is None else stats.message_bytes


@pytest.mark.anyio
@pytest.mark.parametrize(
    "garbage",
    [b"\x03\xff\xff\xff", b"\xff\xff\xff\x7f"],  # bad protobuf; a 268 MB length prefix
    ids=["bad-protobuf", "oversized"],
)
async def test_malformed_rpc_closes_the_stream_and_is_counted(garbage: bytes) -> None:
    net = MemoryNetwork()
    async with pubsub_network(2, [(0, 1)], lambda _i: Pubsub(GOSSIP), net) as (a, b):
        async with _raw_host(net) as r:
            with anyio.fail_after(10):
                await r.connect(a.addrs[0])
                stream = await r.new_stream(a.peer_id, GOSSIPSUB_V11_PROTOCOL_ID)
                await stream.send(garbage)
                with pytest.raises((StreamReset, anyio.EndOfStream)):
                    await stream.receive()
        assert ps(a).statistics().malformed_rpcs == 1
        sub = ps(b).subscribe("t")  # the host carries on
        with anyio.fail_after(10):
            await ps(a).wait_until(lambda s: b.peer_id in s.peers("t"))
            ps(a).publish("t", b"still fine")
            assert (await sub.receive()).data == b"still fine"


@pytest.mark.anyio
async def test_forged_message_is_counted_and_dropped() -> None:
    net = MemoryNetwork()
    async with pubsub_network(2, [(0, 1)], lambda _i: Pubsub(GOSSIP), net) as (a, _):
        sub = ps(a).subscribe("t")
        async with _raw_host(net) as r:
            with anyio.fail_after(10):
                await r.connect(a.addrs[0])
                stream = await r.new_stream(a.peer_id, GOSSIPSUB_V12_PROTOCOL_ID)
                signed = make_message("t", b"real", private_key=r.identity.private_key, seqno=1)
                forged = attrs.evolve(signed, data=b"forged")
                good = make_message("t", b"good", private_key=r.identity.private_key, seqno=2)
                rpc = RPC(subscriptions=(SubOpts(True, "t"),), publish=(forged, good))
                await stream.send(frame_rpc(rpc))
                assert (await sub.receive()).data == b"good"
            stats = ps(a).statistics()
            assert (stats.invalid, stats.received, stats.malformed_rpcs) == (1, 1, 0)
            await stream.reset()


@pytest.mark.anyio
@pytest.mark.parametrize("router", ["floodsub", "gossipsub"])
async def test_disconnected_peer_leaves(router: str) -> None:
    async with pubsub_network(3, line(3), lambda _i: Pubsub(ROUTERS[router])) as (a, b, c):
        with b.events.subscribe(TopicPeerChanged) as changes:
            for host in (a, b, c):
                ps(host).subscribe("t")
            with anyio.fail_after(10):
                await ps(b).wait_until(lambda s: set(s.peers("t")) == {a.peer_id, c.peer_id})
                await b.disconnect(c.peer_id)
                await ps(b).wait_until(lambda s: set(s.peers()) == {a.peer_id})
                await ps(c).wait_until(lambda s: s.peers() == [])
            seen = [changes.receive_nowait() for _ in range(3)]
        assert ps(b).statistics().peers == 1
        assert sorted(seen, key=lambda e: (e.subscribed, e.peer_id == c.peer_id)) == [
            TopicPeerChanged(c.peer_id, "t", False),
            TopicPeerChanged(a.peer_id, "t", True),
            TopicPeerChanged(c.peer_id, "t", True),
        ]


@pytest.mark.anyio
async def test_rejected_message_costs_its_sender_score() -> None:
    config = attrs.evolve(GOSSIP, score_params=score_params())
    async with pubsub_network(2, [(0, 1)], lambda _i: Pubsub(config)) as (a, b):
        ps(b).add_validator("t", _reject_bad)
        sub = ps(b).subscribe("t")
        with anyio.fail_after(10):
            await ps(a).wait_until(lambda s: b.peer_id in s.peers("t"))
            ps(a).publish("t", b"bad")
            ps(a).publish("t", b"fine")
            assert (await sub.receive()).data == b"fine"
        assert ps(b).statistics().rejected == 1
        assert ps(b).score(a.peer_id) < 0 == ps(a).score(b.peer_id)


@pytest.mark.anyio
@pytest.mark.parametrize("router", ["floodsub", "gossipsub"])
async def test_failed_open_is_tried_again_and_keeps_the_peer(router: str) -> None:
    """Our outbound stream to b fails to open after b's own stream told us its subscription
    (a negotiation timing out under load): b stays a peer and the stream is opened again."""
    net = MemoryNetwork()
    async with pubsub_network(2, [], lambda _i: Pubsub(ROUTERS[router]), net) as (a, b):
        sub_b = ps(b).subscribe("t")
        sub_a = ps(a).subscribe("t")
        original = a.new_stream
        failed: list[PeerId] = []

        async def first_open_fails(peer: PeerId | str, protocols: object, **kw: object) -> Stream:
            if not failed:
                failed.append(PeerId.from_string(str(peer)))
                with anyio.fail_after(10):  # b's stream (and subscription) arrives meanwhile
                    await ps(a).wait_until(lambda s: b.peer_id in s.peers("t"))
                raise TimeoutError
            return await original(peer, protocols, **kw)  # type: ignore[arg-type]  # the spy passes them on

        a.new_stream = first_open_fails  # type: ignore[method-assign]  # a spy replaces the method
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
            await ps(b).wait_until(lambda s: a.peer_id in s.peers("t"))
            ps(a).publish("t", b"to b")
            assert (await sub_b.receive()).data == b"to b"
            ps(b).publish("t", b"to a")
            got = [(await sub_a.receive()).data for _ in range(2)]  # its own message first
            assert got == [b"to b", b"to a"]
        assert failed == [b.peer_id]
        assert b.peer_id in ps(a).peers("t")
        stats = ps(a).statistics()
        assert stats.open_retries == 1 and stats.write_failures == 0
