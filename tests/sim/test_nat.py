"""NAT and firewall boxes: the sans-IO mapping/filtering rules, and connections through them."""

from __future__ import annotations

import ipaddress
import random

import anyio
import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiaddr import Multiaddr

from p2pstack.errors import TransportError
from p2pstack.sim import run_virtual
from transports.simnet import (
    BEHAVIOURS,
    Endpoint,
    Latency,
    LinkSpec,
    NatBox,
    NatMapping,
    NatSpec,
    SimNetwork,
)

EIM, ADM, APDM = BEHAVIOURS
PUBLIC = {4: ipaddress.ip_address("11.255.255.254")}
INSIDE: Endpoint = (ipaddress.ip_address("10.0.0.1"), 5000)
R1: Endpoint = (ipaddress.ip_address("11.0.0.2"), 80)
R1_OTHER_PORT: Endpoint = (ipaddress.ip_address("11.0.0.2"), 81)
R2: Endpoint = (ipaddress.ip_address("11.0.0.3"), 80)


def _box(spec: NatSpec, seed: int = 0) -> NatBox:
    return NatBox(spec, 1, PUBLIC if spec.translate else {}, random.Random(seed))


# kind, mapping kept for (same address, other port), for (other address),
# inbound admitted from (R1, R1 other port, R2)
TABLE = [
    ("full-cone", NatSpec.of_kind("full-cone"), True, True, (True, True, True)),
    ("restricted-cone", NatSpec.of_kind("restricted-cone"), True, True, (True, True, False)),
    ("port-restricted", NatSpec.of_kind("port-restricted"), True, True, (True, False, False)),
    ("address-dependent", NatSpec(mapping=ADM, filtering=ADM), True, False, (True, True, False)),
    ("address-dependent", NatSpec.of_kind("address-dependent"), True, False, (True, False, False)),
    ("symmetric", NatSpec.of_kind("symmetric"), False, False, (True, False, False)),
    ("firewall", NatSpec.of_kind("firewall"), True, True, (True, False, False)),
]


@pytest.mark.parametrize(
    ("spec", "same_ip", "other_ip", "admits"), [t[1:] for t in TABLE], ids=[t[0] for t in TABLE]
)
def test_mapping_and_filtering_rules(
    spec: NatSpec, same_ip: bool, other_ip: bool, admits: tuple[bool, bool, bool]
) -> None:
    box = _box(spec)
    first = box.outbound("udp", INSIDE, R1, 0.0)
    assert first is not None
    if spec.port_allocation == "preserve" and spec.translate:
        assert first.external == (PUBLIC[4], 5000)  # port preserved
    elif spec.translate:
        assert first.external == (PUBLIC[4], 1024)
    else:
        assert first.external == INSIDE  # a firewall translates nothing
    to_same_ip = box.outbound("udp", INSIDE, R1_OTHER_PORT, 0.0)
    to_other_ip = box.outbound("udp", INSIDE, R2, 0.0)
    assert to_same_ip is not None and to_other_ip is not None
    assert (to_same_ip.external == first.external) is same_ip
    assert (to_other_ip.external == first.external) is other_ip
    # Filtering is judged on a box that has only sent to R1.
    fresh = _box(spec)
    mapping = fresh.outbound("udp", INSIDE, R1, 0.0)
    assert mapping is not None
    got = tuple(
        fresh.inbound("udp", mapping.external, remote, 1.0) is mapping
        for remote in (R1, R1_OTHER_PORT, R2)
    )
    assert got == admits
    assert fresh.inbound("tcp", mapping.external, R1, 1.0) is None  # mappings are per protocol
    assert fresh.inbound("udp", (PUBLIC[4], 5001), R1, 1.0) is None  # nothing mapped there


