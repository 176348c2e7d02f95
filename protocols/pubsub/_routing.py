"""What both pubsub routers share on receipt and publish
(https://github.com/libp2p/specs/blob/master/pubsub/README.md#message-processing): the result of
a received RPC, the screening of its messages (subscribed topic, seen-cache, signing policy), the
size check of a message to publish, and the check of peers offered by peer exchange
(https://github.com/libp2p/specs/blob/master/pubsub/gossipsub/gossipsub-v1.1.md#prune-backoff-and-peer-exchange).
"""

from __future__ import annotations

from collections.abc import Container

import attrs

from p2pstack.errors import IdentityError
from p2pstack.identity import PeerId, PeerRecord
from protocols.pubsub._message import MessageIdFn, SignaturePolicy, validate_message
from protocols.pubsub._seen import SeenCache
from protocols.pubsub._types import (
    RPC,
    Message,
    MessageTooLarge,
    PeerInfo,
    PubsubProtocolError,
    SubOpts,
    ValidationError,
)
from protocols.pubsub._wire import publish_entry_size

__all__ = [
    "Outgoing",
    "Received",
    "RpcResult",
    "SubscriptionChange",
    "apply_subscriptions",
    "ensure_fits",
    "px_record",
    "screen_messages",
]

#: An RPC to send to a peer.
Outgoing = tuple[PeerId, RPC]


@attrs.frozen
class SubscriptionChange:
    """A peer subscribed to or unsubscribed from a topic."""

    peer: PeerId
    topic: str
    subscribed: bool


@attrs.frozen
class Received:
    """A message seen for the first time, not yet validated by the topic's validators.

    Attributes:
        msg_id: its ID.
        message: the message.
        source: the peer it came from (not necessarily its publisher, ``message.from_``).
        local: whether we are subscribed to its topic (deliver it to the application).
    """

    msg_id: bytes
    message: Message
    source: PeerId
    local: bool


@attrs.frozen
class RpcResult:
    """What one received RPC did.

    Attributes:
        received: the new messages, in order (validate, then ``forward`` and deliver).
        changes: the subscription changes it announced.
        duplicates: messages already seen (or our own, back again).
        invalid: messages that broke the signing policy, with the error.
        ignored: messages on topics we are not subscribed to (without ``relay_unsubscribed``).
        duplicated: (message ID, topic) of each duplicate (the peer score counts some of them).
    """

    received: tuple[Received, ...] = ()
    changes: tuple[SubscriptionChange, ...] = ()
    duplicates: int = 0
    invalid: tuple[tuple[Message, ValidationError], ...] = ()
    ignored: int = 0
    duplicated: tuple[tuple[bytes, str], ...] = ()


def apply_subscriptions(
    peer: PeerId, topics: set[str], subs: tuple[SubOpts, ...], max_topics: int
) -> list[SubscriptionChange]:
    """Apply a peer's subscription announcements to the set of its topics.

    Args:
        peer: the peer.
        topics: its topics, updated in place.
        subs: what it announced, in order.
        max_topics: the most topics tracked for one peer.

    Returns:
        The changes (repeated or no-op announcements give none).

    Raises:
        PubsubProtocolError: the peer would exceed ``max_topics`` (nothing is applied).
    """
    added = {s.topic for s in subs if s.subscribe} - topics
    if len(topics) + len(added) > max_topics:
        raise PubsubProtocolError(f"peer subscribes to more than {max_topics} topics")
    changes: list[SubscriptionChange] = []
    for sub in subs:
        if sub.subscribe == (sub.topic in topics):
            continue
        if sub.subscribe:
            topics.add(sub.topic)
        else:
            topics.discard(sub.topic)
        changes.append(SubscriptionChange(peer, sub.topic, sub.subscribe))
    return changes


def ensure_fits(message: Message, max_rpc_size: int) -> None:
    """Check that a message to publish fits in one RPC.

    Args:
        message: the message.
        max_rpc_size: the RPC bound of the peers.

    Raises:
        MessageTooLarge: it does not.
    """
    size = publish_entry_size(message)
    if size > max_rpc_size:
        raise MessageTooLarge(f"a {size}-byte message does not fit in a {max_rpc_size}-byte RPC")


def screen_messages(
    messages: tuple[Message, ...],
    *,
    source: PeerId,
    local: PeerId,
    topics: Container[str],
    seen: SeenCache,
    policy: SignaturePolicy,
    message_id: MessageIdFn,
    relay: bool,
    now: float,
) -> RpcResult:
    """Sort the messages of an RPC into new, duplicate, ignored and invalid ones; mark the new
    ones seen.

    Duplicates are found first, as go does: an ID already seen costs no signature check. An ID
    is marked seen only once its message verified, so a forged copy cannot shadow the real one.

    Args:
        messages: the RPC's messages.
        source: who sent them.
        local: our peer ID (our own messages coming back are duplicates).
        topics: the topics we are subscribed to.
        seen: the seen-cache.
        policy: the signing policy.
        message_id: the message-ID function.
        relay: take messages on topics outside ``topics`` too.
        now: the current time.

    Returns:
        The result (without subscription changes).
    """
    received: list[Received] = []
    invalid: list[tuple[Message, ValidationError]] = []
    duplicated: list[tuple[bytes, str]] = []
    ignored = 0
    for message in messages:
        subscribed = message.topic in topics
        if not subscribed and not relay:
            ignored += 1
            continue
        msg_id = message_id(message)
        if message.from_ == local or seen.has(msg_id, now):
            duplicated.append((msg_id, message.topic))
            continue
        try:
            validate_message(message, policy)
        except ValidationError as exc:
            invalid.append((message, exc))
            continue
        seen.add(msg_id, now)
        received.append(Received(msg_id, message, source, subscribed))
    dups = tuple(duplicated)
    return RpcResult(tuple(received), (), len(dups), tuple(invalid), ignored, dups)


def px_record(info: PeerInfo) -> PeerRecord | None:
    """The addresses of a peer offered by peer exchange, from its signed peer record.

    The v1.1 spec lets a pruning peer include the offered peer's signed record so that the
    pruned peer can connect without asking the network; a record is only used when it is signed
    by the offered peer itself (RFC 0003), never taken on the word of the pruning peer.

    Args:
        info: an entry of a PRUNE.

    Returns:
        The verified record, or ``None`` when the entry carries none (look the peer up).

    Raises:
        ValidationError: the record is malformed, badly signed, or for another peer.
    """
    if info.signed_peer_record is None:
        return None
    try:
        record, _ = PeerRecord.from_envelope_bytes(info.signed_peer_record)
    except IdentityError as exc:
        raise ValidationError(f"bad peer record in peer exchange: {exc}") from None
    if record.peer_id != info.peer_id:
        raise ValidationError("peer exchange record is for another peer")
    return record
