"""Measurements of a simulated run (connections over time, ping RTTs and failures, identify
completions, dial failures, faults) and the summary table built from them."""

from __future__ import annotations

__all__ = ["Metrics"]


class Metrics:
    """Time series of one run. Bounded by the run itself: one sample per ``sample_interval``
    and one entry per ping, dial failure, identify and fault."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int, int]] = []
        self.pings: list[tuple[float, float | None]] = []
        self.identifies: list[float] = []
        self.dial_failures: list[float] = []
        self.faults: list[tuple[float, str]] = []

    def sample(self, t: float, connections: int, up: int) -> None:
        self.samples.append((t, connections, up))

    def ping(self, t: float, rtt: float | None) -> None:
        self.pings.append((t, rtt))

    def identified(self, t: float) -> None:
        self.identifies.append(t)

    def dial_failed(self, t: float) -> None:
        self.dial_failures.append(t)

    def fault(self, t: float, action: str) -> None:
        self.faults.append((t, action))

    def pings_between(self, start: float, end: float) -> tuple[int, int]:
        """(succeeded, failed) pings started in ``[start, end)``."""
        window = [rtt for t, rtt in self.pings if start <= t < end]
        ok = sum(1 for rtt in window if rtt is not None)
        return ok, len(window) - ok

    def connections_at(self, t: float) -> int:
        """Live connections at the last sample at or before ``t`` (0 before the first)."""
        value = 0
        for when, conns, _ in self.samples:
            if when > t:
                break
            value = conns
        return value

    def summary(self) -> list[tuple[str, str]]:
        """Rows of the summary table (name, value)."""
        rtts = sorted(r for _, r in self.pings if r is not None)
        failed = sum(1 for _, r in self.pings if r is None)
        conns = [c for _, c, _ in self.samples] or [0]

        def pct(p: float) -> str:
            return f"{rtts[min(len(rtts) - 1, int(p * len(rtts)))] * 1000:.2f} ms" if rtts else "-"

        return [
            ("connections (final)", str(conns[-1])),
            ("connections (min / max)", f"{min(conns)} / {max(conns)}"),
            ("pings ok / failed", f"{len(rtts)} / {failed}"),
            ("ping RTT p50 / p95 / max", f"{pct(0.5)} / {pct(0.95)} / {pct(1.0)}"),
            ("identify completions", str(len(self.identifies))),
            ("dial failures", str(len(self.dial_failures))),
            ("faults applied", str(len(self.faults))),
        ]
