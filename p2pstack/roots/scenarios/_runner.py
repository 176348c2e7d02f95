"""Runs a ``Scenario`` on the virtual network and clock: the real host, security, muxer and
services per node, a timeline of faults, periodic pings and samples, all traced
(docs/simulation.md, "Running")."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from typing import IO

import anyio
import attrs
from anyio.abc import TaskStatus

from p2pstack.builder import open_host
from p2pstack.errors import P2PError
from p2pstack.events import ConnectionClosed, ConnectionOpened
from p2pstack.host import Host, HostConfig
from p2pstack.identity import Identity, PeerId
from p2pstack.interfaces import Muxer, SecurityChannel, Service
from p2pstack.peerstore import Peerstore
from p2pstack.roots.scenarios._metrics import Metrics
from p2pstack.roots.scenarios._model import Action, Scenario
from p2pstack.sim import SeededRandom, TraceRecorder, VirtualClock, run_virtual
from protocols.identify import Identify, PeerIdentified
from protocols.ping import Ping
from transports.mplex import Mplex
from transports.noise import Noise
from transports.plaintext import Plaintext
from transports.simnet import Latency, LinkSpec, NatSpec, SimNetwork
from transports.yamux import Yamux

__all__ = ["SimResult", "run_scenario"]

#: Wall-clock seconds the peer records' sequence numbers start from (identify needs a clock
#: that looks like Unix time; virtual time is added to it).
SIM_EPOCH = 1_700_000_000.0
#: The TCP port every node listens on.
LISTEN_PORT = 4001
#: Errors a dial, ping or identify may end with because of the (simulated) network.
_NET_ERRORS = (
    P2PError,
    TimeoutError,
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
)


@attrs.frozen(kw_only=True)
class SimResult:
    """What a run produced."""

    scenario: Scenario
    seed: int
    trace_hash: str
    events: int
    virtual_seconds: float
    wall_seconds: float
    metrics: Metrics
    trace_lines: tuple[str, ...] = ()


class _Node:
    def __init__(self, index: int) -> None:
        self.index = index
        self.identity: Identity | None = None
        self.peerstore: Peerstore | None = None
        self.host: Host | None = None
        self.scope: anyio.CancelScope | None = None
        self.generation = 0
        self.targets: list[int] = []


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
            spec = NatSpec.of_kind(
                box.kind, udp_timeout=box.udp_timeout, tcp_timeout=box.tcp_timeout
            )
            net.add_nat(spec, box.nodes)
        return net

    def _address(self, index: int) -> str:
        """Node ``index``'s listen address as its peers dial it (private behind a NAT)."""
        assert self.net is not None
        version = 4 if self.sc.network.ip == "ip4" else 6
        ip = next(ip for ip in self.net.addresses(index) if ip.version == version)
        return f"/ip{version}/{ip}/tcp/{LISTEN_PORT}"

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
        services: list[Service] = []
        if "identify" in self.sc.services:
            services.append(Identify(clock=lambda: SIM_EPOCH + anyio.current_time()))
        if "ping" in self.sc.services:
            services.append(
                Ping(random_bytes=rng.child("ping").random_bytes, clock=anyio.current_time)
            )
        return [security], [muxer], services

    async def run_node(self, node: _Node, *, task_status: TaskStatus[None]) -> None:
        assert self.net is not None
        if node.identity is None:
            node.identity = self._identity(node)
        if node.peerstore is None:
            node.peerstore = Peerstore(clock=anyio.current_time)
        security, muxers, services = self._stack(node)
        config = HostConfig(dial_timeout=self.sc.network.dial_timeout)
        with anyio.CancelScope() as scope:
            node.scope = scope
            async with open_host(
                identity=node.identity,
                transports=[self.net.transport(node.index)],
                security=security,
                muxers=muxers,
                services=services,
                listen=[
                    f"/ip4/0.0.0.0/tcp/{LISTEN_PORT}"
                    if self.sc.network.ip == "ip4"
                    else f"/ip6/::/tcp/{LISTEN_PORT}"
                ],
                peerstore=node.peerstore,
                config=config,
            ) as host:
                node.host = host
                self.trace.record("node_started", node=node.index, peer=str(host.peer_id))
                with host.subscribe() as events:
                    task_status.started()
                    async for event in events:
                        self._on_event(node.index, event)
        node.host = None

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
            case PeerIdentified(peer_id=peer, protocols=protocols):
                self.metrics.identified(anyio.current_time())
                self.trace.record(
                    "identified", node=index, peer=self.by_peer.get(peer, 0), protos=len(protocols)
                )
            case _:
                pass

    # -- activity --------------------------------------------------------------------------------

    async def dial(self, node: _Node, target: int) -> None:
        host, other = node.host, self.nodes[target]
        if host is None or other.identity is None or host.connections(other.identity.peer_id):
            return
        addr = f"{self._address(target)}/p2p/{other.identity.peer_id}"
        try:
            await host.connect(addr)
        except _NET_ERRORS as exc:
            if self.ended:
                return
            self.metrics.dial_failed(anyio.current_time())
            self.trace.record("dial_failed", node=node.index, peer=target, err=_err(exc))

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

    async def ping_loop(self, node: _Node) -> None:
        cfg = self.sc.ping
        rng = self.rng.child(f"ping/{node.index}")
        await anyio.sleep(cfg.interval * (1.0 + rng.random()))
        while True:
            host = node.host
            if host is not None:
                peers = list(dict.fromkeys(c.remote_peer for c in host.connections()))
                if cfg.targets and len(peers) > cfg.targets:
                    peers = rng.sample(peers, cfg.targets)
                for peer in peers:
                    await self.ping(node.index, host, peer)
            await anyio.sleep(cfg.interval)

    async def ping(self, index: int, host: Host, peer: PeerId) -> None:
        target = self.by_peer.get(peer, 0)
        now = anyio.current_time()
        try:
            rtt = (await host.service(Ping).ping(peer, timeout=self.sc.ping.timeout))[0]
        except _NET_ERRORS as exc:
            if self.ended:  # the teardown reset the connection
                return
            self.metrics.ping(now, None)
            self.trace.record("ping_failed", node=index, peer=target, err=_err(exc))
            return
        if self.ended:
            return
        self.metrics.ping(now, rtt)
        self.trace.record("ping", node=index, peer=target, rtt=round(rtt, 9))

    async def sampler(self) -> None:
        assert self.net is not None
        while not self.ended:
            up = sum(1 for n in self.nodes.values() if n.host is not None)
            conns = self.net.connection_count
            self.metrics.sample(anyio.current_time(), conns, up)
            self.trace.record("sample", conns=conns, up=up)
            await anyio.sleep(self.sc.sample_interval)

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
                self.net.restart(node.index)
                node.generation += 1
                if not act.keep_identity:
                    node.identity = None
                if not act.keep_peerstore:
                    node.peerstore = None
                await self.tg.start(self.run_node, node)
            case _:
                pass

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
                if "ping" in self.sc.services and self.sc.ping.interval > 0:
                    tg.start_soon(self.ping_loop, node)
            await anyio.sleep(self.sc.duration - anyio.current_time())
            self.trace.record("end", conns=self.net.connection_count)
            self.ended = True
            self.trace.close()
            # Reset every connection instead of closing each gracefully: at thousands of nodes
            # a graceful teardown costs more wall time than a minute of simulation.
            for index in self.nodes:
                self.net.crash(index)
            tg.cancel_scope.cancel()


def _err(exc: BaseException) -> str:
    """A deterministic description of a failure: its type, and the inner type of a dial error."""
    errors = getattr(exc, "errors", None)
    if errors:
        return f"{type(exc).__name__}:{type(errors[0][1]).__name__}"
    return type(exc).__name__


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
        The trace hash, metrics and timings.

    Raises:
        SimulationDeadlock: every task waited with no timer pending.
    """
    used_seed = scenario.seed if seed is None else seed
    clock = VirtualClock(on_advance=on_advance)
    trace = TraceRecorder(clock, sink=trace_file, keep=keep_trace)
    sim = _Sim(scenario, used_seed, trace)
    trace.record("start", name=scenario.name, seed=used_seed, nodes=scenario.nodes)
    started = time.perf_counter()  # wall time for the report only, never traced
    with _lazy_collector():
        run_virtual(sim.main, clock=clock)
    return SimResult(
        scenario=scenario,
        seed=used_seed,
        trace_hash=trace.hexdigest(),
        events=trace.count,
        virtual_seconds=clock.now,
        wall_seconds=time.perf_counter() - started,
        metrics=sim.metrics,
        trace_lines=tuple(trace.lines),
    )