def test_symmetric_ports_are_allocated_in_order_and_preserved_when_free() -> None:
    box = _box(NatSpec.of_kind("symmetric"))
    # (the ignore below: a mapping is made here)
    ports = [box.outbound("udp", INSIDE, r, 0.0).external[1] for r in (R1, R2, R1_OTHER_PORT)]  # type: ignore[union-attr]
    assert ports == [1024, 1025, 1026]
    preserving = _box(NatSpec(mapping=APDM, filtering=APDM))
    # (the ignore below: a mapping is made here)
    ports = [preserving.outbound("udp", INSIDE, r, 0.0).external[1] for r in (R1, R2)]  # type: ignore[union-attr]
    assert ports == [5000, 1024]
    no_preservation = _box(NatSpec(port_allocation="sequential"))
    # (the ignore below: a mapping is made here)
    assert no_preservation.outbound("tcp", INSIDE, R1, 0.0).external[1] == 1024  # type: ignore[union-attr]


def _ports(box: NatBox, remotes: tuple[Endpoint, ...]) -> list[int]:
    out = []
    for remote in remotes:
        mapping = box.outbound("tcp", INSIDE, remote, 0.0)
        assert mapping is not None
        out.append(mapping.external[1])
    return out


def test_random_allocation_is_seeded_and_maps_each_destination_to_a_new_port() -> None:
    spec = NatSpec.of_kind("symmetric", port_allocation="random")
    remotes = (R1, R2, R1_OTHER_PORT)
    box = _box(spec, seed=7)
    ports = _ports(box, remotes)
    assert len(set(ports)) == 3 and all(1024 <= p <= 65535 for p in ports)
    assert ports != [1024, 1025, 1026] and 5000 not in ports
    assert _ports(_box(spec, seed=7), remotes) == ports  # same seed, same ports
    assert _ports(_box(spec, seed=8), remotes) != ports
    assert _ports(box, (R2,)) == [ports[1]]  # an existing mapping keeps its port
    with pytest.raises(ValueError, match="rng"):
        NatBox(spec, 1, PUBLIC)


def test_hairpinning_is_not_supported() -> None:
    async def main() -> None:
        net = _net(connect_timeout=3.0)
        box = net.add_nat(NatSpec.of_kind("full-cone"), [1, 2])
        public = f"/ip4/{box.public[4]}"
        # 2 opens TCP and UDP mappings of port 4001 (full cone: anyone may use them)...
        t2 = net.transport(2, reuse_port=True)
        await t2.listen(Multiaddr("/ip4/0.0.0.0/tcp/4001"))
        await net.transport(3).listen(Multiaddr("/ip4/0.0.0.0/tcp/80"))
        await t2.dial(Multiaddr("/ip4/11.0.0.3/tcp/80"))
        sock = await t2.bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/4001"))
        await sock.send_datagram(b"open", Multiaddr("/ip4/11.0.0.3/udp/1"))
        # ...the outside reaches them through the box...
        outside = await net.transport(3).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/7"))
        await outside.send_datagram(b"in", Multiaddr(f"{public}/udp/4001"))
        assert (await sock.receive())[0] == b"in"
        await net.transport(3).dial(Multiaddr(f"{public}/tcp/4001"))
        # ...a neighbour behind the same box does not: no hairpinning.
        neighbour = await net.transport(1).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/7"))
        await neighbour.send_datagram(b"hairpin", Multiaddr(f"{public}/udp/4001"))
        await anyio.sleep(1)
        with pytest.raises(anyio.WouldBlock):
            sock.receive_nowait()
        with pytest.raises(TransportError, match="unreachable"):
            await net.transport(1).dial(Multiaddr(f"{public}/tcp/4001"))

    run_virtual(main)


def test_udp_timeout_outbound_refresh_only_by_default() -> None:
    box = _box(NatSpec.of_kind("full-cone", udp_timeout=30.0))
    mapping = box.outbound("udp", INSIDE, R1, 0.0)
    assert mapping is not None
    assert box.inbound("udp", mapping.external, R1, 29.0) is mapping
    assert box.inbound("udp", mapping.external, R1, 30.0) is None  # inbound did not refresh
    assert box.mappings(30.0) == []
    again = box.outbound("udp", INSIDE, R1, 31.0)
    assert again is not None and again is not mapping and again.external == mapping.external
    assert box.outbound("udp", INSIDE, R1, 60.0) is again  # outbound refreshed it at 31 s


