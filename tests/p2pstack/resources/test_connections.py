from __future__ import annotations

import pytest
from multiaddr import Multiaddr

from p2pstack.errors import ConnectionDenied, P2PError, ResourceLimitExceeded
from p2pstack.resources import (
    DEFAULT_SUBNET_LIMITS,
    BasicConnectionGater,
    LimitedResourceManager,
    Limits,
    NullResourceManager,
    ScopeLimit,
    SubnetLimit,
)
from tests.p2pstack.resources.helpers import addr, manager, peer


def test_system_inbound_limit_at_boundary_and_release() -> None:
    rm = manager(system=ScopeLimit(connections_inbound=3))
    scopes = [rm.open_connection("inbound", addr(f"10.0.0.{i}")) for i in range(3)]
    with pytest.raises(ResourceLimitExceeded) as info:
        rm.open_connection("inbound", addr("10.0.0.9"))
    assert (info.value.scope, info.value.resource, info.value.limit) == (
        "system",
        "connections_inbound",
        3,
    )
    assert str(info.value) == "system at inbound connection limit (3)"
    assert isinstance(info.value, P2PError)
    # Outbound is another direction: not limited.
    rm.open_connection("outbound", addr("10.0.0.9")).done()
    scopes[0].done()
    scopes[0].done()  # idempotent: releases once
    rm.open_connection("inbound", addr("10.0.0.9"))
    with pytest.raises(ResourceLimitExceeded):
        rm.open_connection("inbound", addr("10.0.0.10"))


def test_outbound_cap_and_total() -> None:
    rm = manager(system=ScopeLimit(connections=3, connections_outbound=2))
    rm.open_connection("outbound", addr("1.1.1.1"))
    rm.open_connection("outbound", addr("1.1.1.2"))
    with pytest.raises(ResourceLimitExceeded) as info:
        rm.open_connection("outbound", addr("1.1.1.3"))
    assert info.value.resource == "connections_outbound"
    rm.open_connection("inbound", addr("1.1.1.4"))
    with pytest.raises(ResourceLimitExceeded) as info:
        rm.open_connection("inbound", addr("1.1.1.5"))
    assert info.value.resource == "connections"
    assert str(info.value) == "system at connection limit (3)"


def test_invalid_direction() -> None:
    with pytest.raises(ValueError):
        manager().open_connection("sideways", addr("1.1.1.1"))  # type: ignore[arg-type]


def test_per_peer_connection_limit() -> None:
    rm = manager(peer=ScopeLimit(connections=2))
    p = peer()
    for i in range(2):
        rm.open_connection("outbound", addr(f"1.1.1.{i}")).set_peer(p)
    third = rm.open_connection("inbound", addr("1.1.1.9"))
    with pytest.raises(ResourceLimitExceeded) as info:
        third.set_peer(p)
    assert str(info.value) == "peer at connection limit (2)"
    assert (info.value.scope, info.value.resource) == ("peer", "connections")
    # Another peer is not affected; the refused scope is still usable and releasable.
    third.set_peer(peer())
    assert rm.statistics().peers == 2
    with pytest.raises(ValueError):
        third.set_peer(peer())


def test_set_peer_moves_out_of_transient() -> None:
    rm = manager()
    scope = rm.open_connection("inbound", addr("1.1.1.1"))
    assert scope.pending
    assert rm.statistics().usage["transient"].connections_inbound == 1
    scope.set_peer(peer())
    stats = rm.statistics()
    assert not scope.pending
    assert stats.usage["transient"].connections == 0
    assert stats.usage["peer"].connections_inbound == 1
    assert stats.usage["system"].connections_inbound == 1
    scope.done()
    stats = rm.statistics()
    assert stats.usage["system"].connections == 0
    assert stats.peers == 0


def many(rm: LimitedResourceManager, ip: str, count: int) -> None:
    for port in range(count):
        rm.open_connection("inbound", addr(ip, 1000 + port))


def test_ipv4_slash32_limit() -> None:
    rm = manager(subnets=DEFAULT_SUBNET_LIMITS)
    many(rm, "203.0.113.7", 8)
    with pytest.raises(ResourceLimitExceeded) as info:
        rm.open_connection("inbound", addr("203.0.113.7"))
    assert str(info.value) == "too many connections from 203.0.113.7/32 (8)"
    assert (info.value.scope, info.value.resource, info.value.limit) == ("ip", "connections", 8)
    rm.open_connection("inbound", addr("203.0.113.8"))  # the neighbour has its own /32
    rm.open_connection("outbound", addr("203.0.113.7"))  # only inbound is counted per source


