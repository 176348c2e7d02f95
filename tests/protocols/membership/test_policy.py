from __future__ import annotations

import pytest

from protocols.membership import ConnectionPolicy, SwimCore
from tests.protocols.membership._net import make_core, peer


def joined(n: int) -> SwimCore:
    core = make_core(0)
    core.preload(0.0, [make_core(i).self_claim() for i in range(1, n)])
    return core


def test_ahead_is_the_next_probe_targets() -> None:
    core = joined(10)
    policy = ConnectionPolicy(lookahead=3)
    assert policy.ahead(core) == core.upcoming_probe_targets(3)
    assert len(policy.ahead(core)) == 3


def test_idle_connections_outside_the_ahead_set_close() -> None:
    core = joined(10)
    policy = ConnectionPolicy(lookahead=2, idle_timeout=5.0, max_connections=6)
    ahead = policy.ahead(core)
    others = [peer(i) for i in range(1, 10) if peer(i) not in ahead]
    policy.used(others[0], 0.0)
    policy.used(others[1], 4.0)
    connected = [*ahead, others[0], others[1]]
    assert policy.to_close(core, 6.0, connected) == [others[0]]
    assert policy.to_close(core, 6.0, [*ahead, others[1]]) == []
    assert policy.to_close(core, 9.5, [*ahead, others[1]]) == [others[1]]


def test_over_the_cap_the_least_recently_used_close_first() -> None:
    core = joined(12)
    policy = ConnectionPolicy(lookahead=2, idle_timeout=100.0, max_connections=4)
    ahead = policy.ahead(core)
    others = [peer(i) for i in range(1, 12) if peer(i) not in ahead][:4]
    for t, p in enumerate(others):
        policy.used(p, float(t))
    closed = policy.to_close(core, 5.0, [*ahead, *others])
    assert closed == others[:2]  # 2 ahead + the 2 most recently used remain
    for p in ahead:
        assert p not in closed


def test_policy_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="lookahead"):
        ConnectionPolicy(lookahead=5, max_connections=2)
    with pytest.raises(ValueError, match="idle_timeout"):
        ConnectionPolicy(idle_timeout=0)
