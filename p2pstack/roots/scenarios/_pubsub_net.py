"""Pubsub on the simulator, the part every pubsub workload shares: one overlay of real router
cores (``GossipsubRouter`` or ``FloodsubRouter`` of ``protocols.pubsub``) per node, wired by
simulated links (the latency, bandwidth and loss model of ``transports.simnet``), driven by one
event queue on virtual time, with every publish and first delivery recorded
(docs/pubsub.md, "Simulation").

The cores are driven directly, not through the ``Pubsub`` host service: RPC values go from one
core to the other without the streams, multistream, security and muxer of the full stack (at
1,000 nodes those cost minutes per virtual minute, see docs/simulation.md, "Scale"). Every
RPC's framed wire size is still counted, and everything the routers decide (meshes, gossip,
scores, duplicates) is theirs.

Workloads with other node behaviours (the Sybils of ``_pubsub_sybil_behaviour.py``) subclass
``Overlay`` and change what a node sends, validates and delivers; they may give each link a
fixed latency (``connect(..., latency=)``) and skip the byte counts, which saves encoding every
RPC for its size.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from typing import Any

import anyio

from p2pstack.identity import Identity, PeerId
from p2pstack.roots.scenarios._pubsub_record import DeliveryRecorder
from protocols.pubsub import (
    GOSSIPSUB_V12_PROTOCOL_ID,
    RPC,
    FloodsubConfig,
    FloodsubRouter,
    GossipsubConfig,
    GossipsubRouter,
    Outgoing,
    PeerInfo,
    PubsubProtocolError,
    Received,
    ValidationResult,
    encode_rpc,
)
from transports.simnet import LinkDirection, LinkSpec

__all__ = ["EventQueue", "FixedLatency", "Overlay", "PubsubNode", "Router", "framed_size"]

#: A router core.
Router = GossipsubRouter | FloodsubRouter


def framed_size(rpc: RPC) -> int:
    """The bytes an RPC takes on a stream: its encoding and the varint length prefix.

    Args:
        rpc: the RPC.

    Returns:
        Its framed size.
    """
    n = len(encode_rpc(rpc))
    prefix, rest = 1, n >> 7
    while rest:
        prefix, rest = prefix + 1, rest >> 7
    return n + prefix


class EventQueue:
    """Timed callbacks in virtual time, run in (time, insertion) order; the anyio clock is
    kept within ``step`` seconds behind, so that the runner's progress and interrupts work
    without one loop wake-up per event. Callbacks get the exact event time."""

    def __init__(self, step: float = 0.05) -> None:
        self.step = step
        #: The queue itself (``(time, seq, fn, arg)``), public for hot paths that push directly.
        self.heap: list[tuple[float, int, Callable[[float, Any], None], Any]] = []
        #: The last insertion number (ties in time run in insertion order).
        self.seq = 0
        self._synced = 0.0
        #: The time of the event being run.
        self.now = 0.0

    def at(self, t: float, fn: Callable[[float, Any], None], arg: Any = None) -> None:
        """Run ``fn(t, arg)`` at virtual time ``t``."""
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, fn, arg))

    async def run(self, until: float) -> None:
        """Run the events due up to ``until``.

        Args:
            until: the end, in the runner's virtual time; later events stay queued.
        """
        heap = self.heap
        self._synced = anyio.current_time()
        while heap and heap[0][0] <= until:
            t, _, fn, arg = heapq.heappop(heap)
            if t > self._synced + self.step:
                await anyio.sleep(t - anyio.current_time())
                self._synced = t
            self.now = t
            fn(t, arg)
        if until > self._synced:
            await anyio.sleep(max(0.0, until - anyio.current_time()))

    def run_until(self, until: float) -> None:
        """Run the events due up to ``until`` at once, away from the anyio clock (for a
        workload that keeps its own time); ``now`` is left at ``until`` or later.

        Args:
            until: the end, in this queue's time; later events stay queued.
        """
        heap = self.heap
        while heap and heap[0][0] <= until:
            t, _, fn, arg = heapq.heappop(heap)
            self.now = t
            fn(t, arg)
        self.now = max(self.now, until)


class FixedLatency:
    """A link with a constant one-way delay and no bandwidth limit or loss (both directions
    may share one).

    Args:
        latency: the delay in seconds.
    """

    def __init__(self, latency: float) -> None:
        self.latency = latency

    def schedule(self, now: float, nbytes: int, rng: random.Random) -> float:
        """When a write sent at ``now`` arrives (``LinkDirection.schedule``'s signature)."""
        return now + self.latency


class PubsubNode:
    """One node of an overlay.

    Attributes:
        index: its node number (1..N).
        identity: its key and peer ID.
        router: its router core, None until it started.
        hops: message ID -> the hops it took to reach this node (0 for its own).
        up: whether it is running.
    """

    def __init__(self, index: int, identity: Identity) -> None:
        self.index = index
        self.identity = identity
        self.peer_id = identity.peer_id
        self.router: Router | None = None
        self.hops: dict[bytes, int] = {}
        self.up = False


class Overlay:
    """One pubsub network of router cores on simulated links (see the module docstring).

    Subclasses change node behaviour through ``receive`` (what a node does with an RPC),
    ``validate`` (the topic validator's verdict), ``delivered`` (what a delivery counts for),
    ``send`` (what leaves a node), ``on_px`` and ``ip_of``.

    Args:
        name: the overlay's name (``"gossipsub"``, ``"floodsub"``, ...), also its rng label.
        config: the router of every node and its parameters.
        identities: node number -> identity.
        link: the link model of every pair; None when every ``connect`` gives a latency.
        events: the event queue (shared by overlays that run side by side).
        rng: this overlay's random source.
        recorder: where publishes, deliveries, duplicates and bytes go.
        count_bytes: whether to encode each RPC for its size (the byte counts and the
            bandwidth model need it; fixed-latency links do not).
    """

    #: The protocol every connection speaks.
    protocol = GOSSIPSUB_V12_PROTOCOL_ID
    #: A heartbeat timer is re-armed at least this long after the one that ran (0: at the
    #: router's deadline as it is).
    timer_floor = 0.0

    def __init__(
        self,
        name: str,
        config: GossipsubConfig | FloodsubConfig,
        identities: dict[int, Identity],
        *,
        link: LinkSpec | None,
        events: EventQueue,
        rng: random.Random,
        recorder: DeliveryRecorder,
        count_bytes: bool = True,
    ) -> None:
        self.name = name
        self.config = config
        self.link = link
        self.count_bytes = count_bytes
        self.events = events
        self.rng = rng
        self._link_rng = random.Random(rng.getrandbits(64))
        self.recorder = recorder
        self.nodes = {i: PubsubNode(i, ident) for i, ident in identities.items()}
        self.index_of = {n.peer_id: i for i, n in self.nodes.items()}
        self.neighbours: dict[int, dict[int, None]] = {i: {} for i in self.nodes}
        self._links: dict[tuple[int, int], LinkDirection | FixedLatency] = {}
        #: RPCs that hit a protocol error at the receiver, and writes lost to link resets.
        self.errors = 0
        self.resets = 0

    # -- node life --------------------------------------------------------------------------------

    def make_router(self, node: PubsubNode, now: float) -> Router:
        """The router core of a node starting at ``now``."""
        key = node.identity.private_key
        seqno = self.rng.getrandbits(64)
        if isinstance(self.config, FloodsubConfig):
            return FloodsubRouter(node.peer_id, config=self.config, private_key=key, seqno=seqno)
        rng = random.Random(self.rng.getrandbits(64))
        return GossipsubRouter(
            node.peer_id, rng=rng, config=self.config, private_key=key, seqno=seqno, now=now
        )

    def start(
        self, index: int, now: float, topics: Sequence[str] = (), router: Router | None = None
    ) -> None:
        """Start node ``index``: its router, its subscriptions, its timers.

        Args:
            index: the node.
            now: the current time.
            topics: the topics it joins at once.
            router: its router core, made by the caller (default: ``make_router``).
        """
        node = self.nodes[index]
        node.router = self.make_router(node, now) if router is None else router
        node.up = True
        for topic in topics:
            self.subscribe(index, topic, now)
        self._arm_timer(node)

    def connect(self, a: int, b: int, now: float, latency: float | None = None) -> None:
        """Open a pubsub stream both ways between running nodes ``a`` (the dialer) and ``b``.

        Args:
            a: the dialer.
            b: the other node.
            now: the current time.
            latency: a fixed one-way delay for this link (default: the overlay's ``link``).
        """
        na, nb = self.nodes[a], self.nodes[b]
        if a == b or b in self.neighbours[a] or na.router is None or nb.router is None:
            return
        self.neighbours[a][b] = None
        self.neighbours[b][a] = None
        if latency is not None:
            self._links[(a, b)] = self._links[(b, a)] = FixedLatency(latency)
        self.send(na, self._add_peer(na.router, nb.peer_id, outbound=True, now=now), now)
        self.send(nb, self._add_peer(nb.router, na.peer_id, outbound=False, now=now), now)

    def stop(self, index: int, now: float) -> None:
        """Node ``index`` goes down: its neighbours drop it (RPCs in flight from or to it are
        lost), its router is gone."""
        node = self.nodes[index]
        node.up = False
        node.router = None
        for other in self.neighbours.pop(index, {}):
            self.neighbours[other].pop(index, None)
            self._links.pop((index, other), None)
            self._links.pop((other, index), None)
            router = self.nodes[other].router
            if isinstance(router, FloodsubRouter):
                router.remove_peer(node.peer_id)
            elif router is not None:
                router.remove_peer(node.peer_id, now)
        self.neighbours[index] = {}

    def _add_peer(
        self, router: Router, peer: PeerId, *, outbound: bool, now: float
    ) -> list[Outgoing]:
        if isinstance(router, FloodsubRouter):
            return router.add_peer(peer)
        ip = self.ip_of(self.index_of[peer])
        return router.add_peer(peer, self.protocol, outbound=outbound, ip=ip, now=now)

    def ip_of(self, index: int) -> str:
        """The IP address of node ``index`` (each its own, for the score's colocation factor)."""
        return f"10.{index >> 8 & 255}.{index & 255}.1"

    def subscribe(self, index: int, topic: str, now: float) -> None:
        """Node ``index`` joins ``topic``."""
        node = self.nodes[index]
        router = node.router
        if router is None:
            return
        if isinstance(router, FloodsubRouter):
            self.send(node, router.subscribe(topic), now)
        else:
            self.send(node, router.subscribe(topic, now), now)

    def publish(self, index: int, topic: str, data: bytes, now: float) -> bytes | None:
        """Node ``index`` publishes ``data`` on ``topic``; returns the message ID (None when
        the node is down)."""
        node = self.nodes[index]
        if node.router is None:
            return None
        _, msg_id, out = node.router.publish(topic, data, now)
        node.hops[msg_id] = 0
        receivers = sum(1 for n in self.nodes.values() if n.up and n is not node)
        self.recorder.published(msg_id, index, now, receivers)
        self.send(node, out, now)
        return msg_id

    # -- timers -----------------------------------------------------------------------------------

    def _arm_timer(self, node: PubsubNode, not_before: float | None = None) -> None:
        if isinstance(node.router, GossipsubRouter):
            deadline = node.router.next_deadline()
            if not_before is not None and deadline < not_before:
                deadline = not_before
            self.events.at(deadline, self._on_timer, (node, node.router))

    def _on_timer(self, now: float, item: tuple[PubsubNode, GossipsubRouter]) -> None:
        node, router = item
        if node.router is not router:  # stopped (and maybe restarted with a new router)
            return
        self.send(node, router.handle_timer(now), now)
        self._arm_timer(node, now + self.timer_floor if self.timer_floor else None)

    # -- the wire ---------------------------------------------------------------------------------

    def send(self, node: PubsubNode, out: list[Outgoing], now: float) -> None:
        """Put a node's RPCs on its links (each RPC value is encoded once for its size).

        Args:
            node: the sender.
            out: ``(peer, RPC)`` pairs from its router.
            now: the current time.
        """
        sizes: dict[int, int] = {}  # id() is stable here: ``out`` holds every RPC
        src = node.index
        links, index_of, rng = self._links, self.index_of, self._link_rng
        rec, heap, arrive = self.recorder, self.events.heap, self._arrive
        sent, size, count_bytes = 0, 0, self.count_bytes
        for peer, rpc in out:
            dst = index_of[peer]
            if count_bytes:
                size = sizes.get(id(rpc), -1)
                if size < 0:
                    size = sizes[id(rpc)] = framed_size(rpc)
            sent += size
            rec.messages_sent += len(rpc.publish)
            direction = links.get((src, dst))
            if direction is None:
                assert self.link is not None, "a link without a latency needs the overlay's"
                direction = links[(src, dst)] = LinkDirection(self.link)
            arrival = direction.schedule(now, size, rng)
            if arrival is None:
                self.resets += 1
                continue
            self.events.seq += 1
            item = (src, dst, rpc, direction)
            heapq.heappush(heap, (arrival, self.events.seq, arrive, item))
        if out:
            rec.rpcs_sent += len(out)
            rec.bytes_sent[src] = rec.bytes_sent.get(src, 0) + sent

    def _arrive(self, now: float, item: tuple[int, int, RPC, LinkDirection | FixedLatency]) -> None:
        src, dst, rpc, direction = item
        node = self.nodes[dst]
        if node.router is None or self._links.get((src, dst)) is not direction:
            return  # the link went down meanwhile (a stop): what was in flight is lost
        self.receive(node, self.nodes[src], rpc, now)

    def receive(self, node: PubsubNode, src: PubsubNode, rpc: RPC, now: float) -> None:
        """What ``node`` does with an RPC from ``src``: its router takes it, new messages are
        validated, recorded as delivered and forwarded.

        Args:
            node: the receiver.
            src: the sender.
            rpc: the RPC.
            now: the current time.
        """
        router = node.router
        assert router is not None
        px: tuple[PeerInfo, ...] = ()
        try:
            if isinstance(router, FloodsubRouter):
                result = router.handle_rpc(src.peer_id, rpc, now)
            else:
                gossip = router.handle_rpc(src.peer_id, rpc, now)
                result, px = gossip.rpc, gossip.px
                self.send(node, gossip.out, now)
        except PubsubProtocolError:
            self.errors += 1
            return
        if result.duplicates:
            self.recorder.duplicates(node.index, result.duplicates)
        for received in result.received:
            hop = src.hops.get(received.msg_id, 0) + 1
            node.hops[received.msg_id] = hop
            verdict = self.validate(node, received, now)
            if verdict is not ValidationResult.ACCEPT:
                if isinstance(router, GossipsubRouter):
                    router.report_validation(received.msg_id, verdict, now)
                continue
            if received.local:
                self.delivered(node, received, now, hop)
            if isinstance(router, FloodsubRouter):
                self.send(node, router.forward(received), now)
            else:
                self.send(node, router.forward(received, now), now)
        if px:
            self.on_px(node, px, now)

    def validate(self, node: PubsubNode, received: Received, now: float) -> ValidationResult:
        """The topic validator of ``node`` (accepts everything; Sybil scenarios override)."""
        return ValidationResult.ACCEPT

    def delivered(self, node: PubsubNode, received: Received, now: float, hops: int) -> None:
        """``node`` accepted a message on a topic it joined: recorded with its hop count."""
        self.recorder.delivered(node.index, received.msg_id, now, hops)

    def on_px(self, node: PubsubNode, peers: tuple[PeerInfo, ...], now: float) -> None:
        """Peers offered to ``node`` by peer exchange: connect to the known running ones."""
        for info in peers:
            other = self.index_of.get(info.peer_id)
            if other is not None and self.nodes[other].up:
                self.connect(node.index, other, now)

    # -- inspection -------------------------------------------------------------------------------

    def mesh_degrees(self, topic: str) -> list[int]:
        """The mesh size of ``topic`` at every running gossipsub node, in node order."""
        return [
            len(n.router.mesh.get(topic, ()))
            for n in self.nodes.values()
            if n.up and isinstance(n.router, GossipsubRouter)
        ]
