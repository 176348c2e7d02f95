from __future__ import annotations

import resource

import attrs
import pytest

from p2pstack.resources import (
    DEFAULT_SUBNET_LIMITS,
    LimitedResourceManager,
    Limits,
    ScopeLimit,
    SubnetLimit,
    fd_connection_budget,
)


def fake_rlimit(monkeypatch: pytest.MonkeyPatch, soft: int, hard: int = 4096) -> None:
    def getrlimit(which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return soft, hard

    monkeypatch.setattr(resource, "getrlimit", getrlimit)


def test_fd_budget_from_soft_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_rlimit(monkeypatch, 1024)
    assert fd_connection_budget() == 819 - 64
    assert fd_connection_budget(0.5, 12) == 500


def test_fd_budget_infinite_or_tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_rlimit(monkeypatch, resource.RLIM_INFINITY)
    assert fd_connection_budget() is None
    fake_rlimit(monkeypatch, 10)
    assert fd_connection_budget() == 1


def test_system_connections_capped_by_ulimit_1024(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_rlimit(monkeypatch, 1024)
    manager = LimitedResourceManager()
    assert manager.limits.system.connections == 755
    assert manager.statistics().limits.system.connections == 755


def test_configured_max_wins_when_lower(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_rlimit(monkeypatch, 1_000_000)
    limits = Limits(system=ScopeLimit(connections=100))
    assert LimitedResourceManager(limits).limits.system.connections == 100
    assert LimitedResourceManager().limits.system.connections == 4096


def test_fd_cap_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_rlimit(monkeypatch, 100)
    limits = attrs.evolve(Limits(), fd_fraction=None)
    assert LimitedResourceManager(limits).limits.system.connections == 4096


def test_go_subnet_defaults() -> None:
    assert {(s.version, s.prefix, s.connections) for s in DEFAULT_SUBNET_LIMITS} == {
        (4, 32, 8),
        (6, 56, 8),
        (6, 48, 64),
    }
    assert Limits().exempt_loopback


def test_subnet_limit_validation() -> None:
    with pytest.raises(ValueError):
        SubnetLimit(version=4, prefix=33, connections=1)
    with pytest.raises(ValueError):
        SubnetLimit(version=5, prefix=8, connections=1)


def test_overrides_are_frozen_and_looked_up() -> None:
    ping = ScopeLimit(streams_inbound=2)
    limits = Limits(protocols={"/ping": ping})
    assert limits.protocol_limit("/ping") is ping
    assert limits.protocol_limit("/other") is limits.protocol
    with pytest.raises(TypeError):
        limits.protocols["/x"] = ping  # type: ignore[index]
