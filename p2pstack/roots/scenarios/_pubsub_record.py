"""What a pubsub simulation measures (docs/pubsub.md, "Simulation"): every publish, every first
delivery with its latency and hop count, duplicates, bytes and RPC messages sent per node, and
mesh degree samples over time; and the flat ``metrics.json`` values made from them."""

from __future__ import annotations

import math
from collections.abc import Sequence

from p2pstack.roots.scenarios._workload import MetricValue

__all__ = ["DeliveryRecorder", "MeshSample", "percentile"]


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile of sorted values.

    Args:
        sorted_values: the values, ascending.
        p: the fraction, 0 < p <= 1.

    Returns:
        The value, or None for no values.
    """
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(p * len(sorted_values)) - 1))]


class MeshSample:
    """The mesh degree of every running node at one time.

    Attributes:
        t: the virtual time.
        mean, low, high: mean, 5th and 95th percentile of the degrees.
        minimum, maximum: the extremes.
    """

    __slots__ = ("high", "low", "maximum", "mean", "minimum", "t")

    def __init__(self, t: float, degrees: Sequence[int]) -> None:
        ordered = sorted(degrees)
        self.t = t
        self.mean = sum(ordered) / len(ordered) if ordered else 0.0
        self.low = percentile(ordered, 0.05) or 0
        self.high = percentile(ordered, 0.95) or 0
        self.minimum = ordered[0] if ordered else 0
        self.maximum = ordered[-1] if ordered else 0


class DeliveryRecorder:
    """Publishes, first deliveries, duplicates, bytes and mesh samples of one overlay.

    Args:
        nodes: the number of nodes (for per-node figures).
    """

    def __init__(self, nodes: int) -> None:
        self.nodes = nodes
        #: message ID -> (publish time, publisher, receivers expected).
        self.messages: dict[bytes, tuple[float, int, int]] = {}
        #: message ID -> {node: (delivery time, hops)}.
        self.deliveries: dict[bytes, dict[int, tuple[float, int]]] = {}
        self.duplicate_count = 0
        self.bytes_sent: dict[int, int] = {}
        self.rpcs_sent = 0
        self.messages_sent = 0
        self.mesh: list[MeshSample] = []

    # -- recording --------------------------------------------------------------------------------

    def published(self, msg_id: bytes, publisher: int, t: float, receivers: int) -> None:
        """A message was published by ``publisher``; ``receivers`` nodes should get it."""
        self.messages[msg_id] = (t, publisher, receivers)
        self.deliveries[msg_id] = {}

    def delivered(self, node: int, msg_id: bytes, t: float, hops: int) -> None:
        """``node`` got ``msg_id`` for the first time at ``t``, ``hops`` links from its
        publisher (messages nobody recorded as published are left out)."""
        got = self.deliveries.get(msg_id)
        if got is not None and node not in got:
            got[node] = (t, hops)

    def duplicates(self, node: int, count: int) -> None:
        """``node`` received ``count`` copies of messages it had already seen."""
        self.duplicate_count += count

    def sent(self, node: int, nbytes: int, messages: int) -> None:
        """``node`` sent one RPC of ``nbytes`` carrying ``messages`` messages."""
        self.bytes_sent[node] = self.bytes_sent.get(node, 0) + nbytes
        self.rpcs_sent += 1
        self.messages_sent += messages

    def sample_mesh(self, t: float, degrees: Sequence[int]) -> None:
        """Record the mesh degrees of every running node at ``t``."""
        self.mesh.append(MeshSample(t, degrees))

    # -- results ----------------------------------------------------------------------------------

    def latencies_ms(self) -> list[float]:
        """Every delivery's latency in milliseconds, ascending."""
        out = [
            (t - self.messages[m][0]) * 1000.0
            for m, got in self.deliveries.items()
            for t, _ in got.values()
        ]
        return sorted(out)

    def hop_counts(self) -> list[int]:
        """Every delivery's hop count, ascending."""
        return sorted(h for got in self.deliveries.values() for _, h in got.values())

    def delivered_count(self) -> int:
        """First deliveries of published messages."""
        return sum(len(got) for got in self.deliveries.values())

    def metrics(self, prefix: str = "") -> dict[str, MetricValue]:
        """The flat ``metrics.json`` values (keys prefixed by ``prefix``).

        Args:
            prefix: ``""`` or e.g. ``"floodsub_"``.

        Returns:
            The values: messages, deliveries, delivery rate, latency and hop percentiles,
            duplicates per delivery, bytes per node, the last mesh degree sample.
        """
        lat = self.latencies_ms()
        hops = self.hop_counts()
        delivered = len(lat)
        expected = sum(r for _, _, r in self.messages.values())
        total_bytes = sum(self.bytes_sent.values())

        def ms(p: float) -> float | None:
            v = percentile(lat, p)
            return None if v is None else round(v, 3)

        values: dict[str, MetricValue] = {
            "messages_published": len(self.messages),
            "deliveries": delivered,
            "delivery_rate": round(delivered / expected, 6) if expected else None,
            "latency_p50_ms": ms(0.5),
            "latency_p90_ms": ms(0.9),
            "latency_p99_ms": ms(0.99),
            "latency_max_ms": ms(1.0),
            "hops_p50": percentile(hops, 0.5),
            "hops_p99": percentile(hops, 0.99),
            "hops_max": percentile(hops, 1.0),
            "hops_mean": round(sum(hops) / len(hops), 6) if hops else None,
            "duplicates": self.duplicate_count,
            "duplicates_per_delivery": round(self.duplicate_count / delivered, 6)
            if delivered
            else None,
            "rpcs_sent": self.rpcs_sent,
            "bytes_per_node": round(total_bytes / self.nodes, 3) if self.nodes else None,
            "bytes_per_delivery": round(total_bytes / delivered, 3) if delivered else None,
        }
        if self.mesh:
            last = self.mesh[-1]
            values.update(
                {
                    "mesh_degree_mean": round(last.mean, 6),
                    "mesh_degree_min": last.minimum,
                    "mesh_degree_max": last.maximum,
                }
            )
        return {f"{prefix}{k}": v for k, v in values.items()}
