"""Kademlia on the simulator, the part every kad workload shares: a real ``Kad`` service
(``protocols.kad``) per node, joining the DHT (by bootstrap, or with routing tables filled as a
converged network has them), rejoining as a new peer after a replacement, per-node operations
that end when the node goes down, and the oracle of live servers that lookups are judged
against (docs/simulation.md, "Kademlia")."""

from __future__ import annotations

import bisect
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio
import attrs

from p2pstack.host import Host
from p2pstack.identity import PeerId
from p2pstack.interfaces import Service
from p2pstack.multiaddrs import parse_multiaddr
from p2pstack.peerstore import ADDR_TTL_PERMANENT
from p2pstack.roots.scenarios._workload import (
    NET_ERRORS,
    NodeInfo,
    NodeStarted,
    NodeStopped,
    SimContext,
    error_name,
)
from protocols.kad import Kad, KadConfig, KadError, peer_key

__all__ = ["OP_ERRORS", "KadLookupsConfig", "KadNodes"]

T = TypeVar("T")


#: Errors a DHT operation of the workload may end with (counted, never fatal to the run).
OP_ERRORS: tuple[type[BaseException], ...] = (KadError, *NET_ERRORS)


@attrs.frozen(kw_only=True)
class KadLookupsConfig:
    """``[kad]``: the DHT and its random lookups.

    With ``join = "bootstrap"``, nodes join one after another over ``join_spread`` seconds
    from ``join_at`` (node order), each bootstrapping through ``bootstrap_peers`` random nodes
    that joined before it. With ``join = "oracle"``, every routing table is filled at
    ``join_at`` as a long-running network would have it (each bucket holds up to ``k`` random
    peers of its range, addresses in the peerstore): lookups then measure a converged DHT
    without the cost of N joins. Nodes that come back as new peers always bootstrap. From
    ``lookup_at``, ``lookups`` closest-peer lookups of random keys run from random joined
    nodes, spread over ``lookup_spread`` seconds. ``k``, ``alpha`` and the timeouts go to
    ``KadConfig``; ``refresh_interval`` is the routing table's bucket refresh.
    """

    k: int = 20
    alpha: int = 3
    request_timeout: float = 10.0
    query_timeout: float = 60.0
    refresh_interval: float = 600.0
    join: str = "bootstrap"
    bootstrap_peers: int = 3
    join_at: float = 0.0
    join_spread: float = 30.0
    lookups: int = 200
    lookup_at: float = 60.0
    lookup_spread: float = 60.0


