"""Sans-IO link model of the simulated network: when does a write of ``n`` bytes arrive, given
latency (fixed or drawn from a distribution), bandwidth (serialisation per direction) and loss
(seen by a reliable stream as retransmission delay, or a reset after too many losses; a
datagram is simply lost)."""

from __future__ import annotations

import math
import random

import attrs

__all__ = ["Latency", "LinkDirection", "LinkSpec"]


@attrs.frozen(kw_only=True)
class Latency:
    """One-way latency in seconds: ``fixed`` (``a``), ``uniform`` (``a``..``b``), ``normal``
    (mean ``a``, deviation ``b``, clipped at 0) or ``lognormal`` (median ``a``, sigma ``b``)."""

    kind: str = "fixed"
    a: float = 0.01
    b: float = 0.0

    def __attrs_post_init__(self) -> None:
        if self.kind not in ("fixed", "uniform", "normal", "lognormal"):
            raise ValueError(f"unknown latency distribution {self.kind!r}")
        if self.a < 0 or self.b < 0:
            raise ValueError("latency parameters must not be negative")

    def sample(self, rng: random.Random) -> float:
        """One draw, in seconds, never negative."""
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, max(self.a, self.b))
        if self.kind == "normal":
            return max(0.0, rng.gauss(self.a, self.b))
        return self.a * math.exp(rng.gauss(0.0, self.b))


@attrs.frozen(kw_only=True)
class LinkSpec:
    """Properties of the path between two nodes (both directions alike).

    Attributes:
        latency: one-way delay.
        bandwidth: bytes per second each direction serialises, or ``None`` for unlimited.
        loss: probability that one write is lost and must be retransmitted (0 <= loss < 1).
        rto: the first retransmission timeout in seconds; it doubles per consecutive loss.
        max_retransmits: consecutive losses of one write after which the connection resets
            (as TCP gives up).
    """

    latency: Latency = Latency()
    bandwidth: float | None = None
    loss: float = 0.0
    rto: float = 0.2
    max_retransmits: int = 6

    def __attrs_post_init__(self) -> None:
        if not 0.0 <= self.loss < 1.0:
            raise ValueError("loss must be in [0, 1)")
        if self.bandwidth is not None and self.bandwidth <= 0:
            raise ValueError("bandwidth must be positive")


class LinkDirection:
    """The state of one direction of one connection: when the sender's "wire" is free again
    and when the last write arrived (arrivals stay in order, as on a reliable stream)."""

    def __init__(self, spec: LinkSpec) -> None:
        self.spec = spec
        self._wire_free_at = 0.0
        self._last_arrival = 0.0

    def schedule(self, now: float, nbytes: int, rng: random.Random) -> float | None:
        """The virtual time at which a write of ``nbytes`` sent at ``now`` arrives, or ``None``
        if it is lost more than ``max_retransmits`` times in a row (the connection resets)."""
        spec = self.spec
        start = max(now, self._wire_free_at)
        if spec.bandwidth is not None:
            start += nbytes / spec.bandwidth
        self._wire_free_at = start
        delay = spec.latency.sample(rng)
        if spec.loss > 0.0:
            losses = 0
            while rng.random() < spec.loss:
                losses += 1
                if losses > spec.max_retransmits:
                    return None
                delay += spec.rto * (2 ** (losses - 1))
        arrival = max(start + delay, self._last_arrival)
        self._last_arrival = arrival
        return arrival

    def schedule_datagram(
        self, now: float, nbytes: int, rng: random.Random, *, max_backlog: int
    ) -> float | None:
        """The virtual time at which a datagram of ``nbytes`` sent at ``now`` arrives, or
        ``None`` if it is lost: by the link's ``loss``, or because more than ``max_backlog``
        bytes already wait for the wire (a full router queue). Datagrams may overtake each
        other when latency varies; they do not wait for lost ones."""
        spec = self.spec
        start = max(now, self._wire_free_at)
        if spec.bandwidth is not None:
            if (start - now) * spec.bandwidth > max_backlog:
                return None
            start += nbytes / spec.bandwidth
        self._wire_free_at = start
        delay = spec.latency.sample(rng)
        if spec.loss > 0.0 and rng.random() < spec.loss:
            return None
        return start + delay
