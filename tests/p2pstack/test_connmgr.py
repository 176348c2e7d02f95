from __future__ import annotations

from typing import Literal

import anyio
import anyio.lowlevel
import attrs
import pytest

from p2pstack.connmgr import (
    ConnectionManager,
    ConnectionManagerConfig,
    PeersBelowMinimum,
    choose_connection_to_keep,
)
from p2pstack.identity import Identity, PeerId
from p2pstack.sim import run_virtual

PEERS = sorted((Identity.generate().peer_id for _ in range(12)), key=lambda p: p.to_bytes())


@attrs.define(eq=False)
class FakeConn:
    remote_peer: PeerId
    direction: Literal["inbound", "outbound"] = "outbound"
    limited: bool = False
    opened_at: float = 0.0


@attrs.define
class FakeHost:
    conns: list[FakeConn] = attrs.field(factory=list)
    closed: list[FakeConn] = attrs.field(factory=list)
    manager: ConnectionManager[FakeConn] | None = None
    closed_event: anyio.Event | None = None

    def connections(self) -> list[FakeConn]:
        return list(self.conns)

    async def close(self, conn: FakeConn) -> None:
        await anyio.lowlevel.checkpoint()
        self.drop(conn)
        self.closed.append(conn)
        if self.closed_event is not None:
            self.closed_event.set()

    def open(self, peer: PeerId, at: float = 0.0) -> FakeConn:
        conn = FakeConn(peer, opened_at=at)
        self.conns.append(conn)
        if self.manager is not None:
            self.manager.opened(conn)
        return conn

    def drop(self, conn: FakeConn) -> None:
        self.conns.remove(conn)
        if self.manager is not None:
            self.manager.closed(conn)


def manager(
    host: FakeHost, clock: list[float] | None = None, **config: int | float
) -> ConnectionManager[FakeConn]:
    now = clock if clock is not None else [100.0]
    cm = ConnectionManager(
        connections=host.connections,
        close=host.close,
        local_peer=PEERS[0],
        config=ConnectionManagerConfig(**config),  # type: ignore[arg-type]
        clock=lambda: now[0],
    )
    host.manager = cm
    return cm


# -- keep rule ---------------------------------------------------------------------------------


def test_keep_direct_over_limited() -> None:
    relayed = FakeConn(PEERS[5], "outbound", limited=True, opened_at=1.0)
    direct = FakeConn(PEERS[5], "inbound", opened_at=2.0)
    assert choose_connection_to_keep(PEERS[0], [relayed, direct]) is direct
    assert choose_connection_to_keep(PEERS[9], [direct, relayed]) is direct


def test_keep_simultaneous_dial_tiebreak_agrees_on_both_ends() -> None:
    low, high = PEERS[1], PEERS[2]
    # On the low peer's side: its outbound (dialed by low) wins.
    ours_out = FakeConn(high, "outbound", opened_at=2.0)
    ours_in = FakeConn(high, "inbound", opened_at=1.0)
    assert choose_connection_to_keep(low, [ours_in, ours_out]) is ours_out
    # On the high peer's side the same connection is inbound: inbound wins.
    theirs_out = FakeConn(low, "outbound", opened_at=1.0)
    theirs_in = FakeConn(low, "inbound", opened_at=2.0)
    assert choose_connection_to_keep(high, [theirs_out, theirs_in]) is theirs_in


def test_keep_oldest_otherwise_and_empty_rejected() -> None:
    a = FakeConn(PEERS[3], "outbound", opened_at=5.0)
    b = FakeConn(PEERS[3], "outbound", opened_at=3.0)
    assert choose_connection_to_keep(PEERS[0], [a, b]) is b
    both_limited = [
        FakeConn(PEERS[3], "inbound", True, 1.0),
        FakeConn(PEERS[3], "outbound", True, 2.0),
    ]
    assert choose_connection_to_keep(PEERS[0], both_limited) is both_limited[1]
    with pytest.raises(ValueError):
        choose_connection_to_keep(PEERS[0], [])


# -- tags and protection -----------------------------------------------------------------------


def test_tags_and_protection() -> None:
    cm = manager(FakeHost())
    changes: list[tuple[PeerId, bool]] = []
    cm.on_protection_changed = lambda p, on: changes.append((p, on))
    peer = PEERS[1]
    cm.tag_peer(peer, "kad", 5)
    cm.upsert_tag(peer, "gossip", lambda v: v + 3)
    cm.upsert_tag(peer, "gossip", lambda v: v + 3)
    assert cm.tags(peer) == {"kad": 5, "gossip": 6}
    assert cm.value(peer) == 11
    cm.untag_peer(peer, "kad")
    cm.untag_peer(peer, "absent")
    assert cm.value(peer) == 6
    cm.protect(peer, "a")
    cm.protect(peer, "b")
    assert cm.is_protected(peer) and cm.is_protected(peer, "a")
    assert cm.unprotect(peer, "a") is True
    assert not cm.is_protected(peer, "a")
    assert cm.unprotect(peer, "b") is False
    assert not cm.is_protected(peer)
    assert changes == [(peer, True), (peer, False)]
    assert cm.statistics().tagged_peers == 1


