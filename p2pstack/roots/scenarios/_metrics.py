"""The runner's own measurements of a simulated run (connections and nodes up over time, dial
times and failures, faults); workloads keep their own (``_workload``)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["Metrics"]


class Metrics:
    """Time series of one run. Bounded by the run itself: one sample per ``sample_interval``
    and one entry per dial and fault."""

    def __init__(self) -> None:
        #: (virtual time, live connections, nodes up), one per sample.
        self.samples: list[tuple[float, int, int]] = []
        self.dial_failures: list[float] = []
        #: Virtual seconds from ``connect`` to an upgraded connection, one per successful dial.
        self.dial_seconds: list[float] = []
        self.faults: list[tuple[float, str]] = []

    def sample(self, t: float, connections: int, up: int) -> None:
        """Record a sample."""
        self.samples.append((t, connections, up))

    def dialed(self, seconds: float) -> None:
        """Record a successful dial and how long it took (transport, security and muxer)."""
        self.dial_seconds.append(seconds)

    def dial_failed(self, t: float) -> None:
        """Record a failed dial."""
        self.dial_failures.append(t)

    def fault(self, t: float, action: str) -> None:
        """Record an applied timeline action."""
        self.faults.append((t, action))

    def connections_at(self, t: float) -> int:
        """Live connections at the last sample at or before ``t`` (0 before the first)."""
        value = 0
        for when, conns, _ in self.samples:
            if when > t:
                break
            value = conns
        return value

    def values(self) -> Mapping[str, int | float | None]:
        """The ``metrics.json`` entries of these series."""
        conns = [c for _, c, _ in self.samples] or [0]
        ups = [u for _, _, u in self.samples] or [0]
        dials = sorted(self.dial_seconds)

        def ms(p: float) -> float | None:
            # Nearest rank; rounded to 1 ns like the trace, so equal runs give equal digits.
            return (
                round(dials[min(len(dials) - 1, int(p * len(dials)))] * 1000, 6) if dials else None
            )

        return {
            "connections_final": conns[-1],
            "connections_min": min(conns),
            "connections_max": max(conns),
            "nodes_up_final": ups[-1],
            "dials_ok": len(dials),
            "dial_p50_ms": ms(0.5),
            "dial_p95_ms": ms(0.95),
            "dial_max_ms": ms(1.0),
            "dial_failures": len(self.dial_failures),
            "faults_applied": len(self.faults),
        }

    def summary(self) -> list[tuple[str, str]]:
        """Rows of the summary table (name, value)."""
        v = self.values()
        return [
            ("connections (final)", str(v["connections_final"])),
            ("connections (min / max)", f"{v['connections_min']} / {v['connections_max']}"),
            ("dials ok / failed", f"{v['dials_ok']} / {v['dial_failures']}"),
            ("dial time p50 / p95 / max", " / ".join(_ms(v[k]) for k in _DIAL_KEYS)),
            ("faults applied", str(v["faults_applied"])),
        ]


_DIAL_KEYS = ("dial_p50_ms", "dial_p95_ms", "dial_max_ms")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
