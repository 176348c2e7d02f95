"""A network of gossipsub router cores on a virtual clock, for the Sybil attack simulation
(docs/pubsub.md, "Sybil attacks"): the real ``GossipsubRouter`` per node (with the real peer
score), RPC values passed along links with a fixed latency per link, in time order, one event
heap. There is no byte stream below the routers (no encoding, muxer, bandwidth or loss): what
is measured is the routers' behaviour, which is what a Sybil attack targets, at a cost that
lets a run hold thousands of Sybil connections.

Honest nodes check each new message with a validator (accept or reject, reported to the score
as the ``Pubsub`` service does) before forwarding and delivering it. Sybils are ``SybilRouter``
wrappers and accept everything.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Protocol

import attrs

from p2pstack.identity import PeerId
from protocols.pubsub import (
    GOSSIPSUB_V11_PROTOCOL_ID,
    RPC,
    GossipResult,
    GossipsubRouter,
    Message,
    Outgoing,
    Received,
    ValidationResult,
)

__all__ = ["CoreNet", "Deliver", "NetNode", "RouterLike", "Validate"]

#: Called for each message an honest node delivers: (node, message ID, virtual time).
Deliver = Callable[[int, bytes, float], None]
#: An honest node's topic validator.
Validate = Callable[[Message], ValidationResult]

_DELIVER, _TIMER, _CALL = 0, 1, 2


class RouterLike(Protocol):
    """The router calls the network drives (``GossipsubRouter`` and ``SybilRouter``)."""

    def add_peer(
        self, peer: PeerId, protocol: str, *, outbound: bool, ip: str | None, now: float
    ) -> list[Outgoing]: ...

    def handle_rpc(self, peer: PeerId, rpc: RPC, now: float) -> GossipResult: ...

    def forward(self, received: Received, now: float) -> list[Outgoing]: ...

    def next_deadline(self) -> float: ...

    def handle_timer(self, now: float) -> list[Outgoing]: ...


@attrs.define(eq=False)
class NetNode:
    """One node of the network.

    Attributes:
        index: its position in ``CoreNet.nodes``.
        peer: its peer ID.
        router: its router (a ``GossipsubRouter`` for honest nodes).
        honest: whether it validates and its deliveries count.
        ip: its IP address (the score's colocation factor).
        peers: the nodes it is connected to.
    """

    index: int
    peer: PeerId
    router: RouterLike
    honest: bool
    ip: str
    peers: set[int] = attrs.Factory(set)


class CoreNet:
    """Router cores connected by links of fixed latency, run in virtual time.

    Args:
        validate: the honest nodes' validator.
        on_deliver: called for every message an honest node accepts on a subscribed topic.
    """

    def __init__(self, *, validate: Validate, on_deliver: Deliver) -> None:
        self.nodes: list[NetNode] = []
        self.now = 0.0
        self._validate = validate
        self._on_deliver = on_deliver
        self._by_peer: dict[PeerId, int] = {}
        self._latency: dict[tuple[int, int], float] = {}
        self._heap: list[tuple[float, int, int, int, int, object]] = []
        self._seq = 0
        #: RPCs delivered (one per link crossing).
        self.rpcs = 0

    # -- building -------------------------------------------------------------------------------

    def add_node(self, router: RouterLike, peer: PeerId, *, honest: bool, ip: str) -> NetNode:
        """Add a node whose router was created at the current time; its timer starts.

        Args:
            router: the node's router.
            peer: its peer ID (the router's ``local``).
            honest: whether it is an honest node.
            ip: its IP address.

        Returns:
            The node.
        """
        node = NetNode(len(self.nodes), peer, router, honest, ip)
        self.nodes.append(node)
        self._by_peer[peer] = node.index
        self._push(router.next_deadline(), _TIMER, node.index, 0, None)
        return node

    def connect(self, a: int, b: int, latency: float) -> None:
        """Connect nodes ``a`` (the dialer) and ``b`` now, both directions ``latency`` seconds.

        Args:
            a: the dialing node.
            b: the other node.
            latency: one-way delay in seconds.
        """
        if b in self.nodes[a].peers or a == b:
            return
        self._latency[(a, b)] = self._latency[(b, a)] = latency
        na, nb = self.nodes[a], self.nodes[b]
        na.peers.add(b)
        nb.peers.add(a)
        proto = GOSSIPSUB_V11_PROTOCOL_ID
        self.send(a, na.router.add_peer(nb.peer, proto, outbound=True, ip=nb.ip, now=self.now))
        self.send(b, nb.router.add_peer(na.peer, proto, outbound=False, ip=na.ip, now=self.now))

    def node_of(self, peer: PeerId) -> int:
        """The index of the node with ``peer`` as its ID (``KeyError`` if none)."""
        return self._by_peer[peer]

    # -- running --------------------------------------------------------------------------------

    def at(self, when: float, call: Callable[[float], None]) -> None:
        """Run ``call(now)`` at virtual time ``when`` (not before the current time)."""
        self._push(max(when, self.now), _CALL, 0, 0, call)

    def send(self, src: int, out: list[Outgoing]) -> None:
        """Put ``src``'s RPCs on their links (each arrives one link latency from now)."""
        for peer, rpc in out:
            dst = self._by_peer[peer]
            self._push(self.now + self._latency[(src, dst)], _DELIVER, dst, src, rpc)

    def run_until(self, end: float) -> None:
        """Process every event due up to ``end`` in time order (ties: in scheduling order).

        Args:
            end: the virtual time to stop at (the clock is left there).
        """
        heap = self._heap
        while heap and heap[0][0] <= end:
            when, _, kind, dst, src, payload = heapq.heappop(heap)
            self.now = when
            if kind == _DELIVER:
                assert isinstance(payload, RPC)
                self._receive(dst, src, payload)
            elif kind == _TIMER:
                self._timer(dst)
            else:
                assert callable(payload)
                payload(when)
        self.now = max(self.now, end)

    def _push(self, when: float, kind: int, dst: int, src: int, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, kind, dst, src, payload))

    def _timer(self, index: int) -> None:
        router = self.nodes[index].router
        self.send(index, router.handle_timer(self.now))
        self._push(max(router.next_deadline(), self.now + 1e-3), _TIMER, index, 0, None)

    def _receive(self, dst: int, src: int, rpc: RPC) -> None:
        self.rpcs += 1
        node, now = self.nodes[dst], self.now
        result = node.router.handle_rpc(self.nodes[src].peer, rpc, now)
        out = list(result.out)
        for received in result.rpc.received:
            verdict = self._validate(received.message) if node.honest else ValidationResult.ACCEPT
            if verdict is ValidationResult.ACCEPT:
                out += node.router.forward(received, now)
                if node.honest and received.local:
                    self._on_deliver(dst, received.msg_id, now)
            elif isinstance(node.router, GossipsubRouter):
                node.router.report_validation(received.msg_id, verdict, now)
        self.send(dst, out)
