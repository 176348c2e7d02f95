from __future__ import annotations

from collections.abc import Sequence

import anyio
import attrs
import pytest
from multiaddr import Multiaddr

from p2pstack.dialer import DialBackoff, Dialer, DialPolicy, default_rank, is_dialable
from p2pstack.errors import DialError, P2PError, TransportError
from p2pstack.identity import Identity, PeerId
from p2pstack.sim import run_virtual

PEER = Identity.generate().peer_id

TCP4 = Multiaddr("/ip4/1.2.3.4/tcp/1")
TCP6 = Multiaddr("/ip6/2001:db8::1/tcp/1")
QUIC4 = Multiaddr("/ip4/1.2.3.4/udp/1/quic-v1")
QUIC6 = Multiaddr("/ip6/2001:db8::1/udp/1/quic-v1")
RELAY = Multiaddr(f"/ip4/5.6.7.8/tcp/1/p2p/{PEER}/p2p-circuit")
LOOP = Multiaddr("/ip4/127.0.0.1/tcp/1")
PRIV = Multiaddr("/ip4/192.168.1.2/tcp/1")
CGNAT = Multiaddr("/ip4/100.64.0.1/tcp/1")
ULA = Multiaddr("/ip6/fd00::1/tcp/1")


def addr(n: int) -> Multiaddr:
    return Multiaddr(f"/ip4/1.0.0.{n}/tcp/1")


@attrs.define
class Conn:
    addr: Multiaddr
    closed: bool = False


@attrs.define
class FakeNet:
    """Each address succeeds or fails after a delay; records start times (virtual clock)."""

    plan: dict[Multiaddr, tuple[float, bool]]
    started: list[tuple[float, Multiaddr]] = attrs.field(factory=list)
    cancelled: list[Multiaddr] = attrs.field(factory=list)
    closed: list[Multiaddr] = attrs.field(factory=list)
    shielded: set[Multiaddr] = attrs.field(factory=set)
    produced: list[Conn] = attrs.field(factory=list)
    running: int = 0
    most_running: int = 0

    async def dial_one(self, address: Multiaddr, peer: PeerId | None) -> Conn:
        self.started.append((anyio.current_time(), address))
        delay, ok = self.plan[address]
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            with anyio.CancelScope(shield=address in self.shielded):
                await anyio.sleep(delay)
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(address)
            raise
        finally:
            self.running -= 1
        if not ok:
            raise TransportError(f"refused at {address}")
        self.produced.append(Conn(address))
        return self.produced[-1]

    async def close(self, conn: Conn) -> None:
        conn.closed = True
        self.closed.append(conn.addr)

    def dialer(self, **kwargs: object) -> Dialer[Conn]:
        return Dialer(self.dial_one, close=self.close, clock=anyio.current_time, **kwargs)  # type: ignore[arg-type]  # the test's options pass through **kwargs


def test_rank_quic_first_and_families_interleave() -> None:
    got = default_rank([RELAY, TCP4, Multiaddr("/memory/3"), TCP6, QUIC4, QUIC6, TCP4])
    assert got == [QUIC6, QUIC4, TCP6, TCP4, Multiaddr("/memory/3"), RELAY]


def test_policy_filters_loopback_and_private() -> None:
    strict = DialPolicy(allow_loopback=False, allow_private=False)
    assert [is_dialable(a, strict) for a in (LOOP, PRIV, CGNAT, ULA, TCP4)] == [
        False,
        False,
        False,
        False,
        True,
    ]
    assert is_dialable(Multiaddr("/dns4/example.com/tcp/1"), strict)
    assert all(is_dialable(a, DialPolicy()) for a in (LOOP, PRIV, CGNAT, ULA))
    assert is_dialable(LOOP, DialPolicy(allow_private=False))


