"""The ``nat_traversal`` simulation workload: a population behind a mix of NAT boxes (from
``[[network.nat_box]]``) with a few public relays. Every node reserves at a relay (over an
outbound connection, which any box allows) and learns its observed address there; then every
pair of nodes tries to talk: directly when one is public, otherwise over a relayed connection
followed by a DCUtR hole punch (the sans-IO cores of ``protocols.dcutr``, driven by
``_nat_dcutr``) whose TCP and QUIC dials really cross the NAT boxes of the simulated network.
At ``probe_at`` the relays check which reservations still work (mapping timeouts against
keep-alives). Metrics: ``reachable_pairs_rate``,
``holepunch_success_rate`` overall, per NAT-type combination and per mapping class, next to
the outcome RFC 4787/5382 predict for each combination (``_nat_expected``), and the time to a
direct connection (docs/nat.md, "Simulating NATs")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path

import anyio
import attrs
from multiaddr import Multiaddr

from p2pstack.errors import LocalProtocolError, RemoteProtocolError
from p2pstack.identity import Identity, PeerId
from p2pstack.interfaces import Service
from p2pstack.roots.scenarios._model import Scenario, ScenarioError
from p2pstack.roots.scenarios._nat_dcutr import (
    DirectDial,
    initiate,
    quic_addr,
    respond,
    udp_addrs,
)
from p2pstack.roots.scenarios._nat_expected import NatType, expected_quic, expected_tcp, nat_type
from p2pstack.roots.scenarios._nat_metrics import PairRecord, nat_metrics, nat_summary
from p2pstack.roots.scenarios._nat_node import Circuit, NatNode
from p2pstack.roots.scenarios._nat_plots import plot_nat_rates
from p2pstack.roots.scenarios._nat_punch import (
    Punch,
    dial_tcp,
    pair_key,
    quic_client,
    udp_punches,
)
from p2pstack.roots.scenarios._nat_relay_server import RelayServer
from p2pstack.roots.scenarios._runner import LISTEN_PORT
from p2pstack.roots.scenarios._workload import (
    NET_ERRORS,
    MetricValue,
    NodeInfo,
    SimContext,
    WorkloadType,
    register_workload,
)

__all__ = ["NatTraversalConfig", "NatTraversalWorkload"]

#: How a DCUtR exchange can fail: the relayed path went away, or a message the protocol does
#: not allow (the cores of ``protocols.dcutr`` raise protocol errors).
_FAILED: tuple[type[BaseException], ...] = (
    *NET_ERRORS,
    RemoteProtocolError,
    LocalProtocolError,
)


@attrs.frozen(kw_only=True)
class NatTraversalConfig:
    """``[nat_traversal]``: ``relays`` (public nodes, no box) serve up to ``max_reservations``
    each on TCP ``port`` (every node listens and dials from it). Nodes reserve between
    ``reserve_at`` and ``reserve_at + reserve_spread``, trying the relays in a seeded order,
    and send a keep-alive every ``keepalive_interval`` seconds. Each pair of non-relay nodes
    (or ``pairs`` of them, seeded; 0: all) tries to connect once between ``punch_at`` and
    ``punch_at + punch_spread``: up to ``attempts`` hole punches, each dial given
    ``attempt_timeout`` seconds, each relayed exchange ``exchange_timeout``. At ``probe_at``
    the relays probe their reservations (answers within ``probe_timeout``). ``quic``: after
    the TCP hole punch, a QUIC one over the same relayed connection (UDP on ``port``)."""

    relays: tuple[int, ...] = (1, 2, 3)
    port: int = 4002
    max_reservations: int = 128
    reserve_at: float = 1.0
    reserve_spread: float = 2.0
    keepalive_interval: float = 30.0
    punch_at: float = 10.0
    punch_spread: float = 60.0
    pairs: int = 0
    attempts: int = 3
    attempt_timeout: float = 5.0
    exchange_timeout: float = 10.0
    probe_at: float = 100.0
    probe_timeout: float = 5.0
    quic: bool = True

    def __attrs_post_init__(self) -> None:
        if not self.relays or self.max_reservations < 1 or self.attempts < 1:
            raise ValueError("need relays, max_reservations >= 1 and attempts >= 1")
        timings = (self.keepalive_interval, self.attempt_timeout, self.exchange_timeout)
        if min(timings) <= 0 or self.probe_timeout <= 0 or self.pairs < 0:
            raise ValueError("intervals and timeouts must be positive, pairs >= 0")
        if self.probe_at <= self.punch_at:
            raise ValueError("probe_at must come after punch_at")

    def check_scenario(self, scenario: Scenario) -> None:
        """Relays must be nodes of the scenario and public; the port must not be the hosts'.

        Raises:
            ScenarioError: the first rule broken.
        """
        boxed = {n for box in scenario.network.nat_box for n in box.nodes}
        for relay in self.relays:
            if not 1 <= relay <= scenario.nodes or relay in boxed:
                raise ScenarioError(
                    f"nat_traversal.relays: {relay} must be a node (1..{scenario.nodes})"
                    " not behind a NAT box"
                )
        if self.port == LISTEN_PORT:
            raise ScenarioError(f"nat_traversal.port: {LISTEN_PORT} is the hosts' listen port")


class NatTraversalWorkload:
    """One run of the ``nat_traversal`` workload."""

    def __init__(self, config: NatTraversalConfig, sim: SimContext) -> None:
        self.cfg, self.sim = config, sim
        self.relays: dict[int, RelayServer] = {}
        self.nodes: dict[int, NatNode] = {}
        self.types: dict[int, NatType] = {}
        self.records: list[PairRecord] = []
        self.alive: dict[int, bool] = {}
        self.punches: dict[tuple[bytes, str], Punch] = {}
        self._schedule: dict[int, list[tuple[float, int]]] | None = None

    # -- the Workload protocol -----------------------------------------------------------------

    def services(self, node: NodeInfo) -> Sequence[Service]:
        return []

    def on_event(self, index: int, event: object) -> None:
        pass

    async def run_node(self, index: int) -> None:
        net = self.sim.network
        box = net.routing.box_of(index)
        self.types[index] = nat_type(None if box is None else box.spec)
        if index in self.cfg.relays:  # public: checked with the scenario
            await self._run_relay(index)
        else:
            await self._run_node(index)

    # -- relays ------------------------------------------------------------------------------------

    async def _run_relay(self, index: int) -> None:
        relay = self.relays[index] = RelayServer(
            self.sim.network, index, self.cfg.port, self.cfg.max_reservations, self._peer_id(index)
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(relay.serve, tg)
            if self.cfg.quic:
                tg.start_soon(relay.serve_udp)
            await anyio.sleep(self.cfg.probe_at - anyio.current_time())
            for node, ok in (await relay.probe(self.cfg.probe_timeout)).items():
                self.alive[node] = self.alive.get(node, False) or ok
            await anyio.sleep_forever()

    def _peer_id(self, index: int) -> PeerId:
        """Node ``index``'s peer ID in the relay messages: a seeded Ed25519 identity of the
        workload's own (the relayed path does not run over the hosts)."""
        rng = self.sim.rng.child(f"nat_traversal/identity/{index}")
        return Identity.generate(random_bytes=rng.random_bytes).peer_id

    def _relay_address(self, relay: int) -> str:
        ip = self.sim.network.addresses(relay)[0]
        return f"/ip4/{ip}/tcp/{self.cfg.port}"

    # -- nodes -------------------------------------------------------------------------------------

    async def _run_node(self, index: int) -> None:
        cfg = self.cfg
        rng = self.sim.rng.child(f"nat_traversal/node/{index}")
        order = list(cfg.relays)
        rng.shuffle(order)
        relays = [(r, self._relay_address(r)) for r in order]
        node = self.nodes[index] = NatNode(
            self.sim.network,
            index,
            self._peer_id(index),
            cfg.port,
            lambda c: self._on_stop(index, c),
        )
        udp = f"/ip4/{self.sim.network.addresses(order[0])[0]}/udp/{cfg.port}"
        async with anyio.create_task_group() as tg:
            await node.listen(tg)
            for at, peer in self._pairs_of(index):
                tg.start_soon(self._pair_at, at, index, peer)
            if self.types[index].label == "public":
                return  # dialable as it is: no reservation, no hole punching
            await anyio.sleep(cfg.reserve_at + rng.uniform(0.0, cfg.reserve_spread))
            if cfg.quic:
                await node.observe_udp(udp, cfg.exchange_timeout)
            await node.reserve(relays, cfg.exchange_timeout)
            while True:
                await anyio.sleep(cfg.keepalive_interval)
                await node.keepalive(relays, cfg.exchange_timeout)
                if cfg.quic:  # also what keeps the UDP mapping alive
                    await node.observe_udp(udp, cfg.exchange_timeout)

    def _pairs_of(self, index: int) -> list[tuple[float, int]]:
        """The pairs node ``index`` starts (as the lower-numbered peer), with their times."""
        if self._schedule is None:
            cfg = self.cfg
            others = [n for n in self.sim.node_indexes if n not in cfg.relays]
            pairs = list(combinations(others, 2))
            rng = self.sim.rng.child("nat_traversal/pairs")
            if cfg.pairs and cfg.pairs < len(pairs):
                pairs = sorted(rng.sample(pairs, cfg.pairs))
            self._schedule = {}
            for a, b in pairs:
                at = cfg.punch_at + rng.uniform(0.0, cfg.punch_spread)
                self._schedule.setdefault(a, []).append((at, b))
        return self._schedule.get(index, [])

    async def _pair_at(self, at: float, a: int, b: int) -> None:
        await anyio.sleep(at - anyio.current_time())
        record = await self._pair(a, b)
        if not self.sim.ended:
            self.records.append(record)

    async def _pair(self, a: int, b: int) -> PairRecord:
        ta, tb = self.types[a], self.types[b]
        record = PairRecord(a=a, b=b, type_a=ta.label, type_b=tb.label)
        if "public" in (ta.label, tb.label):
            return await self._direct_to_public(record)
        na, nb = self.nodes[a], self.nodes[b]
        if not nb.reservation and na.reservation:
            na, nb = nb, na  # dial the one that can be reached through a relay
        if not nb.reservation:
            return attrs.evolve(record, outcome="no_relay")
        key = pair_key(na.index, nb.index)
        started = anyio.current_time()
        tcp = self.punches[(key, "tcp")] = Punch(started)
        quic = self.punches[(key, "quic")] = na.quic_punches[key] = Punch(started)
        try:
            circuit = await na.open_circuit(
                nb.reservation,
                self._relay_address(nb.reservation),
                nb.index,
                nb.peer_id,
                self.cfg.exchange_timeout,
            )
        except NET_ERRORS:
            return attrs.evolve(record, outcome="relay_failed")
        tcp_attempt = await self._respond(
            circuit,
            [na.observed],
            lambda addrs: dial_tcp(na.transport, addrs, tcp, self._attempt_timeout),
        )
        record = attrs.evolve(
            record,
            outcome="punch",
            attempt=tcp_attempt,
            seconds=tcp.seconds,
            expected=expected_tcp(self.types[na.index], self.types[nb.index]),
        )
        if not self.cfg.quic:
            return record
        assert na.udp is not None
        udp = na.udp
        quic.started = anyio.current_time()
        quic_attempt = await self._respond(
            circuit,
            [quic_addr(na.observed_udp)],
            lambda addrs: quic_client(udp, udp_addrs(addrs), quic, key, self._attempt_timeout),
        )
        return attrs.evolve(
            record,
            quic_attempt=quic_attempt,
            quic_seconds=quic.seconds,
            quic_expected=expected_quic(self.types[na.index], self.types[nb.index]),
        )

    @property
    def _attempt_timeout(self) -> float:
        return self.cfg.attempt_timeout

    async def _respond(
        self, circuit: Circuit, addrs: Sequence[str | None], dial: DirectDial
    ) -> int:
        """A's side of one DCUtR exchange; the attempt that worked, 0 if none."""
        own = [a for a in addrs if a]
        try:
            return await respond(
                circuit, own, dial, attempts=self.cfg.attempts, timeout=self.cfg.exchange_timeout
            )
        except _FAILED:
            return 0

    def _on_stop(self, index: int, circuit: Circuit) -> None:
        """Node ``index`` (B) accepted a relayed connection: it starts the DCUtR exchanges
        (TCP, then QUIC), as DCUtR has the accepting side do."""
        key = pair_key(circuit.peer, index)
        tcp = self.punches.get((key, "tcp"))
        quic = self.punches.get((key, "quic"))
        node = self.nodes[index]
        if tcp is None or quic is None or node.tg is None or node.udp is None:
            return
        udp = node.udp
        rng = self.sim.rng.child(f"nat_traversal/punch/{circuit.peer}/{index}")
        steps: list[tuple[str | None, DirectDial]] = [
            (
                node.observed,
                lambda addrs: dial_tcp(node.transport, addrs, tcp, self._attempt_timeout),
            )
        ]
        if self.cfg.quic:
            steps.append(
                (
                    quic_addr(node.observed_udp),
                    lambda addrs: udp_punches(
                        udp, udp_addrs(addrs), quic, rng, self._attempt_timeout
                    ),
                )
            )

        async def run() -> None:
            for own, dial in steps:
                try:
                    await initiate(
                        circuit,
                        [own] if own else [],
                        dial,
                        attempts=self.cfg.attempts,
                        timeout=self.cfg.exchange_timeout,
                    )
                except _FAILED:
                    return

        node.tg.start_soon(run)

    async def _direct_to_public(self, record: PairRecord) -> PairRecord:
        """A pair with a public node: the other one dials it."""
        private, public = (
            (record.a, record.b) if record.type_b == "public" else (record.b, record.a)
        )
        addr = f"/ip4/{self.sim.network.addresses(public)[0]}/tcp/{self.cfg.port}"
        started = anyio.current_time()
        try:
            with anyio.fail_after(self.cfg.attempt_timeout):
                conn = await self.nodes[private].transport.dial(Multiaddr(addr))
        except NET_ERRORS:
            return attrs.evolve(record, outcome="public_failed")
        await conn.aclose()
        return attrs.evolve(record, outcome="public", seconds=anyio.current_time() - started)

    # -- results -----------------------------------------------------------------------------------

    def metrics(self) -> Mapping[str, MetricValue]:
        nodes = sorted(self.nodes)
        lost = sum(n.reservations_lost for n in self.nodes.values())
        refused = sum(r.refused for r in self.relays.values())
        return nat_metrics(self.records, nodes, self.types, self.alive, lost=lost, refused=refused)

    def summary_rows(self) -> Sequence[tuple[str, str]]:
        return nat_summary(self.metrics())

    def plot(self, out_dir: Path, title: str) -> Sequence[Path]:
        if not self.records:
            return []
        return plot_nat_rates(self.metrics(), out_dir, title)


register_workload(WorkloadType("nat_traversal", NatTraversalConfig, NatTraversalWorkload))
