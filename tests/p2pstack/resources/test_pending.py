from __future__ import annotations

import pytest

from p2pstack.errors import ResourceLimitExceeded
from p2pstack.resources import ConnectionScope, LimitedResourceManager, ScopeLimit
from tests.p2pstack.resources.helpers import addr, manager, peer


class Pool:
    """Opens inbound connections on a manager and records which were evicted."""

    def __init__(self, rm: LimitedResourceManager) -> None:
        self.rm = rm
        self.evicted: list[int] = []

    def open(self, n: int) -> ConnectionScope:
        return self.rm.open_connection(
            "inbound", addr("127.0.0.1", 1000 + n), on_evict=lambda: self.evicted.append(n)
        )


def pool(size: int) -> Pool:
    return Pool(manager(transient=ScopeLimit(connections_inbound=size)))


def test_full_pool_evicts_oldest_silent_first() -> None:
    p = pool(3)
    scopes = [p.open(n) for n in range(3)]
    scopes[0].mark_active()  # the oldest has sent a byte: it is kept
    p.open(3)
    assert p.evicted == [1]
    assert scopes[1].closed and not scopes[1].pending
    p.open(4)
    assert p.evicted == [1, 2]
    p.open(5)  # 3 is the oldest silent one now
    assert p.evicted == [1, 2, 3]
    stats = p.rm.statistics()
    assert stats.evictions == 3
    assert stats.pending == 3
    assert stats.usage["transient"].connections_inbound == 3
    assert stats.usage["system"].connections_inbound == 3


def test_all_active_refuses_newcomer() -> None:
    p = pool(2)
    for scope in (p.open(0), p.open(1)):
        scope.mark_active()
    with pytest.raises(ResourceLimitExceeded) as info:
        p.open(2)
    assert p.evicted == []
    assert (info.value.scope, info.value.resource) == ("transient", "connections_inbound")
    assert str(info.value) == "pending-upgrade pool at inbound connection limit (2)"
    assert p.rm.statistics().refusals == {"transient/connections_inbound": 1}


def test_upgraded_connections_leave_the_pool() -> None:
    p = pool(2)
    first, second = p.open(0), p.open(1)
    first.set_peer(peer())
    p.open(2)  # room freed by the upgrade: nobody evicted
    assert p.evicted == []
    assert not first.pending and second.pending
    p.open(3)
    assert p.evicted == [1]  # the upgraded one is no candidate


def test_connections_without_callback_are_not_evicted() -> None:
    rm = manager(transient=ScopeLimit(connections_inbound=1))
    rm.open_connection("inbound", addr("127.0.0.1"))
    with pytest.raises(ResourceLimitExceeded):
        rm.open_connection("inbound", addr("127.0.0.1"), on_evict=lambda: None)


def test_no_eviction_when_another_limit_refuses() -> None:
    rm = manager(
        transient=ScopeLimit(connections_inbound=1), system=ScopeLimit(connections_inbound=1)
    )
    evicted: list[str] = []
    rm.open_connection("inbound", addr("127.0.0.1"), on_evict=lambda: evicted.append("a"))
    with pytest.raises(ResourceLimitExceeded) as info:
        rm.open_connection("inbound", addr("127.0.0.1"))
    assert info.value.scope == "system"
    assert evicted == []


def test_outbound_does_not_evict_or_join_pool() -> None:
    rm = manager(transient=ScopeLimit(connections_inbound=1, connections_outbound=1))
    evicted: list[str] = []
    rm.open_connection("inbound", addr("127.0.0.1"), on_evict=lambda: evicted.append("in"))
    out = rm.open_connection("outbound", addr("127.0.0.1"))
    assert not out.pending
    with pytest.raises(ResourceLimitExceeded):
        rm.open_connection("outbound", addr("127.0.0.1"))
    assert evicted == []
    assert rm.statistics().pending == 1


def test_flood_of_silent_connections_never_locks_out_an_active_one() -> None:
    p = pool(8)
    honest = p.open(-1)
    honest.mark_active()
    for n in range(1000):
        p.open(n)
    assert not honest.closed
    assert len(p.evicted) == 1000 - 7
    assert p.evicted == sorted(p.evicted)  # always the oldest first


def test_upgraded_connection_drops_its_eviction_callback() -> None:
    # The callback holds the upgrade's cancel scope: nothing should keep it once the
    # connection can no longer be evicted.
    rm = manager(transient=ScopeLimit(connections_inbound=4))
    scope = rm.open_connection("inbound", addr("127.0.0.1"), on_evict=lambda: None)
    assert scope.on_evict is not None
    scope.set_peer(peer())
    assert scope.on_evict is None