class KadNodes:
    """What every kad workload does per node: a ``Kad`` service per host, joining the DHT of
    the node's overlay (through peers that joined before), rejoining after a replacement, and
    running each node's DHT operations so that they end when the node goes down.

    Overlays are independent DHTs on one network (churn runs one with republish and one
    without); a workload maps nodes to overlays with ``overlay_of``.
    """

    def __init__(self, config: KadLookupsConfig, sim: SimContext) -> None:
        self.cfg = config
        self.sim = sim
        self.rng = sim.rng.child("kad")
        self._hosts: dict[int, tuple[int, Host]] = {}
        self._joined: dict[int, int] = {}  # node -> generation that finished joining
        self._wake: dict[int, anyio.Event] = {}
        # Insertion-ordered (a set of scopes would iterate in memory-address order).
        self._ops: dict[int, dict[anyio.CancelScope, None]] = {}
        self._warmed: dict[int, anyio.Event] = {}
        #: Nodes that run the DHT in client mode (they query, nobody queries them).
        self.clients: frozenset[int] = frozenset()
        #: Joins (bootstrap calls) that raised, and DHT operations that raised, by error type.
        self.errors: dict[str, int] = {}
        self.joins = 0

    # -- per-workload choices -------------------------------------------------------------------

    def overlay_of(self, index: int) -> int:
        """The overlay (independent DHT) of node ``index``; 0 unless a subclass splits."""
        return 0

    def kad_config(self, overlay: int) -> KadConfig:
        """The ``KadConfig`` of the nodes of ``overlay``."""
        c = self.cfg
        return KadConfig(
            mode="server",
            k=c.k,
            alpha=c.alpha,
            request_timeout=c.request_timeout,
            query_timeout=c.query_timeout,
            refresh_interval=c.refresh_interval,
            passthrough_namespaces=("sim",),
        )

    # -- the Workload protocol ------------------------------------------------------------------

    def services(self, node: NodeInfo) -> Sequence[Service]:
        config = self.kad_config(self.overlay_of(node.index))
        if node.index in self.clients:
            config = attrs.evolve(config, mode="client")
        return [
            Kad(
                config,
                rng=node.rng.child("kad"),
                random_bytes=node.rng.child("kad-ping").random_bytes,
            )
        ]

    def on_event(self, index: int, event: object) -> None:
        match event:
            case NodeStarted(generation=generation, host=host):
                self._hosts[index] = (generation, host)
                self._wake.setdefault(index, anyio.Event()).set()
            case NodeStopped():
                self._hosts.pop(index, None)
                self._joined.pop(index, None)
                for scope in self._ops.pop(index, {}):
                    scope.cancel()
            case _:
                pass

    async def run_node(self, index: int) -> None:
        """Join at this node's turn, then rejoin each time it comes back as a new peer."""
        overlay = self.overlay_of(index)
        members = [i for i in self.sim.node_indexes if self.overlay_of(i) == overlay]
        rank = members.index(index)
        if self.cfg.join == "oracle":
            if rank == 0:
                await anyio.sleep(self.cfg.join_at)
                self.warm_tables(members)
                self._warmed.setdefault(overlay, anyio.Event()).set()
            await self._warmed.setdefault(overlay, anyio.Event()).wait()
        else:
            await anyio.sleep(self.cfg.join_at + self.cfg.join_spread * rank / len(members))
        earlier = members[:rank]
        while True:
            current = self._hosts.get(index)
            if current is not None and self._joined.get(index) != current[0]:
                await self._join(index, current[0], earlier)
                earlier = members  # a rejoin bootstraps through anyone live
            wake = self._wake.setdefault(index, anyio.Event())
            if wake.is_set():
                self._wake[index] = wake = anyio.Event()
                continue
            await wake.wait()

    async def _join(self, index: int, generation: int, candidates: Sequence[int]) -> None:
        live = [i for i in candidates if i != index and i in self._joined and i not in self.clients]
        rng = self.rng.child(f"join/{index}/{generation}")
        chosen = rng.sample(live, min(self.cfg.bootstrap_peers, len(live)))
        addrs = [a for a in (self.sim.dial_address(i) for i in chosen) if a is not None]

        async def join(kad: Kad) -> bool:
            await kad.bootstrap(addrs)
            return True

        # The first node of an overlay has nobody to join through: it is the DHT.
        done = not addrs or await self.on_node(index, join, timeout=self.cfg.query_timeout * 2)
        if done and self._hosts.get(index, (-1,))[0] == generation:
            self.joins += 1
            self._joined[index] = generation

    async def on_node(
        self, index: int, op: Callable[[Kad], Awaitable[T]], *, timeout: float
    ) -> T | None:
        """Run ``op`` with node ``index``'s ``Kad`` service, bounded by ``timeout``.

        Args:
            index: the node.
            op: the operation.
            timeout: seconds before it counts as a ``TimeoutError``.

        Returns:
            ``op``'s result; None if the node is down or goes down meanwhile, or if it raised a
            DHT or network error (counted in ``errors``), or timed out.
        """
        current = self._hosts.get(index)
        if current is None:
            return None
        kad = current[1].service(Kad)
        with anyio.CancelScope() as scope:
            self._ops.setdefault(index, {})[scope] = None
            try:
                with anyio.fail_after(timeout):
                    return await op(kad)
            except OP_ERRORS as exc:
                if not self.sim.ended and index in self._hosts:
                    key = error_name(exc)
                    self.errors[key] = self.errors.get(key, 0) + 1
                return None
            finally:
                self._ops.get(index, {}).pop(scope, None)
        return None  # cancelled because the node went down

    def warm_tables(self, members: Sequence[int]) -> None:
        """Fill the routing tables of ``members`` (one overlay) as a converged network has
        them: for every bucket of every node, up to ``k`` random peers of that bucket's range,
        their addresses in the node's peerstore. Marks them all joined.

        Args:
            members: the nodes of one overlay.
        """
        now = anyio.current_time()
        hosts = {i: self._hosts[i][1] for i in members if i in self._hosts}
        entries = sorted(
            (int.from_bytes(peer_key(h.peer_id), "big"), i)
            for i, h in hosts.items()
            if i not in self.clients
        )
        points = [x for x, _ in entries]
        addrs = {i: [parse_multiaddr(ad)] for i in hosts if (ad := self.sim.dial_address(i))}
        rng = self.rng.child("warm")

        def count(prefix: int, shift: int) -> tuple[int, int]:
            lo = prefix << shift
            return bisect.bisect_left(points, lo), bisect.bisect_left(points, lo + (1 << shift))

        for i, host in hosts.items():
            x = int.from_bytes(peer_key(host.peer_id), "big")
            own = 0 if i in self.clients else 1  # a client is not among the entries
            picked: list[tuple[int, int]] = []
            for cpl in range(256):
                shift = 255 - cpl
                a, b = count((x >> shift) ^ 1, shift)  # first cpl bits shared, the next not
                bucket = entries[a:b]
                k = self.cfg.k
                picked.extend(bucket if len(bucket) <= k else rng.sample(bucket, k))
                a, b = count(x >> shift, shift)
                if b - a <= own:  # nobody else shares cpl + 1 bits with us: no deeper bucket
                    break
            table = host.service(Kad).routing_table
            for _, j in picked:
                peer = hosts[j].peer_id
                host.peerstore.add_addrs(peer, addrs[j], ADDR_TTL_PERMANENT)
                table.add(peer, now)
        for i in hosts:
            self._joined[i] = self._hosts[i][0]
        self.joins += len(hosts)

    # -- helpers for subclasses -----------------------------------------------------------------

    def joined(self, overlay: int) -> list[int]:
        """Nodes of ``overlay`` that are up and have joined, in node order."""
        return [i for i in sorted(self._joined) if self.overlay_of(i) == overlay]

    def peer_of(self, index: int) -> PeerId | None:
        """Node ``index``'s current peer ID (None while down)."""
        current = self._hosts.get(index)
        return None if current is None else current[1].peer_id

    def closest_nodes(self, overlay: int, target: bytes, count: int, exclude: int = 0) -> list[int]:
        """The ``count`` live joined servers of ``overlay`` closest to keyspace point
        ``target``, nearest first (the oracle lookups and records are judged against).

        Args:
            overlay: the DHT.
            target: a keyspace point.
            count: how many.
            exclude: a node to leave out (the one asking).

        Returns:
            Node numbers.
        """
        point = int.from_bytes(target, "big")
        ranked = [
            (int.from_bytes(peer_key(p), "big") ^ point, i)
            for i in self.joined(overlay)
            if i != exclude and i not in self.clients and (p := self.peer_of(i)) is not None
        ]
        return [i for _, i in sorted(ranked)[:count]]