def test_staggered_start_and_first_success_wins() -> None:
    net = FakeNet({addr(1): (10.0, True), addr(2): (1.0, True), addr(3): (5.0, True)})

    async def main() -> Conn:
        return await net.dialer(policy=DialPolicy(stagger=0.5)).dial(PEER, [addr(1), addr(2)])

    conn = run_virtual(main)
    assert conn.addr == addr(2)
    assert net.started == [(0.0, addr(1)), (0.5, addr(2))]
    assert net.cancelled == [addr(1)]


def test_failure_starts_next_at_once_and_errors_listed() -> None:
    plan = {addr(1): (0.1, False), addr(2): (0.2, False), addr(3): (0.3, False)}
    net = FakeNet(plan)

    async def main() -> None:
        dialer = net.dialer(policy=DialPolicy(stagger=5.0))
        with pytest.raises(DialError) as info:
            await dialer.dial(PEER, list(plan))
        assert [a for a, _ in info.value.errors] == [str(a) for a in plan]
        assert all(isinstance(e, TransportError) for _, e in info.value.errors)

    run_virtual(main)
    assert [t for t, _ in net.started] == pytest.approx([0.0, 0.1, 0.3])


def test_bounded_parallel_attempts() -> None:
    plan = {addr(n): (1.0, False) for n in range(1, 7)}
    net = FakeNet(plan)

    async def main() -> None:
        dialer = net.dialer(policy=DialPolicy(stagger=0.0, max_parallel=2))
        with pytest.raises(DialError):
            await dialer.dial(PEER, list(plan))

    run_virtual(main)
    assert net.most_running == 2
    assert len(net.started) == 6


def test_late_success_is_closed() -> None:
    net = FakeNet({addr(1): (1.0, True), addr(2): (1.5, True)}, shielded={addr(2)})

    async def main() -> Conn:
        # The second attempt completes although the race is over: it must not leak.
        return await net.dialer(policy=DialPolicy(stagger=0.0)).dial_addrs(None, [addr(1), addr(2)])

    conn = run_virtual(main)
    assert conn.addr == addr(1)
    assert not conn.closed
    assert [c.addr for c in net.produced] == [addr(1), addr(2)]
    assert net.closed == [addr(2)]


def test_backoff_grows_and_clears_on_success() -> None:
    net = FakeNet({addr(1): (0.1, False)})

    async def main() -> None:
        dialer = net.dialer(policy=DialPolicy(backoff_base=2.0, backoff_max=5.0))
        for expected in (2.0, 4.0, 5.0):
            with pytest.raises(DialError) as info:
                await dialer.dial(PEER, [addr(1)])
            assert not isinstance(info.value, DialBackoff)
            with pytest.raises(DialBackoff) as refused:
                await dialer.dial(PEER, [addr(1)])
            assert refused.value.peer == PEER
            assert refused.value.retry_in == pytest.approx(expected)
            assert "backoff" in str(refused.value)
            await anyio.sleep(expected)
        net.plan[addr(1)] = (0.1, True)
        await dialer.dial(PEER, [addr(1)])
        assert dialer.backoff_remaining(PEER) == 0.0
        net.plan[addr(1)] = (0.1, False)
        with pytest.raises(DialError):
            await dialer.dial(PEER, [addr(1)])
        assert dialer.backoff_remaining(PEER) == pytest.approx(2.0)
        net.plan[addr(1)] = (0.1, True)
        assert (await dialer.dial(PEER, [addr(1)], force=True)).addr == addr(1)
        net.plan[addr(1)] = (0.1, False)
        with pytest.raises(DialError):
            await dialer.dial(PEER, [addr(1)], force=True)
        assert dialer.backoff_remaining(PEER) == 0.0  # forced failures do not count

    run_virtual(main)


def test_no_addresses_is_no_backoff() -> None:
    net = FakeNet({})

    async def main() -> None:
        dialer = net.dialer()
        for _ in range(2):
            with pytest.raises(DialError, match="no known addresses"):
                await dialer.dial(PEER)
        with pytest.raises(DialError, match="filtered by policy"):
            await net.dialer(policy=DialPolicy(allow_loopback=False)).dial(PEER, [LOOP])

    run_virtual(main)


