"""The ``kad_churn`` workload: records are put into the DHT, most nodes are then replaced by new
peers (the scenario's ``replace`` timeline action); whether each record is still held by one of
the k live servers closest to its key is watched over time, and every record is fetched once at
the end, **with and without republish** in one run: odd nodes form a DHT that
republishes records, even nodes an otherwise identical DHT (its own protocol ID) that never
does, so both see the same churn schedule (docs/simulation.md, "Kademlia").

Without republish a record survives only while one of the ``k`` peers it was stored at does:
if a fraction ``f`` of the nodes is replaced, the model predicts ``1 - f**k`` of the records
survive (87.8% for k = 20 and f = 0.9); republish copies them onto the newcomers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import attrs

from p2pstack.roots.scenarios._kad import KadLookupsConfig
from p2pstack.roots.scenarios._kad_lookups import KadLookupsWorkload
from p2pstack.roots.scenarios._kad_plots import plot_retrievability
from p2pstack.roots.scenarios._workload import (
    MetricValue,
    NodeStarted,
    SimContext,
    WorkloadType,
    register_workload,
)
from protocols.kad import PROTOCOL_ID, Kad, KadConfig, key_of

__all__ = ["NO_REPUBLISH_PROTOCOL", "KadChurnConfig", "KadChurnWorkload"]

#: The protocol ID of the DHT without republish (it must not mix with the other one).
NO_REPUBLISH_PROTOCOL = "/sim/kad-no-republish/1.0.0"
#: Overlay numbers.
REPUBLISH, NO_REPUBLISH = 0, 1


@attrs.frozen(kw_only=True)
class KadChurnConfig(KadLookupsConfig):
    """``[kad_churn]``: the ``[kad]`` settings (join, lookups) plus records and checks.

    ``records`` records per DHT are put by ``publishers``: DHT clients (a server would keep
    its own copy reachable) that the scenario should not replace, standing for long-lived
    publishers. The puts are spread over ``put_spread`` seconds
    from ``put_at``. The republishing DHT republishes every ``republish_interval`` seconds;
    both keep records ``record_ttl`` seconds. Every ``probe_interval`` seconds the workload
    looks, without sending anything, whether one of the ``k`` live servers closest to each key
    holds it (a read would repair the record: a GET sends it to close peers that miss it); at
    ``final_at`` every record is fetched once with ``get_value`` by a random non-publisher.
    """

    lookups: int = 20
    records: int = 30
    publishers: tuple[int, ...] = (1, 2)
    put_at: float = 20.0
    put_spread: float = 10.0
    republish_interval: float = 40.0
    record_ttl: float = 86_400.0
    probe_interval: float = 5.0
    final_at: float = 150.0


class KadChurnWorkload(KadLookupsWorkload):
    """Records put, nodes replaced, records fetched: retrievability with and without
    republish (and the ``kad`` lookup measurements on the republishing DHT)."""

    cfg: KadChurnConfig

    def __init__(self, config: KadChurnConfig, sim: SimContext) -> None:
        super().__init__(config, sim)
        self.clients = frozenset(config.publishers)
        #: Per overlay: the record keys put.
        self.keys: dict[int, list[bytes]] = {REPUBLISH: [], NO_REPUBLISH: []}
        self.puts_failed = 0
        self.stored_at: list[int] = []
        #: Per overlay: (time, fraction of records held by one of the k closest live servers).
        self.held: dict[int, list[tuple[float, float]]] = {REPUBLISH: [], NO_REPUBLISH: []}
        #: Per overlay: (records fetched at the end, records put).
        self.final: dict[int, tuple[int, int]] = {}
        self.replaced: set[int] = set()
        self.replaced_at: list[tuple[float, float]] = [(0.0, 0.0)]

    def overlay_of(self, index: int) -> int:
        return REPUBLISH if index % 2 else NO_REPUBLISH

    def kad_config(self, overlay: int) -> KadConfig:
        base = super().kad_config(overlay)
        return attrs.evolve(
            base,
            protocol_id=PROTOCOL_ID if overlay == REPUBLISH else NO_REPUBLISH_PROTOCOL,
            record_republish=self.cfg.republish_interval if overlay == REPUBLISH else None,
            record_ttl=self.cfg.record_ttl,
        )

    def on_event(self, index: int, event: object) -> None:
        super().on_event(index, event)
        if isinstance(event, NodeStarted) and event.generation > 0 and not self.sim.ended:
            self.replaced.add(index)
            frac = len(self.replaced) / len(self.sim.node_indexes)
            self.replaced_at.append((anyio.current_time(), frac))

    async def run_node(self, index: int) -> None:
        if index != self.sim.node_indexes[0]:
            await super().run_node(index)
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.run_records)
            await super().run_node(index)

    async def run_records(self) -> None:
        """Put the records, probe them until ``final_at``, then fetch each once."""
        c = self.cfg
        async with anyio.create_task_group() as tg:
            for overlay in (REPUBLISH, NO_REPUBLISH):
                tg.start_soon(self.put_records, overlay)
        t = c.put_at + c.put_spread
        while t < c.final_at:
            await anyio.sleep(max(0.0, t - anyio.current_time()))
            self.probe()
            t += c.probe_interval
        await anyio.sleep(max(0.0, c.final_at - anyio.current_time()))
        self.probe()
        await self.fetch_all()

    async def put_records(self, overlay: int) -> None:
        c = self.cfg
        publishers = [p for p in c.publishers if self.overlay_of(p) == overlay]
        if not publishers:
            return
        async with anyio.create_task_group() as tg:
            for r in range(c.records):
                at = c.put_at + c.put_spread * r / c.records
                await anyio.sleep(max(0.0, at - anyio.current_time()))
                key = f"/sim/{overlay}/{r}".encode()
                self.keys[overlay].append(key)
                tg.start_soon(self.put, publishers[r % len(publishers)], key)

    async def put(self, index: int, key: bytes) -> None:
        stored = await self.on_node(
            index,
            lambda kad: kad.put_value(key, b"value of " + key),
            timeout=self.cfg.query_timeout * 2,
        )
        if stored is not None:
            self.stored_at.append(stored)
        if not stored:
            self.puts_failed += 1

    def probe(self) -> None:
        """Record, per DHT, the fraction of records that one of the ``k`` live servers closest
        to their key holds (read from the stores: no message, so no repair)."""
        now = anyio.current_time()
        for overlay in (REPUBLISH, NO_REPUBLISH):
            keys = self.keys[overlay]
            held = sum(1 for key in keys if self._held(overlay, key, now))
            self.held[overlay].append((now, held / len(keys) if keys else 0.0))

    def _held(self, overlay: int, key: bytes, now: float) -> bool:
        for i in self.closest_nodes(overlay, key_of(key), self.cfg.k):
            host = self.sim.host(i)
            if host is not None and host.service(Kad).records.get(key, now) is not None:
                return True
        return False

    async def fetch_all(self) -> None:
        """Fetch every record once, each from a random joined non-publisher."""
        for overlay in (REPUBLISH, NO_REPUBLISH):
            keys = self.keys[overlay]
            rng = self.rng.child(f"fetch/{overlay}")
            readers = [i for i in self.joined(overlay) if i not in self.cfg.publishers]
            ok = [False] * len(keys)
            async with anyio.create_task_group() as tg:
                for j, key in enumerate(keys):
                    if readers:
                        tg.start_soon(self.fetch, rng.choice(readers), key, ok, j)
            self.final[overlay] = (sum(ok), len(keys))
            self.sim.trace.record("kad_fetched", overlay=overlay, ok=sum(ok), of=len(keys))

    async def fetch(self, index: int, key: bytes, ok: list[bool], j: int) -> None:
        value = await self.on_node(
            index,
            lambda kad: kad.get_value(key, quorum=1),
            timeout=self.cfg.query_timeout + 5,
        )
        ok[j] = value == b"value of " + key

    # -- outputs ----------------------------------------------------------------------------------

    def _last_held(self, overlay: int) -> float | None:
        points = self.held[overlay]
        return round(points[-1][1], 6) if points else None

    def _rate(self, overlay: int) -> float | None:
        ok, total = self.final.get(overlay, (0, 0))
        return round(ok / total, 6) if total else None

    def _finite_model(self) -> float:
        """Expected share of records kept without republish in this very network: a record is
        lost when none of its ``k`` holders is among the servers never replaced (drawing the
        holders without replacement from the servers of one DHT)."""
        servers = [i for i in self.sim.node_indexes if i not in self.clients]
        dht = [i for i in servers if self.overlay_of(i) == NO_REPUBLISH]
        kept = [i for i in dht if i not in self.replaced]
        k = min(self.cfg.k, len(dht))
        return 1 - math.comb(len(dht) - len(kept), k) / math.comb(len(dht), k) if dht else 0.0

    def metrics(self) -> Mapping[str, MetricValue]:
        servers = [i for i in self.sim.node_indexes if i not in self.clients]
        frac = len(self.replaced.intersection(servers)) / len(servers) if servers else 0.0
        return {
            **super().metrics(),
            "records_per_dht": self.cfg.records,
            "records_put_failed": self.puts_failed,
            "records_stored_at_mean": round(sum(self.stored_at) / len(self.stored_at), 6)
            if self.stored_at
            else None,
            "records_retrievable_rate": self._rate(REPUBLISH),
            "records_retrievable_rate_no_republish": self._rate(NO_REPUBLISH),
            "records_held_rate": self._last_held(REPUBLISH),
            "records_held_rate_no_republish": self._last_held(NO_REPUBLISH),
            "records_model_no_republish_rate": round(1 - frac**self.cfg.k, 6),
            "records_model_no_republish_rate_this_network": round(self._finite_model(), 6),
            "nodes_replaced": len(self.replaced),
            "servers_replaced_fraction": round(frac, 6),
            "republish_interval_seconds": self.cfg.republish_interval,
        }

    def summary_rows(self) -> Sequence[tuple[str, str]]:
        m = self.metrics()
        return [
            *super().summary_rows(),
            (
                "records per DHT (puts failed)",
                f"{m['records_per_dht']} ({m['records_put_failed']})",
            ),
            ("records stored at (mean peers)", str(m["records_stored_at_mean"])),
            (
                "nodes replaced (servers)",
                f"{m['nodes_replaced']} ({m['servers_replaced_fraction']})",
            ),
            (
                "retrievable (get) with / without republish",
                f"{m['records_retrievable_rate']} / {m['records_retrievable_rate_no_republish']}",
            ),
            (
                "held by the k closest, with / without",
                f"{m['records_held_rate']} / {m['records_held_rate_no_republish']}",
            ),
            (
                "model without republish: 1-f^k / this network",
                f"{m['records_model_no_republish_rate']}"
                f" / {m['records_model_no_republish_rate_this_network']}",
            ),
        ]

    def plot(self, out_dir: Path, title: str) -> Sequence[Path]:
        paths = list(super().plot(out_dir, title))
        series = {
            f"with republish (every {self.cfg.republish_interval:g} s)": self.held[REPUBLISH],
            "without republish": self.held[NO_REPUBLISH],
        }
        path = out_dir / "kad-retrievability.png"
        paths.append(plot_retrievability(series, self.replaced_at, path, f"{title}: records"))
        return paths


register_workload(WorkloadType("kad_churn", KadChurnConfig, KadChurnWorkload))
