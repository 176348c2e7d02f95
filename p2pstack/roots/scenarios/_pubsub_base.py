"""The base of the pubsub simulation workloads: the ``[pubsub]`` settings, node identities, a
seeded random topology, node starts, a steady publish workload from random publishers, mesh
degree samples, and one ``Overlay`` of router cores per router compared, all on one event queue
(docs/pubsub.md, "Simulation"). Other node behaviours are ``Overlay`` subclasses (the Sybils'
``SybilOverlay``), which a workload built on ``PubsubNodes`` plugs in through ``make_overlay``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import anyio
import attrs

from p2pstack.identity import Identity
from p2pstack.interfaces import Service
from p2pstack.roots.scenarios._pubsub_net import EventQueue, Overlay
from p2pstack.roots.scenarios._pubsub_record import DeliveryRecorder
from p2pstack.roots.scenarios._workload import MetricValue, NodeInfo, SimContext
from protocols.pubsub import FloodsubConfig, GossipsubConfig
from transports.simnet import Latency, LinkSpec

__all__ = ["ROUTERS", "PubsubNodes", "PubsubSimConfig"]

#: The router names a ``routers`` list may hold.
ROUTERS = ("gossipsub", "floodsub")


@attrs.frozen(kw_only=True)
class PubsubSimConfig:
    """``[pubsub]``: the overlays, the topology, the links and the publish workload.

    Every router in ``routers`` runs its own overlay on the same nodes, topology, links and
    publish schedule, side by side. Each node dials ``connect`` random others (so about twice
    that many peers each); nodes start at random times within ``join_spread`` seconds and
    subscribe to ``topic`` at once. From ``publish_at``, ``messages`` messages of
    ``message_size`` bytes are published at ``publish_rate`` per second (over the whole
    network), each by a random node; the run ends ``drain`` seconds after the last one.
    Links: one-way ``latency`` (``latency_dist`` with ``latency_b`` as in ``[network]``),
    ``loss`` per write (seen as retransmission delay, as on TCP) and ``bandwidth`` (bytes/s
    per direction, unlimited when unset). ``d``, ``d_lo``, ``d_hi`` and ``flood_publish`` go to
    ``GossipsubConfig``; mesh degrees are sampled every ``mesh_sample_interval`` seconds.
    ``step`` is how far the runner's clock may lag the events (progress granularity).
    """

    routers: tuple[str, ...] = ROUTERS
    topic: str = "sim"
    connect: int = 6
    join_spread: float = 1.0
    publish_at: float = 10.0
    messages: int = 100
    publish_rate: float = 2.0
    message_size: int = 256
    drain: float = 10.0
    latency: float = 0.005
    latency_dist: str = "uniform"
    latency_b: float = 0.05
    loss: float = 0.0
    bandwidth: float | None = None
    d: int = 6
    d_lo: int = 4
    d_hi: int = 12
    flood_publish: bool = True
    mesh_sample_interval: float = 1.0
    step: float = 0.05

    def __attrs_post_init__(self) -> None:
        if unknown := set(self.routers) - set(ROUTERS):
            raise ValueError(f"unknown routers {sorted(unknown)} (choose from {list(ROUTERS)})")
        if self.connect < 1 or self.messages < 0 or self.publish_rate <= 0:
            raise ValueError("need connect >= 1, messages >= 0 and publish_rate > 0")
        if self.message_size < 1 or self.mesh_sample_interval <= 0 or self.step <= 0:
            raise ValueError("need message_size >= 1, mesh_sample_interval > 0 and step > 0")

    @property
    def end(self) -> float:
        """When the workload stops (virtual seconds from its start)."""
        return self.publish_at + self.messages / self.publish_rate + self.drain

    def link(self) -> LinkSpec:
        """The link model of every pair of nodes."""
        latency = Latency(kind=self.latency_dist, a=self.latency, b=self.latency_b)
        return LinkSpec(latency=latency, bandwidth=self.bandwidth, loss=self.loss)


class PubsubNodes:
    """What every pubsub workload does (see the module docstring).

    Attributes:
        overlays: name -> overlay, in the order of ``routers``.
        recorders: name -> the overlay's measurements.
        finished: whether the workload ran to its end.
    """

    def __init__(self, config: PubsubSimConfig, sim: SimContext) -> None:
        self.cfg = config
        self.sim = sim
        self.rng = sim.rng.child("pubsub")
        self.events = EventQueue(config.step)
        self.identities = {
            i: Identity.generate(random_bytes=self.rng.child(f"identity/{i}").random_bytes)
            for i in sim.node_indexes
        }
        self.edges = self.topology()
        self._edges_by_node: dict[int, list[tuple[int, int]]] = {i: [] for i in sim.node_indexes}
        for a, b in self.edges:
            self._edges_by_node[a].append((a, b))
            self._edges_by_node[b].append((a, b))
        self.recorders: dict[str, DeliveryRecorder] = {}
        self.overlays: dict[str, Overlay] = {}
        for name in config.routers:
            self.recorders[name] = DeliveryRecorder(len(self.identities))
            self.overlays[name] = self.make_overlay(name, self.recorders[name])
        self.finished = False
        self._base = 0.0
        self._started: dict[int, None] = {}

    # -- choices subclasses may change ------------------------------------------------------------

    def router_config(self, name: str) -> GossipsubConfig | FloodsubConfig:
        """The router settings of overlay ``name``."""
        if name == "floodsub":
            return FloodsubConfig()
        c = self.cfg
        return GossipsubConfig(d=c.d, d_lo=c.d_lo, d_hi=c.d_hi, flood_publish=c.flood_publish)

    def make_overlay(self, name: str, recorder: DeliveryRecorder) -> Overlay:
        """Build overlay ``name`` (its router is ``router_config(name)``)."""
        return Overlay(
            name,
            self.router_config(name),
            self.identities,
            link=self.cfg.link(),
            events=self.events,
            rng=self.rng.child(f"overlay/{name}"),
            recorder=recorder,
        )

    def topology(self) -> list[tuple[int, int]]:
        """The links, as (chooser, chosen) pairs: each node picks ``connect`` random others
        (a pair chosen both ways is one link); the one of a pair that starts later dials."""
        rng = self.rng.child("topology")
        nodes = list(self.sim.node_indexes)
        edges: dict[tuple[int, int], None] = {}
        for i in nodes:
            others = [j for j in nodes if j != i]
            for j in rng.sample(others, min(self.cfg.connect, len(others))):
                if (j, i) not in edges:
                    edges[(i, j)] = None
        return list(edges)

    def metric_prefix(self, name: str) -> str:
        """The ``metrics.json`` key prefix of overlay ``name`` (gossipsub has none)."""
        return "" if name == "gossipsub" else f"{name}_"

    # -- the Workload protocol --------------------------------------------------------------------

    def services(self, node: NodeInfo) -> Sequence[Service]:
        return []

    def on_event(self, index: int, event: object) -> None:
        pass

    async def run_node(self, index: int) -> None:
        """Node 1 runs the whole event queue; the others have nothing of their own."""
        if index != self.sim.node_indexes[0]:
            return
        await self.run()

    async def run(self) -> None:
        """Schedule starts, publishes and samples, and run the events to the end."""
        c, rng = self.cfg, self.rng.child("schedule")
        self._base = base = anyio.current_time()
        for i in self.sim.node_indexes:
            self.events.at(base + rng.uniform(0.0, c.join_spread), self._start, i)
        nodes = list(self.sim.node_indexes)
        for j in range(c.messages):
            publisher = rng.choice(nodes)
            self.events.at(base + c.publish_at + j / c.publish_rate, self._publish, (j, publisher))
        self.events.at(base, self._sample, None)
        await self.events.run(base + c.end)
        self.finished = True
        for name, rec in self.recorders.items():
            self.sim.trace.record(
                "pubsub_done",
                overlay=name,
                messages=len(rec.messages),
                deliveries=rec.delivered_count(),
                duplicates=rec.duplicate_count,
                rpcs=rec.rpcs_sent,
            )

    def _start(self, now: float, index: int) -> None:
        self._started[index] = None
        for overlay in self.overlays.values():
            overlay.start(index, now, [self.cfg.topic])
        self.connect_started(index, now)

    def connect_started(self, index: int, now: float) -> None:
        """Connect node ``index`` to its topology neighbours that have started."""
        for a, b in self.edges_of(index):
            other = b if a == index else a
            if other in self._started:
                for overlay in self.overlays.values():
                    overlay.connect(index, other, now)

    def edges_of(self, index: int) -> list[tuple[int, int]]:
        """The topology edges of node ``index``, in topology order."""
        return self._edges_by_node[index]

    def payload(self, j: int) -> bytes:
        """The data of message ``j`` (``message_size`` bytes, unique per message)."""
        head = f"msg-{j}-".encode()
        return (head + b"." * self.cfg.message_size)[: max(len(head), self.cfg.message_size)]

    def _publish(self, now: float, item: tuple[int, int]) -> None:
        j, publisher = item
        for name, overlay in self.overlays.items():
            msg_id = overlay.publish(publisher, self.cfg.topic, self.payload(j), now)
            if msg_id is not None:
                self.sim.trace.record(
                    "pubsub_publish", overlay=name, node=publisher, id=msg_id.hex()
                )

    def _sample(self, now: float, _: object) -> None:
        for name, overlay in self.overlays.items():
            if isinstance(overlay.config, GossipsubConfig):
                self.recorders[name].sample_mesh(
                    now - self._base, overlay.mesh_degrees(self.cfg.topic)
                )
        self.events.at(now + self.cfg.mesh_sample_interval, self._sample, None)

    # -- outputs ----------------------------------------------------------------------------------

    def base_metrics(self) -> Mapping[str, MetricValue]:
        """Every overlay's metrics (prefixed) and the shared figures."""
        n = len(self.identities)
        values: dict[str, MetricValue] = {
            "pubsub_nodes": n,
            "pubsub_links": len(self.edges),
            "pubsub_finished": self.finished,
            "hops_log5_n": round(math.log(n) / math.log(5), 3) if n > 1 else 0.0,
        }
        for name, overlay in self.overlays.items():
            prefix = self.metric_prefix(name)
            values.update(self.recorders[name].metrics(prefix))
            values[f"{prefix}protocol_errors"] = overlay.errors
            values[f"{prefix}link_resets"] = overlay.resets
        return values