def test_inbound_refresh_option_and_tcp_timeout() -> None:
    box = _box(NatSpec(udp_timeout=30.0, tcp_timeout=100.0, inbound_refresh=True))
    udp = box.outbound("udp", INSIDE, R1, 0.0)
    tcp = box.outbound("tcp", INSIDE, R1, 0.0)
    assert udp is not None and tcp is not None
    assert box.inbound("udp", udp.external, R1, 20.0) is udp
    assert box.inbound("udp", udp.external, R1, 45.0) is udp  # refreshed at 20 s
    assert box.inbound("tcp", tcp.external, R1, 99.0) is tcp
    assert box.inbound("tcp", tcp.external, R1, 198.0) is tcp  # TCP inbound always refreshes
    assert box.inbound("tcp", tcp.external, R1, 299.0) is None


def test_full_table_drops_new_flows_until_one_expires() -> None:
    box = _box(NatSpec.of_kind("symmetric", max_mappings=2, udp_timeout=10.0))
    assert box.outbound("udp", INSIDE, R1, 0.0) is not None
    assert box.outbound("udp", INSIDE, R2, 5.0) is not None
    assert box.outbound("udp", INSIDE, R1_OTHER_PORT, 6.0) is None
    assert box.outbound("udp", INSIDE, R1_OTHER_PORT, 10.0) is not None  # the first expired


def test_invalid_specs() -> None:
    with pytest.raises(ValueError):
        NatSpec(mapping="cone")
    with pytest.raises(ValueError):
        NatSpec(udp_timeout=0.0)
    with pytest.raises(ValueError):
        NatSpec.of_kind("carrier-grade")
    with pytest.raises(ValueError):
        NatSpec(port_allocation="lucky")


# -- connections through boxes ---------------------------------------------------------------------


def _net(latency: float = 0.01, connect_timeout: float = 10.0) -> SimNetwork:
    return SimNetwork(
        random.Random(0),
        default_link=LinkSpec(latency=Latency(a=latency)),
        connect_timeout=connect_timeout,
    )


def test_receiver_sees_the_nat_public_address_and_inbound_is_filtered() -> None:
    async def main() -> None:
        net = _net()
        box = net.add_nat(NatSpec.of_kind("port-restricted"), [1, 3])
        assert [str(ip) for ip in net.addresses(1)] == ["10.0.0.1", "fd00::1"]
        public = await net.transport(2).listen(Multiaddr("/ip4/0.0.0.0/tcp/4001"))
        inside = await net.transport(1).listen(Multiaddr("/ip4/0.0.0.0/tcp/4001"))
        assert str(inside.multiaddrs[0]) == "/ip4/10.0.0.1/tcp/4001"
        conn = await net.transport(1).dial(Multiaddr("/ip4/11.0.0.2/tcp/4001"))
        accepted = await public.accept()
        assert str(conn.local_multiaddr) == "/ip4/10.0.0.1/tcp/49152"
        assert str(accepted.remote_multiaddr) == f"/ip4/{box.public[4]}/tcp/49152"
        # From outside, neither the private nor the public address reaches the listener.
        for addr in ("/ip4/10.0.0.1/tcp/4001", f"/ip4/{box.public[4]}/tcp/4001"):
            with pytest.raises(TransportError, match="unreachable"):
                await net.transport(2).dial(Multiaddr(addr))
        # Behind the same box, the private address works and no translation happens.
        local = await net.transport(3).dial(Multiaddr("/ip4/10.0.0.1/tcp/4001"))
        assert str((await inside.accept()).remote_multiaddr) == str(local.local_multiaddr)
        assert [m.proto for m in box.mappings(anyio.current_time())] == ["tcp"]

    run_virtual(main)