class Routing:
    def __init__(self, found: Sequence[Multiaddr] | Exception) -> None:
        self.found = found
        self.asked: list[PeerId] = []

    async def find_peer(self, peer: PeerId) -> Sequence[Multiaddr]:
        self.asked.append(peer)
        if isinstance(self.found, Exception):
            raise self.found
        return self.found


def test_peer_routing_when_peerstore_empty() -> None:
    net = FakeNet({addr(1): (0.1, True), addr(2): (0.1, True)})
    routing = Routing([addr(1)])
    remembered: list[tuple[PeerId, list[Multiaddr]]] = []

    async def main() -> None:
        known: dict[PeerId, list[Multiaddr]] = {}
        dialer = net.dialer(
            peer_routing=routing,
            addrs_of=lambda p: known.get(p, []),
            on_routed=lambda p, a: remembered.append((p, list(a))),
        )
        assert (await dialer.dial(PEER)).addr == addr(1)
        known[PEER] = [addr(2)]
        assert (await dialer.dial(PEER)).addr == addr(2)  # known addresses: no routing

    run_virtual(main)
    assert routing.asked == [PEER]
    assert remembered == [(PEER, [addr(1)])]


def test_peer_routing_failure_is_a_dial_error() -> None:
    async def main() -> None:
        dialer = FakeNet({}).dialer(peer_routing=Routing(P2PError("dht down")))
        with pytest.raises(DialError, match="peer routing failed: dht down"):
            await dialer.dial(PEER)

    run_virtual(main)


@pytest.mark.anyio
async def test_concurrent_dials_to_one_peer_share_one_attempt() -> None:
    net = FakeNet({addr(1): (0.05, True)})
    dialer = net.dialer()
    results: list[Conn] = []

    async def one() -> None:
        results.append(await dialer.dial(PEER, [addr(1)]))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(one)
            await anyio.sleep(0.01)
            assert dialer.is_dialing(PEER)
    assert not dialer.is_dialing(PEER)
    assert len(net.started) == 1
    assert results[0] is results[1] is results[2]
    assert dialer.pending == 0


@pytest.mark.anyio
async def test_shared_failure_and_cancelled_leader() -> None:
    net = FakeNet({addr(1): (0.05, False), addr(2): (10.0, True)})
    dialer = net.dialer()
    errors: list[DialError] = []

    async def one(addrs: list[Multiaddr]) -> None:
        try:
            await dialer.dial(PEER, addrs)
        except DialError as exc:
            errors.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(one, [addr(1)])
            tg.start_soon(one, [addr(1)])
    assert len(net.started) == 1
    assert [len(e.errors) for e in errors] == [1, 1]

    dialer.clear_backoff(PEER)
    leader_scope = anyio.CancelScope()

    async def leader() -> None:
        with leader_scope:
            await dialer.dial(PEER, [addr(2)])

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(leader)
            await anyio.sleep(0.01)
            tg.start_soon(one, [addr(2)])
            await anyio.sleep(0.01)
            leader_scope.cancel()
    assert len(errors) == 3
    assert "cancelled" in str(errors[-1])
    assert dialer.pending == 0
    assert dialer.backoff_remaining(PEER) == 0.0


def test_suspend_backs_a_peer_off_and_keeps_a_longer_backoff() -> None:
    net = FakeNet({addr(1): (0.1, True)})

    async def main() -> None:
        dialer = net.dialer(policy=DialPolicy(backoff_base=2.0, backoff_max=50.0))
        dialer.suspend(PEER, 30.0)
        with pytest.raises(DialBackoff) as refused:
            await dialer.dial(PEER, [addr(1)])
        assert refused.value.retry_in == pytest.approx(30.0)
        dialer.suspend(PEER, 5.0)  # a shorter suspension does not shorten it
        assert dialer.backoff_remaining(PEER) == pytest.approx(30.0)
        await anyio.sleep(30.0)
        assert (await dialer.dial(PEER, [addr(1)])).addr == addr(1)

    run_virtual(main)
