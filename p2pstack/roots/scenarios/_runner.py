"""Runs a ``Scenario`` on the virtual network and clock: the real host, security and muxer per
node, the scenario's workloads (their services and activity), a bootstrap, a timeline of
faults and periodic samples, all traced (docs/simulation.md, "Running")."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, TypeVar

import anyio
import attrs
from anyio.abc import TaskStatus

from p2pstack.builder import open_host
from p2pstack.connmgr import ConnectionManagerConfig
from p2pstack.events import ConnectionClosed, ConnectionOpened
from p2pstack.host import Host, HostConfig
from p2pstack.identity import Identity, PeerId
from p2pstack.interfaces import Muxer, SecurityChannel, Service
from p2pstack.peerstore import Peerstore
from p2pstack.roots.scenarios._metrics import Metrics
from p2pstack.roots.scenarios._model import Action, NatBoxConfig, Scenario
from p2pstack.roots.scenarios._quic import sim_quic_transport
from p2pstack.roots.scenarios._workload import (
    NET_ERRORS,
    WORKLOADS,
    NodeInfo,
    NodeStarted,
    NodeStopped,
    Workload,
    error_name,
)
from p2pstack.sim import SeededRandom, TraceRecorder, VirtualClock, run_virtual
from transports.mplex import Mplex
from transports.noise import Noise
from transports.plaintext import Plaintext
from transports.simnet import Latency, LinkSpec, NatSpec, SimNetwork
from transports.yamux import Yamux

__all__ = ["SimResult", "nat_spec", "run_scenario"]

#: The TCP (or, with ``transport = "quic"``, UDP) port every node listens on.
LISTEN_PORT = 4001
W = TypeVar("W")


@attrs.frozen(kw_only=True)
class SimResult:
    """What a run produced. ``metrics`` holds the runner's own series (connections, nodes up,
    dial failures, faults); ``workloads`` each workload's instance with its measurements.
    ``interrupted`` is True when the run was stopped (Ctrl-C) before its end: everything up to
    ``virtual_seconds`` is still there."""

    scenario: Scenario
    seed: int
    trace_hash: str
    events: int
    virtual_seconds: float
    wall_seconds: float
    metrics: Metrics
    workloads: Mapping[str, Workload] = attrs.field(factory=dict)
    interrupted: bool = False
    trace_lines: tuple[str, ...] = ()

    def workload(self, kind: type[W]) -> W:
        """The workload instance of type ``kind`` (``result.workload(PingWorkload)``).

        Args:
            kind: the workload class.

        Returns:
            The run's instance.

        Raises:
            LookupError: the scenario did not run such a workload.
        """
        for workload in self.workloads.values():
            if isinstance(workload, kind):
                return workload
        raise LookupError(f"no {kind.__name__} in this run (services: {self.scenario.services})")


def nat_spec(box: NatBoxConfig) -> NatSpec:
    """The simnet box of a ``[[network.nat_box]]`` entry: its kind, with the entry's timeouts
    and any behaviour it overrides."""
    overrides = {
        key: value
        for key in ("mapping", "filtering", "port_allocation")
        if (value := getattr(box, key))
    }
    return NatSpec.of_kind(
        box.kind, udp_timeout=box.udp_timeout, tcp_timeout=box.tcp_timeout, **overrides
    )


class _Node:
    def __init__(self, index: int) -> None:
        self.index = index
        self.identity: Identity | None = None
        self.peerstore: Peerstore | None = None
        self.host: Host | None = None
        self.scope: anyio.CancelScope | None = None
        self.generation = 0
        self.targets: list[int] = []
        #: Set when this generation's host has stopped (a replacement waits for it).
        self.down = anyio.Event()


class _Sim:
    """The state of one run (lives inside the virtual loop)."""

    def __init__(self, scenario: Scenario, seed: int, trace: TraceRecorder) -> None:
        self.sc = scenario
        self.seed = seed
        self.trace = trace
        self.rng = SeededRandom(seed, "scenario")
        self.metrics = Metrics()
        self.nodes = {i: _Node(i) for i in range(1, scenario.nodes + 1)}
        self.by_peer: dict[PeerId, int] = {}
        self.net: SimNetwork | None = None
        self.tg: anyio.abc.TaskGroup | None = None
        self.ended = False
        self.workloads: dict[str, Workload] = {
            name: WORKLOADS[name].factory(scenario.workload_settings(name), self)
            for name in scenario.services
        }

    # -- the context workloads see (SimContext) ------------------------------------------------

    @property
    def node_indexes(self) -> Sequence[int]:
        return list(self.nodes)

    def host(self, index: int) -> Host | None:
        return self.nodes[index].host

    def node_of(self, peer: PeerId) -> int:
        return self.by_peer.get(peer, 0)

    def dial_address(self, index: int) -> str | None:
        node = self.nodes[index]
        if node.host is None or node.identity is None:
            return None
        return f"{self._address(index)}/p2p/{node.identity.peer_id}"

    @property
    def network(self) -> SimNetwork:
        assert self.net is not None
        return self.net

    # -- building nodes ------------------------------------------------------------------------

    def _network(self) -> SimNetwork:
        cfg = self.sc.network
        latency = Latency(kind=cfg.latency_dist, a=cfg.latency, b=cfg.latency_b)
        net = SimNetwork(
            self.rng.child("network"),
            default_link=LinkSpec(latency=latency, bandwidth=cfg.bandwidth, loss=cfg.loss),
            stall_timeout=cfg.stall_timeout,
        )
        for n in cfg.nat:
            net.set_reachable(n, False)
        for box in cfg.nat_box:
            spec = nat_spec(box)
            for members in [[n] for n in box.nodes] if box.per_node else [list(box.nodes)]:
                net.add_nat(spec, members)
        return net

    def _address(self, index: int) -> str:
        """Node ``index``'s listen address as its peers dial it (private behind a NAT)."""
        assert self.net is not None
        version = 4 if self.sc.network.ip == "ip4" else 6
        ip = next(ip for ip in self.net.addresses(index) if ip.version == version)
        return f"/ip{version}/{ip}/{self._port_suffix()}"

    def _port_suffix(self) -> str:
        if self.sc.transport == "quic":
            return f"udp/{LISTEN_PORT}/quic-v1"
        return f"tcp/{LISTEN_PORT}"

    def _identity(self, node: _Node) -> Identity:
        rng = self.rng.child(f"node/{node.index}/identity/{node.generation}")
        identity = Identity.generate(random_bytes=rng.random_bytes)
        self.by_peer[identity.peer_id] = node.index
        return identity

    def _stack(self, node: _Node) -> tuple[list[SecurityChannel], list[Muxer], list[Service]]:
        rng = self.rng.child(f"node/{node.index}/run/{node.generation}")
        security: SecurityChannel = (
            Noise(random_bytes=rng.child("noise").random_bytes)
            if self.sc.security == "noise"
            else Plaintext()
        )
        muxer: Muxer = Yamux() if self.sc.muxer == "yamux" else Mplex()
        info = NodeInfo(node.index, node.generation, rng)
        services = [s for w in self.workloads.values() for s in w.services(info)]
        return [security], [muxer], services

    async def run_node(self, node: _Node, *, task_status: TaskStatus[None]) -> None:
        assert self.net is not None
        if node.identity is None:
            node.identity = self._identity(node)
        if node.peerstore is None:
            node.peerstore = Peerstore(clock=anyio.current_time)
        security, muxers, services = self._stack(node)
        rng = self.rng.child(f"node/{node.index}/run/{node.generation}")
        node.down = anyio.Event()
        cfg = self.sc.network
        trim = ConnectionManagerConfig(
            low_water=cfg.conn_low_water,
            high_water=cfg.conn_high_water,
            grace_period=cfg.conn_grace,
        )
        config = HostConfig(
            dial_timeout=cfg.dial_timeout,
            connection_manager=trim if cfg.conn_high_water > 0 else None,
        )
        transport = self.net.transport(node.index)
        any_ip = "/ip4/0.0.0.0" if self.sc.network.ip == "ip4" else "/ip6/::"
        with anyio.CancelScope() as scope:
            node.scope = scope
            async with open_host(
                identity=node.identity,
                transports=[
                    sim_quic_transport(transport, rng.child("quic").random_bytes)
                    if self.sc.transport == "quic"
                    else transport
                ],
                security=security,
                muxers=muxers,
                services=services,
                listen=[f"{any_ip}/{self._port_suffix()}"],
                peerstore=node.peerstore,
                config=config,
            ) as host:
                node.host = host
                self.trace.record("node_started", node=node.index, peer=str(host.peer_id))
                with host.subscribe() as events:
                    self._on_event(node.index, NodeStarted(node.index, node.generation, host))
                    task_status.started()
                    async for event in events:
                        self._on_event(node.index, event)
        node.host = None
        node.down.set()
        self._on_event(node.index, NodeStopped(node.index, node.generation))

    def _on_event(self, index: int, event: object) -> None:
        if self.ended:  # the teardown is not part of the run
            return
        match event:
            case ConnectionOpened(connection=conn):
                self.trace.record(
                    "conn_opened",
                    node=index,
                    peer=self.by_peer.get(conn.remote_peer, 0),
                    dir=conn.direction,
                    addr=str(conn.remote_multiaddr),
                )
            case ConnectionClosed(connection=conn, reason=reason):
                self.trace.record(
                    "conn_closed",
                    node=index,
                    peer=self.by_peer.get(conn.remote_peer, 0),
                    reason=type(reason).__name__ if reason is not None else None,
                )
            case _:
                pass
        for workload in self.workloads.values():
            workload.on_event(index, event)

    # -- activity --------------------------------------------------------------------------------

    async def dial(self, node: _Node, target: int) -> None:
        host, other = node.host, self.nodes[target]
        if host is None or other.identity is None or host.connections(other.identity.peer_id):
            return
        addr = f"{self._address(target)}/p2p/{other.identity.peer_id}"
        started = anyio.current_time()
        try:
            await host.connect(addr)
            if not self.ended:
                self.metrics.dialed(anyio.current_time() - started)
        except NET_ERRORS as exc:
            if self.ended:
                return
            self.metrics.dial_failed(anyio.current_time())
            self.trace.record("dial_failed", node=node.index, peer=target, err=error_name(exc))

    async def bootstrap(self, node: _Node) -> None:
        cfg = self.sc.bootstrap
        rng = self.rng.child(f"bootstrap/{node.index}")
        others = [i for i in self.nodes if i != node.index]
        node.targets = rng.sample(others, min(cfg.peers, len(others)))
        await anyio.sleep(cfg.at + rng.uniform(0.0, cfg.spread))
        while True:
            for target in node.targets:
                await self.dial(node, target)
            if cfg.redial_interval <= 0:
                return
            await anyio.sleep(cfg.redial_interval)

    async def sampler(self) -> None:
        assert self.net is not None
        while not self.ended:
            up = sum(1 for n in self.nodes.values() if n.host is not None)
            conns = self._connection_count()
            self.metrics.sample(anyio.current_time(), conns, up)
            self.trace.record("sample", conns=conns, up=up)
            await anyio.sleep(self.sc.sample_interval)

    def _connection_count(self) -> int:
        """Live connections: the network's (TCP-like) ones, or for QUIC, which the network
        only sees as datagrams, each host's count (every connection has two ends)."""
        assert self.net is not None
        if self.sc.transport != "quic":
            return self.net.connection_count
        hosts = [n.host for n in self.nodes.values() if n.host is not None]
        return sum(len(host.connections()) for host in hosts) // 2

    async def timeline(self) -> None:
        for act in self.sc.timeline:
            await anyio.sleep(max(0.0, act.at - anyio.current_time()))
            await self.apply(act)

    async def apply(self, act: Action) -> None:
        assert self.net is not None and self.tg is not None
        self.trace.record("fault", action=act.action, node=act.node, peer=act.peer)
        self.metrics.fault(anyio.current_time(), act.action)
        node = self.nodes.get(act.node)
        match act.action:
            case "partition":
                self.net.partition(act.groups)
            case "heal":
                self.net.heal()
            case "nat":
                self.net.set_reachable(act.node, act.reachable)
            case "drop":
                self.net.drop(act.node, act.peer or None)
            case "crash" if node is not None and node.scope is not None:
                self.net.crash(node.index)
                node.scope.cancel()
                node.scope = None
            case "restart" if node is not None and node.host is None:
                await self.restart(
                    node, keep_identity=act.keep_identity, keep_peerstore=act.keep_peerstore
                )
            case "replace":
                self.tg.start_soon(self.replace, act)
            case _:
                pass

    async def restart(self, node: _Node, *, keep_identity: bool, keep_peerstore: bool) -> None:
        assert self.net is not None and self.tg is not None
        self.net.restart(node.index)
        node.generation += 1
        if not keep_identity:
            node.identity = None
        if not keep_peerstore:
            node.peerstore = None
        await self.tg.start(self.run_node, node)

    async def replace(self, act: Action) -> None:
        """Crash each of ``act.nodes`` and restart it as a new peer, in a seeded order, one
        every ``act.over / len(act.nodes)`` seconds."""
        assert self.net is not None
        order = list(act.nodes)
        self.rng.child(f"replace/{act.at}").shuffle(order)
        step = act.over / len(order) if order else 0.0
        for i, index in enumerate(order):
            await anyio.sleep(max(0.0, act.at + i * step - anyio.current_time()))
            node = self.nodes[index]
            if node.scope is None:  # down already (crashed by another action)
                continue
            self.trace.record("replaced", node=index)
            self.net.crash(index)
            node.scope.cancel()
            node.scope = None
            await node.down.wait()
            await self.restart(node, keep_identity=False, keep_peerstore=False)

    def finish(self, *, interrupted: bool) -> None:
        """End the measured part of the run: trace ``end`` (or ``interrupted``), ignore what the
        teardown does, and reset every connection instead of closing each gracefully (at
        thousands of nodes a graceful teardown costs more wall time than a minute of
        simulation)."""
        if self.ended:
            return
        conns = self._connection_count() if self.net is not None else 0
        self.trace.record("interrupted" if interrupted else "end", conns=conns)
        self.ended = True
        self.trace.close()
        if self.net is not None:
            for index in self.nodes:
                self.net.crash(index)

    async def main(self) -> None:
        self.net = self._network()
        async with anyio.create_task_group() as tg:
            self.tg = tg
            for node in self.nodes.values():
                await tg.start(self.run_node, node)
            tg.start_soon(self.sampler)
            tg.start_soon(self.timeline)
            for node in self.nodes.values():
                if self.sc.bootstrap.peers > 0:
                    tg.start_soon(self.bootstrap, node)
                for workload in self.workloads.values():
                    tg.start_soon(workload.run_node, node.index)
            try:
                await anyio.sleep(self.sc.duration - anyio.current_time())
            except BaseException:  # an interrupt cancels the run: keep what it measured
                self.finish(interrupted=True)
                raise
            self.finish(interrupted=False)
            tg.cancel_scope.cancel()


