"""The application-facing values of the ``Pubsub`` service: delivered messages, validation
results, subscriptions (async iterators of messages) and the statistics snapshot
(https://github.com/libp2p/specs/blob/master/pubsub/README.md#the-topic-validator).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
import attrs

from protocols.pubsub._gossip_score import ValidationResult
from protocols.pubsub._types import Message

if TYPE_CHECKING:
    from types import TracebackType

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from p2pstack.identity import PeerId
    from protocols.pubsub._routing import Received

__all__ = [
    "DEFAULT_SUBSCRIPTION_BUFFER",
    "Counters",
    "PubsubMessage",
    "PubsubStatistics",
    "Subscription",
    "TopicPeerChanged",
    "Validator",
    "to_api",
]

#: Messages a subscription holds for a reader that is behind; beyond it they are dropped and
#: counted (a slow application must not stall forwarding).
DEFAULT_SUBSCRIPTION_BUFFER = 1024


@attrs.frozen
class PubsubMessage:
    """A message delivered to a subscription.

    Attributes:
        topic: its topic.
        data: its payload.
        from_peer: the original publisher (the signed ``from``; ``None`` under StrictNoSign).
        seqno: the publisher's sequence number (``None`` under StrictNoSign).
        msg_id: its message ID.
        received_from: the peer that sent it to us (``None`` for our own messages).
        raw: the wire message.
    """

    topic: str
    data: bytes
    from_peer: PeerId | None
    seqno: int | None
    msg_id: bytes
    received_from: PeerId | None
    raw: Message = attrs.field(repr=False)


@attrs.frozen
class TopicPeerChanged:
    """Published on ``host.events``: a pubsub peer subscribed to or unsubscribed from a topic
    (a peer that leaves unsubscribes from all its topics).

    Attributes:
        peer_id: the peer.
        topic: the topic.
        subscribed: ``True`` when it joined the topic.
    """

    peer_id: PeerId
    topic: str
    subscribed: bool


#: A topic validator: sync or async, returns a ``ValidationResult`` (or a bool: accept/reject).
Validator = Callable[
    [PubsubMessage], "ValidationResult | bool | Awaitable[ValidationResult | bool]"
]


class Subscription:
    """Messages of one topic, as an async iterator; ``close()`` (or leaving ``async with``)
    unsubscribes. Made by ``Pubsub.subscribe``.

    Attributes:
        topic: the topic.
        dropped: messages dropped because the reader was ``buffer`` messages behind.
    """

    def __init__(self, topic: str, buffer: int, on_close: Callable[[Subscription], None]) -> None:
        self.topic = topic
        self.dropped = 0
        self._on_close = on_close
        send, receive = anyio.create_memory_object_stream[PubsubMessage](buffer)
        self._send: MemoryObjectSendStream[PubsubMessage] = send
        self._receive: MemoryObjectReceiveStream[PubsubMessage] = receive
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called (or the service stopped)."""
        return self._closed

    def _deliver(self, message: PubsubMessage) -> bool:
        try:
            self._send.send_nowait(message)
        except anyio.WouldBlock:
            self.dropped += 1
            return False
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        return True

    def _end(self) -> None:
        self._closed = True
        self._send.close()

    def close(self) -> None:
        """Stop receiving; the last subscription of a topic unsubscribes from it. Messages
        already buffered can still be read. Idempotent."""
        if self._closed:
            return
        self._end()
        self._on_close(self)

    async def receive(self) -> PubsubMessage:
        """The next message.

        Raises:
            anyio.EndOfStream: the subscription is closed and its buffer drained.
        """
        return await self._receive.receive()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> PubsubMessage:
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@attrs.define
class Counters:
    """The ``Pubsub`` service's own counters (mutable; ``statistics()`` snapshots them)."""

    published: int = 0
    received: int = 0
    delivered: int = 0
    duplicates: int = 0
    invalid: int = 0
    rejected: int = 0
    ignored: int = 0
    dropped_deliveries: int = 0


@attrs.frozen(kw_only=True)
class PubsubStatistics:
    """A snapshot of the ``Pubsub`` service's counters.

    Attributes:
        peers: pubsub peers (with an outbound stream or an inbound one).
        topics: topics we are subscribed to.
        published: messages we published.
        received: new messages received (before validation).
        delivered: messages handed to subscriptions.
        duplicates: messages received again.
        invalid: messages breaking the signing policy.
        rejected: messages a validator rejected.
        ignored: messages a validator ignored (or that timed out in validation).
        throttled: messages dropped because ``max_pending_validations`` were running.
        malformed_rpcs: inbound streams closed for a malformed RPC or a protocol violation.
        dropped_outbound: RPC parts dropped by full outbound queues.
        dropped_deliveries: messages dropped by subscriptions whose reader was behind.
        write_failures: outbound streams that failed or timed out (their peer was dropped).
        open_retries: outbound streams opened again after a failed open, the peer still
            connected.
    """

    peers: int
    topics: int
    published: int
    received: int
    delivered: int
    duplicates: int
    invalid: int
    rejected: int
    ignored: int
    throttled: int
    malformed_rpcs: int
    dropped_outbound: int
    dropped_deliveries: int
    write_failures: int
    open_retries: int = 0


def to_api(received: Received) -> PubsubMessage:
    """The ``PubsubMessage`` of a message the router received."""
    message = received.message
    return PubsubMessage(
        message.topic,
        message.data,
        message.from_,
        message.seqno_int,
        received.msg_id,
        received.source,
        message,
    )