def test_ipv6_slash56_and_slash48() -> None:
    rm = manager(subnets=DEFAULT_SUBNET_LIMITS)
    # 8 per /56: addresses in 2001:db8:0:0000::/56 all share one.
    for i in range(8):
        rm.open_connection("inbound", addr(f"2001:db8:0:{i:x}::1"))
    with pytest.raises(ResourceLimitExceeded) as info:
        rm.open_connection("inbound", addr("2001:db8:0:ff::2"))
    assert "2001:db8::/56" in str(info.value)
    # 64 per /48: eight /56s of 8 each fill the /48 (one is full already).
    for net in range(1, 8):
        for i in range(8):
            rm.open_connection("inbound", addr(f"2001:db8:0:{net:x}{i:02x}::1"))
    with pytest.raises(ResourceLimitExceeded) as info:
        rm.open_connection("inbound", addr("2001:db8:0:900::1"))
    assert "2001:db8::/48 (64)" in str(info.value)
    rm.open_connection("inbound", addr("2001:db8:1::1"))  # another /48


def test_failed_open_counts_nothing() -> None:
    rm = manager(subnets=DEFAULT_SUBNET_LIMITS, system=ScopeLimit(connections_inbound=1))
    rm.open_connection("inbound", addr("2001:db8::1"))
    with pytest.raises(ResourceLimitExceeded):
        rm.open_connection("inbound", addr("2001:db9::1"))
    stats = rm.statistics()
    assert stats.usage["system"].connections == 1
    assert stats.refusals == {"system/connections_inbound": 1}
    assert len(rm._tables["ip"]) == 2  # the refused source left no empty accounts behind


def test_loopback_exempt_by_default_and_configurable() -> None:
    rm = manager(subnets=DEFAULT_SUBNET_LIMITS)
    many(rm, "127.0.1.5", 20)
    many(rm, "::1", 20)
    strict = manager(subnets=DEFAULT_SUBNET_LIMITS, exempt_loopback=False)
    many(strict, "127.0.1.5", 8)
    with pytest.raises(ResourceLimitExceeded) as info:
        strict.open_connection("inbound", addr("127.0.1.5"))
    assert str(info.value) == "too many connections from 127.0.1.5/32 (8)"
    strict.open_connection("inbound", addr("127.0.1.6"))


def test_allow_list_exempt_from_per_ip_limits() -> None:
    gater = BasicConnectionGater(allow=["198.51.100.0/24"])
    limits = Limits(subnets=(SubnetLimit(version=4, prefix=32, connections=1),))
    rm = LimitedResourceManager(limits, gater=gater)
    many(rm, "198.51.100.1", 5)
    rm.open_connection("inbound", addr("192.0.2.1"))
    with pytest.raises(ResourceLimitExceeded):
        rm.open_connection("inbound", addr("192.0.2.1"))


def test_deny_list_and_peer_ban() -> None:
    gater = BasicConnectionGater(deny=["192.0.2.0/24"])
    rm = LimitedResourceManager(Limits(), gater=gater)
    with pytest.raises(ConnectionDenied) as info:
        rm.open_connection("outbound", addr("192.0.2.44"))
    assert isinstance(info.value, ResourceLimitExceeded)
    assert (info.value.scope, info.value.resource) == ("gater", "address")
    assert "192.0.2.0/24" in str(info.value)
    banned = peer()
    gater.ban_peer(banned)
    scope = rm.open_connection("inbound", addr("192.0.3.1"))
    with pytest.raises(ConnectionDenied, match="banned"):
        scope.set_peer(banned)
    scope.done()
    assert rm.statistics().refusals == {"gater/address": 1, "gater/peer": 1}
    assert rm.statistics().usage["system"].connections == 0


def test_memory_addresses_have_no_ip_limit() -> None:
    rm = manager(subnets=(SubnetLimit(version=4, prefix=0, connections=1),))
    for _ in range(3):
        rm.open_connection("inbound", Multiaddr("/memory/7"))


def test_null_manager_refuses_nothing_but_counts() -> None:
    rm = NullResourceManager()
    p = peer()
    for i in range(300):
        rm.open_connection("inbound", addr("203.0.113.1", i)).set_peer(p)
    stats = rm.statistics()
    assert stats.usage["system"].connections_inbound == 300
    assert stats.usage["peer"].connections_inbound == 300
    assert rm.statistics().refusals == {}