def test_firewall_keeps_addresses_and_admits_only_established_flows() -> None:
    async def main() -> None:
        net = _net()
        net.add_nat(NatSpec.of_kind("firewall"), [1])
        assert str(net.addresses(1)[0]) == "11.0.0.1"
        listener = await net.transport(1).listen(Multiaddr("/ip4/0.0.0.0/tcp/4001"))
        public = await net.transport(2).listen(Multiaddr("/ip4/0.0.0.0/tcp/4001"))
        with pytest.raises(TransportError, match="unreachable"):
            await net.transport(2).dial(Multiaddr("/ip4/11.0.0.1/tcp/4001"))
        conn = await net.transport(1).dial(Multiaddr("/ip4/11.0.0.2/tcp/4001"))
        accepted = await public.accept()
        assert accepted.remote_multiaddr == conn.local_multiaddr
        await accepted.send(b"reply")  # the established flow passes inbound
        assert await conn.receive() == b"reply"
        await listener.aclose()

    run_virtual(main)


def test_tcp_mapping_timeout_resets_an_idle_connection() -> None:
    async def main() -> None:
        net = _net()
        net.add_nat(NatSpec.of_kind("port-restricted", tcp_timeout=60.0), [1])
        listener = await net.transport(2).listen(Multiaddr("/ip4/0.0.0.0/tcp/1"))
        conn = await net.transport(1).dial(Multiaddr("/ip4/11.0.0.2/tcp/1"))
        accepted = await listener.accept()
        await anyio.sleep(59)
        await accepted.send(b"still mapped")  # refreshes the mapping
        assert await conn.receive() == b"still mapped"
        await anyio.sleep(61)
        with pytest.raises(anyio.BrokenResourceError):
            await conn.send(b"forgotten")
        with pytest.raises(anyio.BrokenResourceError):
            await accepted.receive()

    run_virtual(main)


@pytest.mark.parametrize(
    ("kind", "opens"), [("port-restricted", True), ("restricted-cone", True), ("symmetric", False)]
)
def test_tcp_simultaneous_open_through_two_nats(kind: str, opens: bool) -> None:
    async def main() -> None:
        net = _net(latency=0.02, connect_timeout=5.0)
        box1 = net.add_nat(NatSpec.of_kind(kind), [1])
        box2 = net.add_nat(NatSpec.of_kind(kind), [2])
        t1, t2 = net.transport(1, reuse_port=True), net.transport(2, reuse_port=True)
        await t1.listen(Multiaddr("/ip4/0.0.0.0/tcp/4001"))
        await t2.listen(Multiaddr("/ip4/0.0.0.0/tcp/4001"))
        results: dict[int, object] = {}

        async def dial(n: int, transport: object, target: str) -> None:
            try:
                # (the ignore below: a simulated stream/transport)
                results[n] = await transport.dial(Multiaddr(target))  # type: ignore[attr-defined]
            except TransportError as exc:
                results[n] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(dial, 1, t1, f"/ip4/{box2.public[4]}/tcp/4001")
            tg.start_soon(dial, 2, t2, f"/ip4/{box1.public[4]}/tcp/4001")
        if not opens:
            assert all(isinstance(r, TransportError) for r in results.values())
            assert net.connection_count == 0
            return
        a, b = results[1], results[2]
        assert not isinstance(a, BaseException) and not isinstance(b, BaseException)
        assert net.connection_count == 1  # one connection, both ends dialed
        # (the ignore below: a simulated stream/transport)
        assert str(b.remote_multiaddr) == f"/ip4/{box1.public[4]}/tcp/4001"  # type: ignore[attr-defined]
        await a.send(b"punched")  # type: ignore[attr-defined]  # a simulated stream/transport
        # (the ignore below: a simulated stream/transport)
        assert await b.receive() == b"punched"  # type: ignore[attr-defined]

    run_virtual(main)


def test_boxes_are_added_before_nodes_use_their_addresses() -> None:
    async def main() -> None:
        net = _net()
        await net.transport(1).listen(Multiaddr("/ip4/0.0.0.0/tcp/1"))
        await net.transport(2).bind_datagram(Multiaddr("/ip4/0.0.0.0/udp/1"))
        for node in (1, 2):
            with pytest.raises(ValueError, match="already use"):
                net.add_nat(NatSpec(), [node])
        net.add_nat(NatSpec.of_kind("firewall"), [1])  # a firewall changes no address
        with pytest.raises(ValueError, match="already behind"):
            net.add_nat(NatSpec.of_kind("firewall"), [1, 3])

    run_virtual(main)


