from __future__ import annotations

import pytest

from p2pstack.errors import ResourceLimitExceeded
from p2pstack.identity import PeerId
from p2pstack.resources import ConnectionScope, LimitedResourceManager, ScopeLimit
from tests.p2pstack.resources.helpers import addr, manager, peer

PING = "/ipfs/ping/1.0.0"


def connected(rm: LimitedResourceManager, who: PeerId | None = None) -> ConnectionScope:
    scope = rm.open_connection("outbound", addr("10.0.0.1"))
    scope.set_peer(who or peer())
    return scope


def test_streams_per_connection() -> None:
    rm = manager(connection=ScopeLimit(streams_inbound=2, streams=3))
    conn = connected(rm)
    first = conn.open_stream("inbound")
    conn.open_stream("inbound")
    with pytest.raises(ResourceLimitExceeded) as info:
        conn.open_stream("inbound")
    assert str(info.value) == "connection at inbound stream limit (2)"
    conn.open_stream("outbound")
    with pytest.raises(ResourceLimitExceeded) as info:
        conn.open_stream("outbound")
    assert info.value.resource == "streams"
    first.done()
    first.done()
    conn.open_stream("inbound")
    connected(rm).open_stream("inbound")  # another connection has its own budget


def test_streams_per_peer_over_its_connections() -> None:
    rm = manager(peer=ScopeLimit(streams_inbound=2))
    who = peer()
    a, b = connected(rm, who), connected(rm, who)
    a.open_stream("inbound")
    b.open_stream("inbound")
    with pytest.raises(ResourceLimitExceeded) as info:
        a.open_stream("inbound")
    assert (info.value.scope, str(info.value)) == ("peer", "peer at inbound stream limit (2)")
    connected(rm).open_stream("inbound")


def test_protocol_total_and_per_peer() -> None:
    rm = manager(
        protocol=ScopeLimit(streams_inbound=3),
        protocol_peer=ScopeLimit(streams_inbound=2),
    )
    greedy, other = connected(rm), connected(rm)
    for _ in range(2):
        greedy.open_stream("inbound").set_protocol(PING)
    extra = greedy.open_stream("inbound")
    with pytest.raises(ResourceLimitExceeded) as info:
        extra.set_protocol(PING)
    assert info.value.scope == "protocol-peer"
    assert str(info.value) == f"protocol {PING} for this peer at inbound stream limit (2)"
    assert extra.protocol is None
    extra.set_protocol("/other/1.0.0")  # other protocols are not affected
    other.open_stream("inbound").set_protocol(PING)  # another peer can still ping
    with pytest.raises(ResourceLimitExceeded) as info:
        other.open_stream("inbound").set_protocol(PING)
    assert info.value.scope == "protocol"
    stats = rm.statistics()
    assert stats.protocols[PING].streams_inbound == 3
    assert stats.refusals == {"protocol-peer/streams_inbound": 1, "protocol/streams_inbound": 1}


def test_set_protocol_limits_applies_to_live_scopes() -> None:
    rm = manager()
    conn = connected(rm)
    conn.open_stream("inbound").set_protocol(PING)
    rm.set_protocol_limits(PING, per_peer=ScopeLimit(streams_inbound=1))
    with pytest.raises(ResourceLimitExceeded):
        conn.open_stream("inbound").set_protocol(PING)
    rm.set_protocol_limits(PING, total=ScopeLimit(streams=1))
    with pytest.raises(ResourceLimitExceeded) as info:
        connected(rm).open_stream("outbound").set_protocol(PING)
    assert info.value.scope == "protocol"
    assert dict(rm.limits.protocols) == {PING: ScopeLimit(streams=1)}
    assert dict(rm.limits.protocol_peers) == {}
    rm.set_protocol_limits(PING)  # back to the defaults (unlimited here)
    conn.open_stream("inbound").set_protocol(PING)
    assert rm.statistics().protocols[PING].streams_inbound == 2