# -- trimming ----------------------------------------------------------------------------------


def test_trim_closes_lowest_value_unprotected_outside_grace() -> None:
    host = FakeHost()
    clock = [100.0]
    cm = manager(host, clock, low_water=3, high_water=5, grace_period=10.0)
    for i, peer in enumerate(PEERS[1:8]):
        host.open(peer, at=95.0 if i == 6 else 50.0)  # the last one is in its grace period
        cm.tag_peer(peer, "value", 10 * i)
    cm.protect(PEERS[1], "bootstrap")  # lowest value, but protected
    victims = cm.trim_candidates()
    # 7 connections, low water 3: four go, lowest values first, skipping protected and new.
    assert [c.remote_peer for c in victims] == PEERS[2:6]
    closed = anyio.run(cm.trim)
    assert closed == 4
    assert {c.remote_peer for c in host.conns} == {PEERS[1], PEERS[6], PEERS[7]}
    assert cm.statistics().trimmed_connections == 4
    assert cm.trim_candidates() == []  # at or below high water


def test_trim_takes_whole_peers_and_nothing_at_high_water() -> None:
    host = FakeHost()
    cm = manager(host, low_water=1, high_water=3, grace_period=0.0)
    for peer in PEERS[1:4]:
        host.open(peer)
    assert cm.trim_candidates() == []
    host.open(PEERS[1])  # second connection to the cheapest peer
    cm.tag_peer(PEERS[2], "v", 1)
    cm.tag_peer(PEERS[3], "v", 2)
    victims = cm.trim_candidates()
    assert [c.remote_peer for c in victims] == [PEERS[1], PEERS[1], PEERS[2]]


def test_run_trims_when_over_high_water_and_after_grace() -> None:
    host = FakeHost()

    async def main() -> list[float]:
        cm = ConnectionManager(
            connections=host.connections,
            close=host.close,
            local_peer=PEERS[0],
            config=ConnectionManagerConfig(
                low_water=2, high_water=3, grace_period=30.0, silence_period=1.0
            ),
            clock=anyio.current_time,
        )
        host.manager = cm
        times = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(cm.run)
            await anyio.lowlevel.checkpoint()
            for peer in PEERS[1:5]:
                host.open(peer, at=anyio.current_time())
            # All are in their grace period: nothing closes until it ends.
            with anyio.fail_after(100):
                while len(host.conns) > 2:
                    host.closed_event = anyio.Event()
                    await host.closed_event.wait()
            times.append(anyio.current_time())
            tg.cancel_scope.cancel()
        return times

    [when] = run_virtual(main)
    assert 30.0 <= when <= 31.0
    assert len(host.closed) == 2


# -- minimum peers -----------------------------------------------------------------------------


def test_below_minimum_callbacks_fire_on_transition() -> None:
    host = FakeHost()
    cm = manager(host, min_peers=2)
    seen: list[PeersBelowMinimum] = []
    unregister = cm.on_below_min(seen.append)
    a = host.open(PEERS[1])
    host.open(PEERS[2])
    assert [e.peers for e in seen] == [1]  # 0 -> 1 is below: the first notify fires once
    host.open(PEERS[3])
    host.drop(a)
    assert len(seen) == 1  # 2 peers still connected
    host.drop(host.conns[-1])
    assert seen[-1] == PeersBelowMinimum(peers=1, minimum=2)
    assert (cm.peer_count(), cm.connection_count()) == (1, 1)
    unregister()
    host.open(PEERS[4])
    for conn in list(host.conns):
        host.drop(conn)
    assert len(seen) == 2
    cm.closed(a)  # told twice: ignored
    assert (cm.peer_count(), cm.connection_count()) == (0, 0)


@pytest.mark.anyio
async def test_wait_below_min() -> None:
    host = FakeHost()
    cm = manager(host, min_peers=1)
    with anyio.fail_after(5):
        assert (await cm.wait_below_min()).peers == 0  # already below
    conn = host.open(PEERS[1])
    result: list[PeersBelowMinimum] = []

    async def waiter() -> None:
        result.append(await cm.wait_below_min())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.sleep(0.01)
            assert result == []
            await host.close(conn)
    assert result == [PeersBelowMinimum(peers=0, minimum=1)]


def test_config_rejects_inverted_watermarks() -> None:
    with pytest.raises(ValueError):
        ConnectionManagerConfig(low_water=10, high_water=5)
