"""Datagram sockets of the simulated network: latency, bandwidth, loss and queues on the virtual
clock, NAT filtering at arrival time, and same seed => same trace with NATs and datagrams."""

from __future__ import annotations

import random

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.errors import TransportError
from p2pstack.sim import SeededRandom, TraceRecorder, VirtualClock, run_virtual
from transports.simnet import MAX_DATAGRAM, Latency, LinkSpec, NatSpec, SimNetwork


def _net(
    link: LinkSpec | None = None, *, datagram_queue: int = 1024, datagram_backlog: int = 1 << 18
) -> SimNetwork:
    return SimNetwork(
        random.Random(0),
        default_link=link or LinkSpec(latency=Latency(a=0.05)),
        datagram_queue=datagram_queue,
        datagram_backlog=datagram_backlog,
    )


def test_delivery_after_one_latency_with_the_sender_address() -> None:
    async def main() -> None:
        net = _net()
        a = await net.transport(1).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/0"))
        b = await net.transport(2).bind_datagram(Multiaddr("/ip4/11.0.0.2/udp/9"))
        assert str(a.local_multiaddr) == "/ip4/11.0.0.1/udp/49152"
        await a.send_datagram(b"one", Multiaddr("/ip4/11.0.0.2/udp/9"))
        assert await b.receive() == (b"one", a.local_multiaddr)
        assert anyio.current_time() == pytest.approx(0.05)
        await b.send_datagram(b"two", a.local_multiaddr)
        assert (await a.receive())[0] == b"two"
        assert anyio.current_time() == pytest.approx(0.10)
        assert a.statistics().sent == 1 and a.statistics().received == 1

    run_virtual(main)


def test_bandwidth_serialises_and_jitter_may_reorder() -> None:
    async def main() -> None:
        net = _net(LinkSpec(latency=Latency(a=0.01), bandwidth=1000.0))
        a = await net.transport(1).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/0"))
        b = await net.transport(2).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/9"))
        for tag in (b"x", b"y"):
            await a.send_datagram(tag * 500, Multiaddr("/ip4/11.0.0.2/udp/9"))
        times = []
        for _ in range(2):
            await b.receive()
            times.append(anyio.current_time())
        assert times == pytest.approx([0.51, 1.01])

        jittery = _net(LinkSpec(latency=Latency(kind="uniform", a=0.0, b=1.0)))
        c = await jittery.transport(1).bind_datagram(Multiaddr("/ip6/::/udp/0"))
        d = await jittery.transport(2).bind_datagram(Multiaddr("/ip6/::/udp/9"))
        for i in range(50):
            await c.send_datagram(bytes([i]), Multiaddr("/ip6/2600::2/udp/9"))
        got = [(await d.receive())[0][0] for _ in range(50)]
        assert sorted(got) == list(range(50)) and got != sorted(got)

    run_virtual(main)


def test_loss_drops_without_retransmission() -> None:
    async def main() -> None:
        net = _net(LinkSpec(latency=Latency(a=0.01), loss=0.3))
        a = await net.transport(1).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/0"))
        b = await net.transport(2).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/9"))
        for _ in range(1000):
            await a.send_datagram(b"p", Multiaddr("/ip4/11.0.0.2/udp/9"))
        await anyio.sleep(1)
        received = b.statistics().received
        while True:
            with anyio.move_on_after(0):
                await b.receive()
                received += 1
                continue
            break
        assert net.datagram_drops["loss"] + received == 1000
        assert 250 <= net.datagram_drops["loss"] <= 350

    run_virtual(main)


def test_bounded_queues_drop_and_count() -> None:
    async def main() -> None:
        net = _net(datagram_queue=4)
        a = await net.transport(1).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/0"))
        b = await net.transport(2).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/9"))
        for _ in range(10):
            await a.send_datagram(b"q", Multiaddr("/ip4/11.0.0.2/udp/9"))
        await anyio.sleep(1)
        assert b.statistics().dropped_queue_full == 6
        slow = _net(LinkSpec(bandwidth=1000.0), datagram_backlog=2000)
        c = await slow.transport(1).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/0"))
        for _ in range(5):  # 1 s of wire each: the third waits 2 s (2000 bytes), the rest drop
            await c.send_datagram(b"z" * 1000, Multiaddr("/ip4/11.0.0.2/udp/9"))
        assert slow.datagram_drops["loss"] == 2

    run_virtual(main)


def test_errors_no_socket_cut_and_closed() -> None:
    async def main() -> None:
        net = _net()
        a = await net.transport(1).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/7"))
        with pytest.raises(TransportError, match="in use"):
            await net.transport(1).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/7"))
        with pytest.raises(TransportError):
            await a.send_datagram(b"x", Multiaddr("/ip6/2600::2/udp/9"))  # other family
        with pytest.raises(TransportError):
            await a.send_datagram(b"x" * (MAX_DATAGRAM + 1), Multiaddr("/ip4/11.0.0.2/udp/9"))
        await a.send_datagram(b"x", Multiaddr("/ip4/11.0.0.2/udp/9"))
        await anyio.sleep(1)
        b = await net.transport(2).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/9"))
        net.partition([[1], [2]])
        await a.send_datagram(b"y", Multiaddr("/ip4/11.0.0.2/udp/9"))
        await anyio.sleep(1)
        assert net.datagram_drops == {"port": 1, "cut": 1}
        await b.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await b.receive()
        net.crash(1)
        with pytest.raises(anyio.ClosedResourceError):
            await a.send_datagram(b"z", Multiaddr("/ip4/11.0.0.2/udp/9"))

    run_virtual(main)


