"""The sans-IO link model: latency distributions, bandwidth, ordering, loss."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transports.simnet import Latency, LinkDirection, LinkSpec


def test_fixed_latency_and_bandwidth_serialise_writes() -> None:
    link = LinkDirection(LinkSpec(latency=Latency(a=0.010), bandwidth=1000.0))
    rng = random.Random(0)
    # 500 bytes at 1000 B/s take 0.5 s on the wire, then 10 ms of latency.
    assert link.schedule(0.0, 500, rng) == pytest.approx(0.510)
    # The wire is busy until 0.5 s: the next write starts then.
    assert link.schedule(0.1, 500, rng) == pytest.approx(1.010)
    assert link.schedule(5.0, 0, rng) == pytest.approx(5.010)


def test_arrivals_stay_in_order_with_jitter() -> None:
    link = LinkDirection(LinkSpec(latency=Latency(kind="uniform", a=0.0, b=1.0)))
    rng = random.Random(1)
    arrivals = [link.schedule(i * 0.01, 10, rng) for i in range(200)]
    assert arrivals == sorted(arrivals)  # type: ignore[type-var]  # no None without loss


def test_loss_adds_retransmission_delay_then_resets() -> None:
    spec = LinkSpec(latency=Latency(a=0.01), loss=0.5, rto=0.2, max_retransmits=3)
    rng = random.Random(3)
    results = [LinkDirection(spec).schedule(0.0, 1, rng) for _ in range(400)]
    delays = {round(r, 6) for r in results if r is not None}
    # 0, 1, 2 or 3 losses: +0, +0.2, +0.6, +1.4 s
    assert delays == {0.01, 0.21, 0.61, 1.41}
    assert None in results  # a fourth consecutive loss resets the connection


def test_invalid_specs_are_refused() -> None:
    with pytest.raises(ValueError):
        LinkSpec(loss=1.0)
    with pytest.raises(ValueError):
        LinkSpec(bandwidth=0.0)
    with pytest.raises(ValueError):
        Latency(kind="pareto")


@given(
    kind=st.sampled_from(["fixed", "uniform", "normal", "lognormal"]),
    a=st.floats(0, 1),
    b=st.floats(0, 1),
    seed=st.integers(0, 2**32),
)
def test_latency_samples_are_never_negative(kind: str, a: float, b: float, seed: int) -> None:
    assert Latency(kind=kind, a=a, b=b).sample(random.Random(seed)) >= 0.0