_REMOTES = st.tuples(st.sampled_from([R1[0], R2[0]]), st.sampled_from([80, 81]))
_OPS = st.lists(
    st.tuples(st.booleans(), _REMOTES, st.floats(0.0, 5.0, allow_nan=False)), max_size=30
)


@given(kind=st.sampled_from([t[0] for t in TABLE]), ops=_OPS)
def test_filtering_admits_only_what_the_rules_allow(
    kind: str, ops: list[tuple[bool, Endpoint, float]]
) -> None:
    spec = next(t[1] for t in TABLE if t[0] == kind)
    spec = attrs.evolve(spec, udp_timeout=10.0)
    box = _box(spec)
    now = 0.0
    tracked: NatMapping | None = None  # the first mapping, or its successor on that port
    sent: dict[Endpoint, float] = {}  # remote -> last outbound through ``tracked``
    for outbound, remote, step in ops:
        now += step
        if outbound:
            mapping = box.outbound("udp", INSIDE, remote, now)
            assert mapping is not None
            if tracked is None or (mapping is not tracked and mapping.external == tracked.external):
                tracked, sent = mapping, {}
            if spec.mapping == EIM:
                assert mapping is tracked
            if mapping is tracked:
                sent[remote] = now
            continue
        if tracked is None:
            continue
        admitted = box.inbound("udp", tracked.external, remote, now) is not None
        live = now - max(sent.values()) < 10.0
        if spec.filtering == EIM:
            allowed = live
        elif spec.filtering == ADM:
            allowed = live and any(r[0] == remote[0] for r in sent)
        else:
            allowed = live and remote in sent
        assert admitted == allowed


@pytest.mark.parametrize(
    ("peer_kind", "opens"),
    [("full-cone", True), ("restricted-cone", True), ("port-restricted", False)],
)
def test_symmetric_side_reaches_the_peer_listener_only_through_a_loose_filter(
    peer_kind: str, opens: bool
) -> None:
    async def main() -> None:
        net = _net(latency=0.02, connect_timeout=4.0)
        sym = net.add_nat(NatSpec.of_kind("symmetric", port_allocation="random"), [1])
        peer = net.add_nat(NatSpec.of_kind(peer_kind), [2])
        observer = await net.transport(3).listen(Multiaddr("/ip4/0.0.0.0/tcp/80"))
        t1, t2 = net.transport(1, reuse_port=True), net.transport(2, reuse_port=True)
        l2 = await t2.listen(Multiaddr("/ip4/0.0.0.0/tcp/4001"))
        await t1.listen(Multiaddr("/ip4/0.0.0.0/tcp/4001"))
        observed = {}
        for n, t in ((1, t1), (2, t2)):  # what a public node sees: the mapping towards it
            await t.dial(Multiaddr("/ip4/11.0.0.3/tcp/80"))
            observed[n] = (await observer.accept()).remote_multiaddr
        assert str(observed[2]) == f"/ip4/{peer.public[4]}/tcp/4001"  # kept port
        results: dict[int, object] = {}

        async def dial(n: int, t: object, target: Multiaddr) -> None:
            try:
                # (the ignore below: a simulated stream/transport)
                results[n] = await t.dial(target)  # type: ignore[attr-defined]
            except TransportError as exc:
                results[n] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(dial, 1, t1, observed[2])
            tg.start_soon(dial, 2, t2, observed[1])
        # The symmetric side's SYN leaves from a new port: never a simultaneous open...
        assert isinstance(results[2], TransportError)
        ports = {m.external[1] for m in sym.mappings(anyio.current_time())}
        assert len(ports) == 2  # one mapping per destination
        if not opens:
            assert isinstance(results[1], TransportError)
            return
        # ...but a filter that admits it hands it to the peer's listener.
        accepted = await l2.accept()
        assert str(accepted.remote_multiaddr).startswith(f"/ip4/{sym.public[4]}/tcp/")
        assert accepted.remote_multiaddr != observed[1]
        assert not isinstance(results[1], BaseException)

    run_virtual(main)
