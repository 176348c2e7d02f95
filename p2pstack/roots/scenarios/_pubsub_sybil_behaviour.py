"""Sybil behaviours for the gossipsub attack simulation, as a wrapper around a real
``GossipsubRouter`` core (the attacks of the GossipSub v1.1 evaluation, Vyzovitis et al. 2020,
https://arxiv.org/abs/2007.02754, section 6): the Sybil speaks the protocol correctly and
filters what its router sends.

- ``honest``: everything passes (the covert-flash Sybil before its flash).
- ``drop``: no message ever leaves the Sybil, neither forwarded nor as an IWANT answer, and it
  asks for none (no IWANT); the rest of its control traffic (SUBSCRIBE, GRAFT, PRUNE, IHAVE)
  goes out as usual, so it stays in meshes.
- ``spam``: ``drop``, and every ``spam`` tick it publishes invalid messages (well signed, with a
  payload the topic validator rejects) to the peers of its mesh.

A covert-flash Sybil starts ``honest`` and switches to ``drop`` at its flash time
(``SybilRouter.mode`` is plain state). Sybils are greedy: their config grafts every peer
(``greedy_config``), so that they fill the honest nodes' meshes as far as those let them.
"""

from __future__ import annotations

import enum

import attrs

from p2pstack.identity import PeerId, PrivateKey
from protocols.pubsub import (
    RPC,
    GossipResult,
    GossipsubConfig,
    GossipsubRouter,
    Outgoing,
    Received,
    make_message,
)

__all__ = ["SPAM_PREFIX", "SybilMode", "SybilRouter", "greedy_config"]

#: Payloads of invalid messages start with this (the simulation's validator rejects them).
SPAM_PREFIX = b"spam:"


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


class SybilRouter:
    """A gossipsub router core whose output passes through a Sybil behaviour.

    It has the router's calls that the simulation drives (``add_peer``, ``subscribe``,
    ``handle_rpc``, ``forward``, ``handle_timer``, ``next_deadline``) with the same arguments;
    every list of ``(peer, RPC)`` pairs is filtered by ``mode``.

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

    def add_peer(
        self, peer: PeerId, protocol: str, *, outbound: bool, ip: str | None, now: float
    ) -> list[Outgoing]:
        """The router's ``add_peer``, filtered."""
        return self.filter(self.router.add_peer(peer, protocol, outbound=outbound, ip=ip, now=now))

    def subscribe(self, topic: str, now: float) -> list[Outgoing]:
        """The router's ``subscribe``, filtered."""
        return self.filter(self.router.subscribe(topic, now))

    def handle_rpc(self, peer: PeerId, rpc: RPC, now: float) -> GossipResult:
        """The router's ``handle_rpc`` with its replies filtered (IWANT answers withheld)."""
        result = self.router.handle_rpc(peer, rpc, now)
        return attrs.evolve(result, out=self.filter(result.out))

    def forward(self, received: Received, now: float) -> list[Outgoing]:
        """The router's ``forward`` (it still caches the message: the Sybil advertises it in
        IHAVE), filtered."""
        return self.filter(self.router.forward(received, now))

    def next_deadline(self) -> float:
        """The router's next heartbeat."""
        return self.router.next_deadline()

    def handle_timer(self, now: float) -> list[Outgoing]:
        """The router's heartbeat, filtered."""
        return self.filter(self.router.handle_timer(now))

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
