"""Per-peer admission of perf requests: concurrency, token-bucket rate, bounded state."""

from __future__ import annotations

import pytest

from protocols.perf._limits import PeerAdmission


def test_concurrency_per_peer() -> None:
    adm = PeerAdmission(per_peer=2, per_minute=None)
    assert adm.admit("a", 0) is None
    assert adm.admit("a", 0) is None
    assert adm.admit("a", 0) == "busy"
    assert adm.admit("b", 0) is None  # another peer is not affected
    adm.done("a")
    assert adm.admit("a", 0) is None


def test_rate_burst_then_refill() -> None:
    adm = PeerAdmission(per_peer=100, per_minute=60)  # burst 10, then 1 per second
    for _ in range(10):
        assert adm.admit("a", 0.0) is None
        adm.done("a")
    assert adm.admit("a", 0.0) == "rate"
    assert adm.admit("a", 0.5) == "rate"
    assert adm.admit("a", 1.0) is None
    adm.done("a")
    assert adm.admit("b", 1.0) is None


def test_state_is_bounded_by_active_peers() -> None:
    adm = PeerAdmission(per_peer=1, per_minute=60)
    for i in range(10_000):
        # Peers come once each, 20 s apart: older buckets are full again and can be dropped.
        assert adm.admit(i, float(i) * 20) is None
        adm.done(i)
    assert adm.tracked_peers() < 200


@pytest.mark.parametrize(("per_peer", "per_minute"), [(0, 1.0), (1, 0.0), (1, -5.0)])
def test_bad_limits(per_peer: int, per_minute: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        PeerAdmission(per_peer=per_peer, per_minute=per_minute)
