"""The ``kad`` simulation workload: random closest-peer lookups on a joined DHT, measured
against an oracle of every live server: hops (next to ceil(log2 N) and the IPFS measurement),
success, k-closest recall, messages per lookup (docs/simulation.md, "Kademlia")."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import attrs

from p2pstack.roots.scenarios._kad import KadLookupsConfig, KadNodes
from p2pstack.roots.scenarios._kad_plots import plot_hops
from p2pstack.roots.scenarios._workload import (
    MetricValue,
    SimContext,
    WorkloadType,
    register_workload,
)
from protocols.kad import key_of

__all__ = ["IPFS_HOPS_P50", "IPFS_HOPS_P90", "KadLookupsWorkload", "LookupSample"]

#: The public IPFS DHT's measured lookup hops (~16k servers): median 4, 90% within 6.
IPFS_HOPS_P50 = 4
IPFS_HOPS_P90 = 6


@attrs.frozen
class LookupSample:
    """One measured lookup: when it started, hops, messages, whether it found the live server
    closest to the key, and the fraction of the true ``k`` closest it returned."""

    t: float
    hops: int
    messages: int
    found_closest: bool
    recall: float


class KadLookupsWorkload(KadNodes):
    """``kad``: random closest-peer lookups on a joined DHT; hops, messages, success."""

    def __init__(self, config: KadLookupsConfig, sim: SimContext) -> None:
        super().__init__(config, sim)
        self.samples: list[LookupSample] = []
        self.failed = 0

    async def run_node(self, index: int) -> None:
        if index != self.sim.node_indexes[0]:
            await super().run_node(index)
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.run_lookups, tg, 0)
            await super().run_node(index)

    async def run_lookups(self, tg: anyio.abc.TaskGroup, overlay: int) -> None:
        """Start the configured lookups at their times (each concurrently with the others)."""
        c, rng = self.cfg, self.rng.child(f"lookups/{overlay}")
        for j in range(c.lookups):
            await anyio.sleep(
                max(
                    0.0,
                    c.lookup_at + c.lookup_spread * j / max(1, c.lookups) - anyio.current_time(),
                )
            )
            nodes = self.joined(overlay)
            if nodes:
                tg.start_soon(self.lookup, rng.choice(nodes), rng.randbytes(32), overlay)

    async def lookup(self, index: int, key: bytes, overlay: int) -> None:
        """One lookup of ``key`` from node ``index``, judged against the oracle."""
        start = anyio.current_time()
        result = await self.on_node(
            index, lambda kad: kad.get_closest_peers(key), timeout=self.cfg.query_timeout + 5
        )
        if self.sim.ended:
            return
        if result is None:
            if index in self._hosts:
                self.failed += 1
                self.sim.trace.record("kad_lookup_failed", node=index)
            return
        nodes = self.closest_nodes(overlay, key_of(key), self.cfg.k, exclude=index)
        truth = [p for i in nodes if (p := self.peer_of(i)) is not None]
        found = {p.peer_id for p in result.closest}
        sample = LookupSample(
            t=start,
            hops=result.hops,
            messages=result.messages,
            found_closest=bool(truth) and truth[0] in found,
            recall=len(found.intersection(truth)) / len(truth) if truth else 1.0,
        )
        self.samples.append(sample)
        self.sim.trace.record(
            "kad_lookup",
            node=index,
            hops=sample.hops,
            msgs=sample.messages,
            ok=sample.found_closest,
        )

    # -- outputs ----------------------------------------------------------------------------------

    def hop_counts(self) -> dict[int, int]:
        """Lookups per hop count, every count from 0 to the largest seen."""
        top = max((s.hops for s in self.samples), default=0)
        counts = dict.fromkeys(range(top + 1), 0)
        for s in self.samples:
            counts[s.hops] += 1
        return counts

    def servers(self) -> int:
        """Servers in the (first) overlay, for ceil(log2 N)."""
        return sum(1 for i in self.sim.node_indexes if self.overlay_of(i) == 0)

    def metrics(self) -> Mapping[str, MetricValue]:
        hops = sorted(s.hops for s in self.samples)
        total = len(self.samples) + self.failed

        def pct(p: float) -> int | None:
            return hops[min(len(hops) - 1, math.ceil(p * len(hops)) - 1)] if hops else None

        values: dict[str, MetricValue] = {
            "kad_joins": self.joins,
            "kad_errors": sum(self.errors.values()),
            "lookups": total,
            "lookups_failed": self.failed,
            "lookup_hops_p50": pct(0.5),
            "lookup_hops_p90": pct(0.9),
            "lookup_hops_max": hops[-1] if hops else None,
            "lookup_hops_mean": round(sum(hops) / len(hops), 6) if hops else None,
            "lookup_hops_log2_n": math.ceil(math.log2(max(2, self.servers()))),
            "lookup_success_rate": round(sum(s.found_closest for s in self.samples) / total, 6)
            if total
            else None,
            "lookup_k_closest_recall": round(sum(s.recall for s in self.samples) / len(hops), 6)
            if hops
            else None,
            "messages_per_lookup": round(sum(s.messages for s in self.samples) / len(hops), 6)
            if hops
            else None,
        }
        values.update({f"lookup_hops_count_{h}": n for h, n in self.hop_counts().items()})
        return values

    def summary_rows(self) -> Sequence[tuple[str, str]]:
        m = self.metrics()
        return [
            ("kad joins / errors", f"{m['kad_joins']} / {m['kad_errors']}"),
            ("lookups (failed)", f"{m['lookups']} ({m['lookups_failed']})"),
            (
                "lookup hops p50 / p90 / max",
                f"{m['lookup_hops_p50']} / {m['lookup_hops_p90']} / {m['lookup_hops_max']}"
                f" (ceil(log2 N) = {m['lookup_hops_log2_n']};"
                f" IPFS ~16k servers: {IPFS_HOPS_P50} / {IPFS_HOPS_P90})",
            ),
            ("lookup hop counts", " ".join(f"{h}:{n}" for h, n in self.hop_counts().items())),
            ("lookup success (closest found)", str(m["lookup_success_rate"])),
            ("lookup k-closest recall", str(m["lookup_k_closest_recall"])),
            ("messages per lookup", str(m["messages_per_lookup"])),
        ]

    def plot(self, out_dir: Path, title: str) -> Sequence[Path]:
        counts = self.hop_counts()
        if not self.samples:
            return []
        log2n = math.ceil(math.log2(max(2, self.servers())))
        return [plot_hops(counts, log2n, out_dir / "kad-hops.png", f"{title}: lookup hops")]


register_workload(WorkloadType("kad", KadLookupsConfig, KadLookupsWorkload))
