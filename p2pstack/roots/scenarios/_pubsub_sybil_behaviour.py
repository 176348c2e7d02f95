"""Sybil behaviours for the gossipsub attack simulation (the attacks of the GossipSub v1.1
evaluation, Vyzovitis et al. 2020, https://arxiv.org/abs/2007.02754, section 6): a Sybil runs a
real ``GossipsubRouter`` core, speaks the protocol correctly and filters what its router sends.

- ``honest``: everything passes (the covert-flash Sybil before its flash).
- ``drop``: no message ever leaves the Sybil, neither forwarded nor as an IWANT answer, and it
  asks for none (no IWANT); the rest of its control traffic (SUBSCRIBE, GRAFT, PRUNE, IHAVE)
  goes out as usual, so it stays in meshes.
- ``spam``: ``drop``, and every ``spam`` tick it publishes invalid messages (well signed, with a
  payload the topic validator rejects) to the peers of its mesh.

A covert-flash Sybil starts ``honest`` and switches to ``drop`` at its flash time
(``Sybil.mode`` is plain state). Sybils are greedy: their config grafts every peer
(``greedy_config``), so that they fill the honest nodes' meshes as far as those let them.

``SybilOverlay`` is the shared pubsub ``Overlay`` with these behaviours: every RPC a Sybil node
sends passes its filter, Sybils accept every message, honest nodes validate with the workload's
validator, only honest deliveries count, PX is not acted on (the evaluation ran without it),
links have fixed latencies and no bytes are counted.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable

import attrs

from p2pstack.identity import Identity, PeerId, PrivateKey
from p2pstack.roots.scenarios._pubsub_net import EventQueue, Overlay, PubsubNode
from p2pstack.roots.scenarios._pubsub_record import DeliveryRecorder
from protocols.pubsub import (
    GOSSIPSUB_V11_PROTOCOL_ID,
    RPC,
    GossipsubConfig,
    GossipsubRouter,
    Message,
    Outgoing,
    PeerInfo,
    Received,
    ValidationResult,
    make_message,
)

__all__ = [
    "SPAM_PREFIX",
    "Deliver",
    "Sybil",
    "SybilMode",
    "SybilOverlay",
    "Validate",
    "greedy_config",
]

#: Payloads of invalid messages start with this (the simulation's validator rejects them).
SPAM_PREFIX = b"spam:"

#: Called for each message an honest node delivers: (node, message ID, virtual time).
Deliver = Callable[[int, bytes, float], None]
#: An honest node's topic validator.
Validate = Callable[[Message], ValidationResult]


class SybilMode(enum.Enum):
    """What a Sybil's router is allowed to send (see the module docstring)."""

    HONEST = "honest"
    DROP = "drop"
    SPAM = "spam"


def greedy_config(base: GossipsubConfig, peers: int) -> GossipsubConfig:
    """A Sybil's router settings: ``base`` with a mesh as large as its peer count, so its
    heartbeat grafts every peer it has (respecting backoffs, which cost it nothing), and
    scoring off (a Sybil has no use for it).

    Args:
        base: the honest nodes' settings.
        peers: how many peers the Sybil connects to (at least 1).

    Returns:
        The Sybil's settings.
    """
    d = max(peers, base.d_hi, 1)
    return attrs.evolve(base, d=d, d_lo=d, d_hi=d, d_score=0, score_params=None)


def _without_messages(rpc: RPC) -> RPC | None:
    """``rpc`` without its messages and IWANT requests, or None when nothing is left."""
    control = rpc.control
    if control is not None and control.iwant:
        control = attrs.evolve(control, iwant=()) or None
    if not rpc.publish and control is rpc.control:
        return rpc
    if not rpc.subscriptions and not control:
        return None
    return RPC(subscriptions=rpc.subscriptions, control=control)