@pytest.mark.parametrize(("kind", "punches"), [("port-restricted", True), ("symmetric", False)])
def test_udp_hole_punching_filters_at_arrival_time(kind: str, punches: bool) -> None:
    async def main() -> None:
        net = _net()
        box1 = net.add_nat(NatSpec.of_kind(kind), [1])
        box2 = net.add_nat(NatSpec.of_kind(kind), [2])
        a = await net.transport(1).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/4001"))
        b = await net.transport(2).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/4001"))
        to_b, to_a = (Multiaddr(f"/ip4/{box.public[4]}/udp/4001") for box in (box2, box1))
        # 1's packet leaves first but reaches box 2 after 2's packet has opened box 2: both
        # pass when the boxes keep ports, as a hole punch needs.
        await a.send_datagram(b"from 1", to_b)
        await anyio.sleep(0.01)
        await b.send_datagram(b"from 2", to_a)
        await anyio.sleep(1)
        if not punches:
            assert net.datagram_drops == {"nat": 2}
            return
        assert await a.receive() == (b"from 2", to_b)
        assert await b.receive() == (b"from 1", to_a)
        assert [m.external[1] for m in box1.mappings(anyio.current_time())] == [4001]

    run_virtual(main)


def test_unsolicited_datagrams_are_filtered_then_admitted_after_outbound() -> None:
    async def main() -> None:
        net = _net()
        box = net.add_nat(NatSpec.of_kind("restricted-cone", udp_timeout=30.0), [1])
        inside = await net.transport(1).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/5000"))
        outside = await net.transport(2).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/9"))
        public = Multiaddr(f"/ip4/{box.public[4]}/udp/5000")
        await outside.send_datagram(b"knock", public)
        await anyio.sleep(1)
        assert net.datagram_drops == {"nat": 1}
        await inside.send_datagram(b"hello", Multiaddr("/ip4/11.0.0.2/udp/1"))
        await outside.send_datagram(b"knock", public)  # same address, other port: admitted
        assert await inside.receive() == (b"knock", outside.local_multiaddr)
        await anyio.sleep(40)  # the mapping times out
        await outside.send_datagram(b"late", public)
        await anyio.sleep(1)
        assert net.datagram_drops == {"nat": 2, "port": 1}

    run_virtual(main)


def _workload(seed: int) -> str:
    """Several nodes, two kinds of NAT, jitter and loss, datagrams and connections: the hash of
    everything the nodes saw."""
    clock = VirtualClock()
    trace = TraceRecorder(clock)

    async def main() -> None:
        link = LinkSpec(latency=Latency(kind="lognormal", a=0.03, b=0.5), loss=0.1)
        net = SimNetwork(SeededRandom(seed, "network"), default_link=link, connect_timeout=8.0)
        net.add_nat(NatSpec.of_kind("port-restricted", udp_timeout=5.0), [1, 2])
        net.add_nat(NatSpec.of_kind("symmetric"), [3])
        socks = {}
        for n in range(1, 6):
            socks[n] = await net.transport(n).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/4001"))
            await net.transport(n).listen(Multiaddr("/ip4/0.0.0.0/tcp/4001"))
        rng = SeededRandom(seed, "workload")

        async def receiver(n: int) -> None:
            while True:
                data, sender = await socks[n].receive()
                trace.record("dgram", node=n, data=data.hex(), src=str(sender))

        async def sender(n: int) -> None:
            for i in range(30):
                await anyio.sleep(rng.uniform(0.0, 0.5))
                target = rng.choice([4, 5, 1])
                await socks[n].send_datagram(
                    bytes([n, i]), Multiaddr(f"/ip4/11.0.0.{target}/udp/4001")
                )
            for target in (4, 5):
                try:
                    conn = await net.transport(n).dial(Multiaddr(f"/ip4/11.0.0.{target}/tcp/4001"))
                    trace.record("conn", node=n, local=str(conn.local_multiaddr))
                except TransportError as exc:
                    trace.record("dial_failed", node=n, err=str(exc))

        async with anyio.create_task_group() as tg:
            for n in socks:
                tg.start_soon(receiver, n)
            async with anyio.create_task_group() as senders:
                for n in socks:
                    senders.start_soon(sender, n)
            trace.record("drops", **{k: v for k, v in sorted(net.datagram_drops.items())})
            tg.cancel_scope.cancel()

    run_virtual(main, clock=clock)
    assert trace.count > 50
    return trace.hexdigest()


def test_same_seed_same_trace_with_nat_and_datagrams() -> None:
    first = _workload(7)
    assert _workload(7) == first
    assert _workload(8) != first


@pytest.mark.anyio
async def test_datagrams_on_a_real_clock_on_both_backends() -> None:
    net = _net(LinkSpec(latency=Latency(a=0.001)))
    box = net.add_nat(NatSpec.of_kind("port-restricted"), [1])
    a = await net.transport(1).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/0"))
    b = await net.transport(2).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/9"))
    with anyio.fail_after(5):
        await a.send_datagram(b"out", Multiaddr("/ip4/11.0.0.2/udp/9"))
        data, sender = await b.receive()
        assert (data, str(sender)) == (b"out", f"/ip4/{box.public[4]}/udp/49152")
        await b.send_datagram(b"back", sender)
        assert await a.receive() == (b"back", b.local_multiaddr)