def test_service_limits() -> None:
    rm = manager(service_peer=ScopeLimit(streams_outbound=1), services={"kad": ScopeLimit()})
    conn = connected(rm)
    conn.open_stream("outbound").set_service("kad")
    with pytest.raises(ResourceLimitExceeded) as info:
        conn.open_stream("outbound").set_service("kad")
    assert str(info.value) == "service kad for this peer at outbound stream limit (1)"
    stream = conn.open_stream("inbound")
    stream.set_service("kad")
    with pytest.raises(ValueError):
        stream.set_service("kad")
    assert rm.statistics().services["kad"].streams == 2


def test_memory_per_stream_connection_peer_system() -> None:
    mib = 1 << 20
    rm = manager(
        stream=ScopeLimit(memory=4 * mib),
        connection=ScopeLimit(memory=6 * mib),
        peer=ScopeLimit(memory=8 * mib),
        system=ScopeLimit(memory=10 * mib),
    )
    who = peer()
    conn = connected(rm, who)
    s1 = conn.open_stream("inbound")
    s1.reserve_memory(4 * mib)
    with pytest.raises(ResourceLimitExceeded) as info:
        s1.reserve_memory(1)
    assert (info.value.scope, info.value.resource) == ("stream", "memory")
    s2 = conn.open_stream("inbound")
    s2.reserve_memory(2 * mib)
    with pytest.raises(ResourceLimitExceeded) as info:
        s2.reserve_memory(1)
    assert info.value.scope == "connection"
    conn2 = connected(rm, who)
    conn2.reserve_memory(2 * mib)
    with pytest.raises(ResourceLimitExceeded) as info:
        conn2.reserve_memory(1)
    assert info.value.scope == "peer"
    connected(rm).reserve_memory(2 * mib)
    with pytest.raises(ResourceLimitExceeded) as info:
        connected(rm).reserve_memory(1)
    assert str(info.value) == "system at memory limit (10485760)"
    s1.release_memory(mib)
    s1.reserve_memory(mib)
    assert rm.statistics().usage["system"].memory == 10 * mib
    conn.done()  # releases its streams and their memory
    assert s1.closed and s2.closed
    assert rm.statistics().usage["system"].memory == 4 * mib
    assert rm.statistics().usage["stream"].memory == 0


def test_memory_moves_with_protocol_and_peer() -> None:
    rm = manager(protocol=ScopeLimit(memory=100))
    conn = rm.open_connection("inbound", addr("10.0.0.1"))
    conn.reserve_memory(10)
    assert rm.statistics().usage["transient"].memory == 10
    conn.set_peer(peer())
    stats = rm.statistics()
    assert (stats.usage["transient"].memory, stats.usage["peer"].memory) == (0, 10)
    stream = conn.open_stream("outbound")
    stream.reserve_memory(60)
    stream.set_protocol(PING)
    assert rm.statistics().protocols[PING].memory == 60
    with pytest.raises(ResourceLimitExceeded):
        stream.reserve_memory(41)
    stream.release_memory(1000)  # capped at what it holds
    stats = rm.statistics()
    assert stats.usage["system"].memory == 10
    assert stats.usage["connection"].memory == 10


def test_bad_memory_amounts_and_finished_scopes() -> None:
    rm = manager()
    conn = connected(rm)
    with pytest.raises(ValueError):
        conn.reserve_memory(-1)
    conn.done()
    with pytest.raises(ValueError):
        conn.open_stream("inbound")


def test_statistics_usage_by_kind() -> None:
    rm = manager()
    conn = connected(rm)
    conn.open_stream("inbound").set_protocol(PING)
    conn.open_stream("outbound")
    stats = rm.statistics()
    for kind in ("system", "peer", "connection"):
        assert stats.usage[kind].streams == 2
    assert stats.usage["stream"].streams_inbound == 1
    assert stats.usage["connection"].connections_outbound == 1
    assert stats.usage["protocol"].streams == 1
    conn.done()
    stats = rm.statistics()
    assert stats.usage["system"].streams == 0
    assert stats.protocols == {}
    assert stats.peers == 0
