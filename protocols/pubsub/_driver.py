"""One face for the two sans-IO router cores (``FloodsubRouter``, ``GossipsubRouter``) as the
``Pubsub`` service drives them: the protocol IDs each speaks in order of preference, commands
and received RPCs in, ``(peer, RPC)`` pairs out, and the heartbeat as a ``TimedCore``
(``p2pstack.sansio``) whose output is collected for the service to queue.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from protocols.pubsub._floodsub import FloodsubConfig, FloodsubRouter
from protocols.pubsub._gossip_score import ValidationResult
from protocols.pubsub._gossip_state import GossipsubConfig
from protocols.pubsub._gossipsub import GossipsubRouter
from protocols.pubsub._types import (
    FLOODSUB_PROTOCOL_ID,
    GOSSIPSUB_V10_PROTOCOL_ID,
    GOSSIPSUB_V11_PROTOCOL_ID,
    GOSSIPSUB_V12_PROTOCOL_ID,
    RPC,
    Message,
    PeerInfo,
)

if TYPE_CHECKING:
    from p2pstack.identity import PeerId, PrivateKey
    from protocols.pubsub._routing import Outgoing, Received, RpcResult, SubscriptionChange

__all__ = ["GOSSIPSUB_PROTOCOLS", "RouterConfig", "RouterDriver"]

#: What a gossipsub node speaks, most preferred first (it also serves floodsub peers).
GOSSIPSUB_PROTOCOLS = (
    GOSSIPSUB_V12_PROTOCOL_ID,
    GOSSIPSUB_V11_PROTOCOL_ID,
    GOSSIPSUB_V10_PROTOCOL_ID,
    FLOODSUB_PROTOCOL_ID,
)

#: A router choice: a name or the configuration of one.
RouterConfig = FloodsubConfig | GossipsubConfig


def router_config(choice: str | RouterConfig) -> RouterConfig:
    """The configuration for a router name (``"gossipsub"``, ``"floodsub"``) or a config.

    Raises:
        ValueError: an unknown router name.
    """
    if isinstance(choice, FloodsubConfig | GossipsubConfig):
        return choice
    if choice == "gossipsub":
        return GossipsubConfig()
    if choice == "floodsub":
        return FloodsubConfig()
    raise ValueError(f"unknown pubsub router {choice!r} (gossipsub or floodsub)")


class RouterDriver:
    """Wraps a router core (see the module docstring).

    Args:
        config: which router, and its settings.
        local: our peer ID.
        private_key: our key (signing under StrictSign).
        rng: randomness for gossipsub and the first sequence number.
        now: the current time.
        peer_record: a peer's signed peer record (envelope bytes), offered in peer exchange.
    """

    def __init__(
        self,
        config: RouterConfig,
        *,
        local: PeerId,
        private_key: PrivateKey,
        rng: random.Random,
        now: float,
        peer_record: Callable[[PeerId], bytes | None] | None = None,
    ) -> None:
        # Random, so that a restarted node does not reuse message IDs; the top bit set, so
        # that the seqno has no leading zero byte: js floodsub checks signatures over the
        # seqno re-encoded from a bigint (leading zero bytes dropped) and rejects such
        # messages, and forwards them with a shortened seqno.
        seqno = rng.getrandbits(63) | 1 << 63
        self.core: FloodsubRouter | GossipsubRouter
        if isinstance(config, GossipsubConfig):
            self.core = GossipsubRouter(
                local,
                rng=rng,
                config=config,
                private_key=private_key,
                seqno=seqno,
                now=now,
                peer_record=peer_record,
            )
            self.protocols: tuple[str, ...] = GOSSIPSUB_PROTOCOLS
        else:
            self.core = FloodsubRouter(local, config=config, private_key=private_key, seqno=seqno)
            self.protocols = (FLOODSUB_PROTOCOL_ID,)
        self.max_rpc_size = config.max_rpc_size
        self._timer_out: list[Outgoing] = []

    @property
    def topics(self) -> frozenset[str]:
        """The topics we are subscribed to."""
        core = self.core
        return core.topics if isinstance(core, FloodsubRouter) else frozenset(core.mesh)

    def peers(self, topic: str | None = None) -> list[PeerId]:
        """The pubsub peers, or those subscribed to ``topic``."""
        core = self.core
        if isinstance(core, FloodsubRouter):
            return core.peers(topic)
        return list(core.peers) if topic is None else core.topic_peers(topic)

    def mesh(self, topic: str) -> list[PeerId]:
        """Our gossipsub mesh peers of ``topic`` (floodsub: every subscribed peer)."""
        core = self.core
        if isinstance(core, FloodsubRouter):
            return core.peers(topic)
        return core.ordered(core.mesh.get(topic, set()))

    def add_peer(
        self, peer: PeerId, protocol: str, *, outbound: bool, ip: str | None, now: float
    ) -> list[Outgoing]:
        """A peer with a pubsub stream speaking ``protocol`` (``ip``: its remote IP address,
        for the score's colocation factor); returns what to send it."""
        core = self.core
        if isinstance(core, FloodsubRouter):
            return core.add_peer(peer)
        return core.add_peer(peer, protocol, outbound=outbound, ip=ip, now=now)

    def has_peer(self, peer: PeerId) -> bool:
        """Whether ``peer`` was added (and not removed)."""
        core = self.core
        return peer in (core.peers() if isinstance(core, FloodsubRouter) else core.peers)

    def remove_peer(self, peer: PeerId, now: float) -> list[SubscriptionChange]:
        """Forget ``peer``; returns its subscriptions, as unsubscriptions."""
        core = self.core
        if isinstance(core, FloodsubRouter):
            return core.remove_peer(peer)
        return core.remove_peer(peer, now)

    def score(self, peer: PeerId, now: float) -> float:
        """``peer``'s gossipsub score (0 with scoring off and under floodsub)."""
        core = self.core
        return core.scoring.value(peer, now) if isinstance(core, GossipsubRouter) else 0.0

    def report_validation(self, msg_id: bytes, result: ValidationResult, now: float) -> None:
        """Tell the gossipsub score a validators' reject or ignore (floodsub has no score)."""
        if isinstance(self.core, GossipsubRouter):
            self.core.report_validation(msg_id, result, now)

    def subscribe(self, topic: str, now: float) -> list[Outgoing]:
        """Join ``topic``."""
        core = self.core
        return (
            core.subscribe(topic)
            if isinstance(core, FloodsubRouter)
            else core.subscribe(topic, now)
        )

    def unsubscribe(self, topic: str, now: float) -> list[Outgoing]:
        """Leave ``topic``."""
        core = self.core
        if isinstance(core, FloodsubRouter):
            return core.unsubscribe(topic)
        return core.unsubscribe(topic, now)

    def publish(self, topic: str, data: bytes, now: float) -> tuple[Message, bytes, list[Outgoing]]:
        """Publish; returns the message, its ID and the RPCs (raises ``MessageTooLarge``)."""
        return self.core.publish(topic, data, now)

    def handle_rpc(
        self, peer: PeerId, rpc: RPC, now: float
    ) -> tuple[RpcResult, list[Outgoing], tuple[PeerInfo, ...]]:
        """Take an RPC from ``peer``: its result, the replies, the peers offered by PX.

        Raises:
            PubsubProtocolError: the peer broke the protocol (too many topics, no stream).
        """
        core = self.core
        if isinstance(core, FloodsubRouter):
            return core.handle_rpc(peer, rpc, now), [], ()
        result = core.handle_rpc(peer, rpc, now)
        return result.rpc, result.out, result.px

    def forward(self, received: Received, now: float) -> list[Outgoing]:
        """Pass an accepted message on."""
        core = self.core
        if isinstance(core, FloodsubRouter):
            return core.forward(received)
        return core.forward(received, now)

    # -- TimedCore ------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The next heartbeat (gossipsub), or ``None`` (floodsub has no timers)."""
        core = self.core
        return None if isinstance(core, FloodsubRouter) else core.next_deadline()

    def handle_timer(self, now: float) -> None:
        """Run the heartbeat; its output waits in ``take_timer_output``."""
        if isinstance(self.core, GossipsubRouter):
            self._timer_out += self.core.handle_timer(now)

    def take_timer_output(self) -> list[Outgoing]:
        """What the heartbeats since the last call send."""
        out, self._timer_out = self._timer_out, []
        return out
