"""The simulated network transport, driven on the virtual loop."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Awaitable, Callable
from typing import Literal

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiaddr import Multiaddr

from p2pstack.errors import TransportError
from p2pstack.sim import run_virtual
from p2pstack.testing import check_transport
from transports.simnet import (
    AddressPlan,
    Latency,
    LinkSpec,
    SimConnection,
    SimNetwork,
    SimTransport,
    format_endpoint,
    node_of,
    parse_endpoint,
)


def _net(
    latency: float = 0.05,
    *,
    window: int = 256 * 1024,
    stall_timeout: float = 30.0,
    connect_timeout: float = 75.0,
) -> SimNetwork:
    return SimNetwork(
        random.Random(0),
        default_link=LinkSpec(latency=Latency(a=latency)),
        window=window,
        stall_timeout=stall_timeout,
        connect_timeout=connect_timeout,
    )


def _run(fn: Callable[[], Awaitable[None]]) -> None:
    run_virtual(fn)


async def _pair(net: SimNetwork, a: int = 1, b: int = 2) -> tuple[SimConnection, SimConnection]:
    listener = await net.transport(b).listen(Multiaddr(f"/memory/{b}"))
    dialer = await net.transport(a).dial(Multiaddr(f"/memory/{b}"))
    return dialer, await listener.accept()


def test_addresses() -> None:
    assert node_of(Multiaddr("/memory/7")) == 7
    assert node_of(Multiaddr("/ip4/127.0.0.1/tcp/1")) is None
    t = SimTransport(_net(), 3)
    assert t.can_listen(Multiaddr("/memory/3")) and t.can_listen(Multiaddr("/memory/0"))
    assert not t.can_listen(Multiaddr("/memory/4"))
    with pytest.raises(ValueError):
        SimTransport(_net(), 0)


def test_conformance() -> None:
    async def main() -> None:
        net = _net(latency=0.001)
        await check_transport(net.transport(1), Multiaddr("/memory/1"))

    _run(main)


def test_dial_takes_a_round_trip_and_data_one_latency() -> None:
    async def main() -> None:
        net = _net(latency=0.05)
        a, b = await _pair(net)
        assert anyio.current_time() == pytest.approx(0.10)
        await a.send(b"hello")
        assert await b.receive() == b"hello"
        assert anyio.current_time() == pytest.approx(0.15)
        await a.send_eof()
        with pytest.raises(anyio.EndOfStream):
            await b.receive()

    _run(main)


def test_partition_stalls_then_heals() -> None:
    async def main() -> None:
        net = _net(latency=0.01, stall_timeout=100.0)
        a, b = await _pair(net)
        net.partition([[1], [2]])
        await a.send(b"across")
        with anyio.move_on_after(50):
            await b.receive()
            pytest.fail("data crossed a cut")
        net.heal()
        with anyio.fail_after(1):
            assert await b.receive() == b"across"

    _run(main)


def test_a_long_stall_resets_the_connection() -> None:
    async def main() -> None:
        net = _net(latency=0.01, stall_timeout=30.0)
        a, b = await _pair(net)
        net.partition([[1]])
        await a.send(b"x")
        with pytest.raises(anyio.BrokenResourceError):
            await b.receive()
        assert anyio.current_time() == pytest.approx(30.03, abs=0.02)
        with pytest.raises(anyio.BrokenResourceError):
            await a.send(b"y")

    _run(main)


def test_dial_across_a_cut_or_into_a_nat_times_out() -> None:
    async def main() -> None:
        net = _net(connect_timeout=20.0)
        await net.transport(2).listen(Multiaddr("/memory/2"))
        await net.transport(3).listen(Multiaddr("/memory/3"))
        net.set_reachable(3, False)
        net.partition([[1], [2, 3]])
        with pytest.raises(TransportError, match="unreachable"):
            await net.transport(1).dial(Multiaddr("/memory/2"))
        net.heal()
        with pytest.raises(TransportError, match="unreachable"):
            await net.transport(1).dial(Multiaddr("/memory/3"))
        conn = await net.transport(3).dial(Multiaddr("/memory/2"))  # outbound from a NAT works
        await conn.aclose()

    _run(main)


def test_crash_resets_connections_and_refuses_dials_until_restart() -> None:
    async def main() -> None:
        net = _net()
        a, _b = await _pair(net)
        assert net.connection_count == 1
        net.crash(2)
        with pytest.raises(anyio.BrokenResourceError):
            await a.receive()
        assert net.connection_count == 0
        with pytest.raises(TransportError, match="refused"):
            await net.transport(1).dial(Multiaddr("/memory/2"))
        net.restart(2)
        listener = await net.transport(2).listen(Multiaddr("/memory/2"))
        await net.transport(1).dial(Multiaddr("/memory/2"))
        await listener.accept()

    _run(main)


def test_drop_resets_only_the_chosen_link() -> None:
    async def main() -> None:
        net = _net()
        _a, b = await _pair(net, 1, 2)
        c, d = await _pair(net, 1, 3)
        assert net.drop(1, 2) == 1
        with pytest.raises(anyio.BrokenResourceError):
            await b.receive()
        await c.send(b"still")
        assert await d.receive() == b"still"

    _run(main)


def test_backpressure_blocks_the_sender_at_the_window() -> None:
    async def main() -> None:
        net = _net(latency=0.0, window=1000)
        a, b = await _pair(net)
        await a.send(b"x" * 1000)
        with anyio.move_on_after(1):
            await a.send(b"y")
            pytest.fail("send did not block at the window")
        assert await b.receive(10) == b"x" * 10
        with anyio.fail_after(1):
            await a.send(b"y")

    _run(main)


@pytest.mark.anyio
async def test_runs_on_a_real_clock_on_both_backends() -> None:
    net = _net(latency=0.001)
    a, b = await _pair(net)
    with anyio.fail_after(5):
        await a.send(b"ping")
        assert await b.receive() == b"ping"
        await b.aclose()
        with pytest.raises(anyio.BrokenResourceError):
            await a.send(b"to a closed end")


# -- IP addresses ---------------------------------------------------------------------------------


def test_address_plan_literals() -> None:
    plan = AddressPlan()
    assert plan.host(4, 1) == ipaddress.ip_address("11.0.0.1")
    assert plan.host(4, 258) == ipaddress.ip_address("11.0.1.2")
    assert plan.host(6, 3) == ipaddress.ip_address("2600::3")
    assert plan.host(4, 3, private=True) == ipaddress.ip_address("10.0.0.3")
    assert plan.host(6, 3, private=True) == ipaddress.ip_address("fd00::3")
    assert plan.gateway(4, 1) == ipaddress.ip_address("11.255.255.254")
    assert plan.host_index(ipaddress.ip_address("11.0.1.2")) == 258
    assert plan.host_index(ipaddress.ip_address("12.0.0.1")) is None
    v4_only = AddressPlan(ipv6=None)
    assert v4_only.host(6, 1) is None and v4_only.pools(private=True).keys() == {4}
    with pytest.raises(ValueError):
        AddressPlan(ipv4="2600::/16")
    with pytest.raises(ValueError):
        AddressPlan(ipv4="11.0.0.0/30").host(4, 5)


def test_parse_endpoint() -> None:
    assert parse_endpoint(Multiaddr("/ip4/11.0.0.1/tcp/4001")) == (
        "tcp",
        ipaddress.ip_address("11.0.0.1"),
        4001,
    )
    assert parse_endpoint(Multiaddr("/ip6/2600::1/udp/9")) == (
        "udp",
        ipaddress.ip_address("2600::1"),
        9,
    )
    assert parse_endpoint(Multiaddr("/memory/3")) is None
    assert parse_endpoint(Multiaddr("/ip4/1.2.3.4/tcp/1/ws")) is None


def test_listen_addresses_and_deterministic_ports() -> None:
    async def main() -> None:
        net = _net()
        t = net.transport(3)
        assert net.addresses(3) == (
            ipaddress.ip_address("11.0.0.3"),
            ipaddress.ip_address("2600::3"),
        )
        assert t.can_listen(Multiaddr("/ip4/0.0.0.0/tcp/0"))
        assert t.can_listen(Multiaddr("/ip6/2600::3/tcp/1"))
        assert not t.can_listen(Multiaddr("/ip4/11.0.0.4/tcp/1"))
        assert not t.can_listen(Multiaddr("/ip4/11.0.0.3/udp/1"))
        first = await t.listen(Multiaddr("/ip4/0.0.0.0/tcp/0"))
        second = await t.listen(Multiaddr("/ip6/::/tcp/0"))
        fixed = await t.listen(Multiaddr("/ip4/11.0.0.3/tcp/4001"))
        assert [str(a) for a in (*first.multiaddrs, *second.multiaddrs, *fixed.multiaddrs)] == [
            "/ip4/11.0.0.3/tcp/49152",
            "/ip6/2600::3/tcp/49153",
            "/ip4/11.0.0.3/tcp/4001",
        ]
        with pytest.raises(TransportError, match="in use"):
            await t.listen(Multiaddr("/ip4/0.0.0.0/tcp/4001"))
        await fixed.aclose()
        await t.listen(Multiaddr("/ip4/0.0.0.0/tcp/4001"))  # free again
        with pytest.raises(TransportError):
            await t.listen(Multiaddr("/ip4/11.0.0.4/tcp/4001"))

    _run(main)


def test_ipv4_only_network_has_no_ipv6() -> None:
    async def main() -> None:
        net = SimNetwork(random.Random(0), addresses=AddressPlan(ipv6=None))
        t = net.transport(1)
        assert net.addresses(1) == (ipaddress.ip_address("11.0.0.1"),)
        assert not t.can_listen(Multiaddr("/ip6/::/tcp/0"))
        await net.transport(2).listen(Multiaddr("/ip4/0.0.0.0/tcp/1"))
        with pytest.raises(TransportError, match="no address"):
            await t.dial(Multiaddr("/ip6/2600::2/tcp/1"))

    _run(main)


@pytest.mark.parametrize("listen", ["/ip4/0.0.0.0/tcp/0", "/ip6/::/tcp/0"])
def test_conformance_over_ip(listen: str) -> None:
    async def main() -> None:
        net = _net(latency=0.001)
        await check_transport(net.transport(1), Multiaddr(listen))

    _run(main)


def test_ip_dial_round_trip_addresses_and_refusal() -> None:
    async def main() -> None:
        net = _net(latency=0.05)
        listener = await net.transport(2).listen(Multiaddr("/ip6/::/tcp/4001"))
        conn = await net.transport(1).dial(Multiaddr("/ip6/2600::2/tcp/4001"))
        assert anyio.current_time() == pytest.approx(0.10)
        accepted = await listener.accept()
        assert str(conn.local_multiaddr) == "/ip6/2600::1/tcp/49152"
        assert str(conn.remote_multiaddr) == "/ip6/2600::2/tcp/4001"
        assert str(accepted.local_multiaddr) == "/ip6/2600::2/tcp/4001"
        assert str(accepted.remote_multiaddr) == "/ip6/2600::1/tcp/49152"
        await conn.send(b"v6")
        assert await accepted.receive() == b"v6"
        with pytest.raises(TransportError, match="refused"):  # nothing on that port: RST
            await net.transport(1).dial(Multiaddr("/ip6/2600::2/tcp/4002"))
        assert anyio.current_time() == pytest.approx(0.25)

    _run(main)


def test_ip_dial_to_nobody_or_across_a_cut_retransmits_then_times_out() -> None:
    async def main() -> None:
        net = _net(latency=0.01, connect_timeout=20.0)
        await net.transport(2).listen(Multiaddr("/ip4/0.0.0.0/tcp/1"))
        with pytest.raises(TransportError, match="unreachable"):
            await net.transport(1).dial(Multiaddr("/ip4/12.0.0.1/tcp/1"))
        assert 20.0 <= anyio.current_time() <= 21.0
        net.partition([[1], [2]])
        async with anyio.create_task_group() as tg:
            tg.start_soon(net.transport(1).dial, Multiaddr("/ip4/11.0.0.2/tcp/1"))
            await anyio.sleep(5)
            net.heal()  # the next retransmission (1, 2, 4, 8 s after the first SYN) gets through
        assert anyio.current_time() == pytest.approx(20.0 + 7.02, abs=0.05)

    _run(main)


@given(
    ip=st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
    port=st.integers(0, 65535),
    proto=st.sampled_from(["tcp", "udp"]),
)
def test_endpoint_round_trip(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int, proto: Literal["tcp", "udp"]
) -> None:
    addr = format_endpoint(proto, (ip, port))
    assert parse_endpoint(addr) == (proto, ip, port)
    assert parse_endpoint(Multiaddr(str(addr))) == (proto, ip, port)
