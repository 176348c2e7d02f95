"""The sans-IO floodsub router (https://github.com/libp2p/specs/blob/master/pubsub/README.md,
protocol ``/floodsub/1.0.0``): every new message goes to every peer subscribed to its topic,
except the peer it came from and its original publisher.

The core holds the peers, their subscriptions, ours and the seen-cache; it never does I/O.
Inputs are commands (``add_peer``, ``subscribe``, ``publish``, ...) and received RPCs; outputs are
``(peer, RPC)`` pairs to send (a driver queues them in each peer's ``OutboundQueue``) and the
messages to deliver locally. Receiving a message is two steps so that a driver can run
(asynchronous) topic validators in between: ``handle_rpc`` checks the signing policy and the
seen-cache and returns the new messages; ``forward`` (after validation accepted one) gives the
RPCs that pass it on.
"""

from __future__ import annotations

import attrs

from p2pstack.identity import PeerId, PrivateKey
from protocols.pubsub._message import (
    MessageIdFn,
    SignaturePolicy,
    default_message_id,
    make_message,
)
from protocols.pubsub._routing import (
    Outgoing,
    Received,
    RpcResult,
    SubscriptionChange,
    apply_subscriptions,
    ensure_fits,
    screen_messages,
)
from protocols.pubsub._seen import DEFAULT_SEEN_MAX, DEFAULT_SEEN_TTL, SeenCache
from protocols.pubsub._types import (
    RPC,
    Message,
    SubOpts,
)
from protocols.pubsub._wire import DEFAULT_MAX_RPC_SIZE

__all__ = [
    "DEFAULT_MAX_PEER_TOPICS",
    "FloodsubConfig",
    "FloodsubRouter",
]

#: The most topics one peer may be subscribed to, as we track them (state per peer is bounded).
DEFAULT_MAX_PEER_TOPICS = 1024


@attrs.frozen(kw_only=True)
class FloodsubConfig:
    """Settings of a floodsub router.

    Attributes:
        policy: the signing policy (StrictSign, as js and go).
        message_id: computes message IDs (every peer of a topic must use the same function).
        seen_ttl: seconds a message ID is remembered.
        seen_max: the most message IDs remembered.
        max_peer_topics: the most subscriptions tracked per peer; more is a protocol error.
        max_rpc_size: the largest RPC sent or accepted, in bytes (a published message must fit).
        relay_unsubscribed: take and forward messages on topics we are not subscribed to (js's
            ``canRelayMessage``); off, they are ignored unchecked, as go does.
    """

    policy: SignaturePolicy = SignaturePolicy.STRICT_SIGN
    message_id: MessageIdFn = default_message_id
    seen_ttl: float = DEFAULT_SEEN_TTL
    seen_max: int = DEFAULT_SEEN_MAX
    max_peer_topics: int = DEFAULT_MAX_PEER_TOPICS
    max_rpc_size: int = DEFAULT_MAX_RPC_SIZE
    relay_unsubscribed: bool = False