#: Cyclic-garbage collector thresholds during a run (CPython's defaults: 700, 10, 10). A
#: simulation holds millions of live objects (every node's tasks, buffers and peerstore), and
#: with the defaults the collector rescans them so often that it took about a sixth of a
#: 100-node run and more at 1,000 nodes. Almost everything a run allocates dies by reference
#: counting; the rarer collections still reclaim cycles.
_GC_THRESHOLDS = (50_000, 20, 100)


@contextlib.contextmanager
def _lazy_collector() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(*_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*saved)


def run_scenario(
    scenario: Scenario,
    *,
    seed: int | None = None,
    trace_file: IO[str] | None = None,
    keep_trace: int = 0,
    on_advance: Callable[[float], None] | None = None,
) -> SimResult:
    """Run ``scenario`` to its end on a fresh virtual loop (blocking; call it outside any
    event loop).

    Args:
        scenario: what to simulate.
        seed: the root seed (the scenario's own ``seed`` if omitted).
        trace_file: where to write the JSONL trace.
        keep_trace: trace lines to keep in ``SimResult.trace_lines`` (for tests).
        on_advance: called with the virtual time each time the clock jumps (progress).

    Returns:
        The trace hash, metrics and timings. A ``KeyboardInterrupt`` (Ctrl-C) stops the run
        early: the result then has ``interrupted=True`` and what was measured until then.

    Raises:
        SimulationDeadlock: every task waited with no timer pending.
    """
    used_seed = scenario.seed if seed is None else seed
    sim: _Sim | None = None

    def advance(now: float) -> None:
        if on_advance is None:
            return
        try:
            on_advance(now)
        except KeyboardInterrupt:
            assert sim is not None
            sim.finish(interrupted=True)
            raise

    clock = VirtualClock(on_advance=advance if on_advance is not None else None)
    trace = TraceRecorder(clock, sink=trace_file, keep=keep_trace)
    sim = _Sim(scenario, used_seed, trace)
    trace.record("start", name=scenario.name, seed=used_seed, nodes=scenario.nodes)
    started = time.perf_counter()  # wall time for the report only, never traced
    interrupted = False
    with _lazy_collector():
        try:
            run_virtual(sim.main, clock=clock)
        except KeyboardInterrupt:
            interrupted = True
            sim.finish(interrupted=True)
    return SimResult(
        scenario=scenario,
        seed=used_seed,
        trace_hash=trace.hexdigest(),
        events=trace.count,
        virtual_seconds=clock.now,
        wall_seconds=time.perf_counter() - started,
        metrics=sim.metrics,
        workloads=dict(sim.workloads),
        interrupted=interrupted,
        trace_lines=tuple(trace.lines),
    )