class Sybil:
    """A Sybil's behaviour around its own gossipsub router core: a filter on what the router
    sends, and invalid messages to spam with.

    Args:
        router: the Sybil's own router (``greedy_config`` settings).
        mode: the behaviour to start with.
        private_key: the Sybil's key, to sign its invalid messages.
        seqno: the first sequence number of its invalid messages.
    """

    def __init__(
        self, router: GossipsubRouter, mode: SybilMode, *, private_key: PrivateKey, seqno: int = 0
    ) -> None:
        self.router = router
        self.mode = mode
        self._key = private_key
        self._seqno = seqno
        #: Messages withheld (one per peer a message would have gone to).
        self.withheld = 0
        #: Invalid messages sent (one per peer).
        self.spam_sent = 0

    @property
    def local(self) -> PeerId:
        """The Sybil's peer ID."""
        return self.router.local

    def filter(self, out: list[Outgoing]) -> list[Outgoing]:
        """Apply the behaviour to what the router wants to send.

        Args:
            out: the router's output.

        Returns:
            What the Sybil sends.
        """
        if self.mode is SybilMode.HONEST:
            return out
        kept: list[Outgoing] = []
        for peer, rpc in out:
            self.withheld += len(rpc.publish)
            stripped = _without_messages(rpc)
            if stripped is not None:
                kept.append((peer, stripped))
        return kept

    def spam(self, topic: str, count: int) -> list[Outgoing]:
        """In ``spam`` mode: ``count`` new invalid messages on ``topic``, each to every peer of
        the Sybil's mesh of ``topic`` (nothing in the other modes).

        Args:
            topic: the topic.
            count: messages to make.

        Returns:
            The RPCs (one per peer, all messages in it).
        """
        if self.mode is not SybilMode.SPAM or count <= 0:
            return []
        router = self.router
        peers = router.ordered(router.mesh.get(topic, set()))
        if not peers:
            return []
        messages = []
        for _ in range(count):
            data = SPAM_PREFIX + self._seqno.to_bytes(8, "big")
            messages.append(
                make_message(
                    topic,
                    data,
                    policy=router.config.policy,
                    private_key=self._key,
                    seqno=self._seqno,
                )
            )
            self._seqno += 1
        rpc = RPC(publish=tuple(messages))
        self.spam_sent += count * len(peers)
        return [(peer, rpc) for peer in peers]


class SybilOverlay(Overlay):
    """Honest nodes ``0 .. honest - 1`` and Sybils (``sybils``) on one overlay (see the module
    docstring); every node gets its router from the caller (``start(..., router=)``) and every
    link its latency (``connect(..., latency=)``).

    Args:
        identities: node number -> identity, honest nodes first.
        honest: how many nodes are honest.
        config: the honest nodes' router settings.
        events: the event queue (its own clock: run with ``events.run_until``).
        rng: the overlay's random source (links with fixed latencies draw nothing from it).
        validate: the honest nodes' topic validator.
        on_deliver: told of every message an honest node accepts on a topic it joined.
    """

    #: v1.1: no IDONTWANT, as in the evaluation.
    protocol = GOSSIPSUB_V11_PROTOCOL_ID
    #: A router whose next deadline is (almost) now runs again 1 ms later, not at once.
    timer_floor = 1e-3

    def __init__(
        self,
        identities: dict[int, Identity],
        *,
        honest: int,
        config: GossipsubConfig,
        events: EventQueue,
        rng: random.Random,
        validate: Validate,
        on_deliver: Deliver,
    ) -> None:
        super().__init__(
            "gossipsub-sybil",
            config,
            identities,
            link=None,
            events=events,
            rng=rng,
            recorder=DeliveryRecorder(len(identities)),
            count_bytes=False,
        )
        self.honest = honest
        #: Node number -> the behaviour of that Sybil.
        self.sybils: dict[int, Sybil] = {}
        self._validate = validate
        self._on_deliver = on_deliver
        #: RPCs delivered (one per link crossing).
        self.rpcs = 0

    def ip_of(self, index: int) -> str:
        """Honest nodes on 10.0/16, Sybils on 10.1/16, each its own address."""
        net, n = (0, index) if index < self.honest else (1, index - self.honest)
        return f"10.{net}.{n // 250}.{n % 250 + 1}"

    def send(self, node: PubsubNode, out: list[Outgoing], now: float) -> None:
        """What a Sybil's router sends passes its filter first."""
        sybil = self.sybils.get(node.index)
        super().send(node, out if sybil is None else sybil.filter(out), now)

    def spam(self, topic: str, count: int, now: float) -> None:
        """Every spamming Sybil sends ``count`` invalid messages to its mesh of ``topic``."""
        for index, sybil in self.sybils.items():
            super().send(self.nodes[index], sybil.spam(topic, count), now)

    def receive(self, node: PubsubNode, src: PubsubNode, rpc: RPC, now: float) -> None:
        """Count the RPC, then the overlay's ``receive``."""
        self.rpcs += 1
        super().receive(node, src, rpc, now)

    def validate(self, node: PubsubNode, received: Received, now: float) -> ValidationResult:
        """Sybils accept everything; honest nodes ask the workload's validator."""
        if node.index in self.sybils:
            return ValidationResult.ACCEPT
        return self._validate(received.message)

    def delivered(self, node: PubsubNode, received: Received, now: float, hops: int) -> None:
        """Only honest deliveries count."""
        if node.index not in self.sybils:
            self._on_deliver(node.index, received.msg_id, now)

    def on_px(self, node: PubsubNode, peers: tuple[PeerInfo, ...], now: float) -> None:
        """Peer exchange is not acted on."""