class FloodsubRouter:
    """The floodsub state of one node.

    Args:
        local: our peer ID.
        config: the settings.
        private_key: our key, to sign what we publish (needed under StrictSign).
        seqno: the first sequence number to publish with (pass the clock in nanoseconds, or a
            random 64-bit value, so that a restarted node does not reuse IDs, as js and go do).

    Raises:
        ValueError: StrictSign without ``private_key``, or a key that is not ``local``'s.
    """

    def __init__(
        self,
        local: PeerId,
        *,
        config: FloodsubConfig | None = None,
        private_key: PrivateKey | None = None,
        seqno: int = 0,
    ) -> None:
        self.config = config or FloodsubConfig()
        signs = self.config.policy is SignaturePolicy.STRICT_SIGN
        if signs and (private_key is None or not local.matches(private_key.public_key)):
            raise ValueError("StrictSign needs the private key of the local peer")
        self.local = local
        self._key = private_key
        self._seqno = seqno
        self._peers: dict[PeerId, set[str]] = {}
        self._topics: set[str] = set()
        self.seen = SeenCache(self.config.seen_ttl, self.config.seen_max)

    @property
    def topics(self) -> frozenset[str]:
        """The topics we are subscribed to."""
        return frozenset(self._topics)

    def peers(self, topic: str | None = None) -> list[PeerId]:
        """The connected pubsub peers, or those subscribed to ``topic``."""
        if topic is None:
            return list(self._peers)
        return [peer for peer, topics in self._peers.items() if topic in topics]

    def peer_topics(self, peer: PeerId) -> frozenset[str]:
        """The topics ``peer`` announced (empty for an unknown peer)."""
        return frozenset(self._peers.get(peer, ()))

    def add_peer(self, peer: PeerId) -> list[Outgoing]:
        """A pubsub stream to ``peer`` is open: announce our subscriptions to it.

        Args:
            peer: the peer.

        Returns:
            The RPC announcing our topics (none when we have none or the peer was known).
        """
        if peer in self._peers or peer == self.local:
            return []
        self._peers[peer] = set()
        if not self._topics:
            return []
        subs = tuple(SubOpts(True, topic) for topic in sorted(self._topics))
        return [(peer, RPC(subscriptions=subs))]

    def remove_peer(self, peer: PeerId) -> list[SubscriptionChange]:
        """``peer`` is gone: forget it and its subscriptions.

        Args:
            peer: the peer.

        Returns:
            Its subscriptions, as unsubscriptions.
        """
        topics = self._peers.pop(peer, set())
        return [SubscriptionChange(peer, topic, False) for topic in sorted(topics)]

    def _announce(self, topic: str, subscribe: bool) -> list[Outgoing]:
        rpc = RPC(subscriptions=(SubOpts(subscribe, topic),))
        return [(peer, rpc) for peer in self._peers]

    def subscribe(self, topic: str) -> list[Outgoing]:
        """Subscribe to ``topic`` and tell every peer.

        Args:
            topic: the topic.

        Returns:
            The announcements (none when already subscribed).
        """
        if topic in self._topics:
            return []
        self._topics.add(topic)
        return self._announce(topic, True)

    def unsubscribe(self, topic: str) -> list[Outgoing]:
        """Unsubscribe from ``topic`` and tell every peer.

        Args:
            topic: the topic.

        Returns:
            The announcements (none when not subscribed).
        """
        if topic not in self._topics:
            return []
        self._topics.discard(topic)
        return self._announce(topic, False)

    def publish(self, topic: str, data: bytes, now: float) -> tuple[Message, bytes, list[Outgoing]]:
        """Publish ``data`` on ``topic`` (we need not be subscribed to it).

        Args:
            topic: the topic.
            data: the payload.
            now: the current time.

        Returns:
            The message, its ID, and the RPCs to every peer subscribed to the topic.

        Raises:
            MessageTooLarge: the message does not fit in ``max_rpc_size``.
        """
        message = make_message(
            topic, data, policy=self.config.policy, private_key=self._key, seqno=self._seqno
        )
        ensure_fits(message, self.config.max_rpc_size)
        self._seqno = (self._seqno + 1) % (1 << 64)
        msg_id = self.config.message_id(message)
        self.seen.add(msg_id, now)
        return message, msg_id, self._send(message, exclude=())

    def _send(self, message: Message, exclude: tuple[PeerId | None, ...]) -> list[Outgoing]:
        rpc = RPC(publish=(message,))
        return [(peer, rpc) for peer in self.peers(message.topic) if peer not in exclude]

    def handle_rpc(self, peer: PeerId, rpc: RPC, now: float) -> RpcResult:
        """Take an RPC received from ``peer`` (control parts are ignored: floodsub has none).

        Args:
            peer: the sender (added as a peer if unknown).
            rpc: the RPC.
            now: the current time.

        Returns:
            The new messages, subscription changes, duplicate count and invalid messages.

        Raises:
            PubsubProtocolError: the peer would exceed ``max_peer_topics`` (nothing is applied).
        """
        self._peers.setdefault(peer, set())
        changes = apply_subscriptions(
            peer, self._peers[peer], rpc.subscriptions, self.config.max_peer_topics
        )
        result = screen_messages(
            rpc.publish,
            source=peer,
            local=self.local,
            topics=self._topics,
            seen=self.seen,
            policy=self.config.policy,
            message_id=self.config.message_id,
            relay=self.config.relay_unsubscribed,
            now=now,
        )
        # Most RPCs carry no subscriptions: skip the copy (a hot path at thousands of RPCs/s).
        return attrs.evolve(result, changes=tuple(changes)) if changes else result

    def forward(self, received: Received) -> list[Outgoing]:
        """Pass a validated message on to every subscribed peer but its source and publisher.

        Args:
            received: a message ``handle_rpc`` returned, accepted by validation.

        Returns:
            The RPCs to send.
        """
        return self._send(received.message, exclude=(received.source, received.message.from_))
