"""A bounded outbound queue of one pubsub peer, control first.

What a router sends a peer is split into control (subscription changes, GRAFT, PRUNE, IHAVE,
IWANT, IDONTWANT: small, and what keeps the mesh correct) and messages (large, and what a slow
peer piles up). ``take`` builds the next RPC to write from all queued control, then messages in
order, up to the RPC size bound. Both parts are bounded (rust-libp2p gossipsub separates
priority and non-priority the same way; go drops an RPC when its 32-RPC queue is full): a message
over the bound is dropped and counted, so a peer that never reads costs at most ``max_bytes``.
Control over its bound is dropped and counted too; a driver may close a peer whose control
overflows, as such a peer is not reading.
"""

from __future__ import annotations

from collections import deque

import attrs

from protocols.pubsub._types import (
    RPC,
    ControlGraft,
    ControlIDontWant,
    ControlIHave,
    ControlIWant,
    ControlMessage,
    ControlPrune,
    Message,
    SubOpts,
)
from protocols.pubsub._wire import DEFAULT_MAX_RPC_SIZE, encode_rpc, publish_entry_size

__all__ = ["DEFAULT_MAX_QUEUED_BYTES", "DEFAULT_MAX_QUEUED_CONTROL", "OutboundQueue", "QueueStats"]

#: Message bytes queued per peer by default: a few maximum-size RPCs.
DEFAULT_MAX_QUEUED_BYTES = 4 * DEFAULT_MAX_RPC_SIZE
#: Control items queued per peer by default (each is small: a topic or a few message IDs).
DEFAULT_MAX_QUEUED_CONTROL = 1024

# Protobuf overhead of one repeated entry inside the RPC: a tag byte and up to 5 length bytes.
_ENTRY_OVERHEAD = 6

_ControlItem = (
    SubOpts | ControlIHave | ControlIWant | ControlGraft | ControlPrune | ControlIDontWant
)


@attrs.frozen
class QueueStats:
    """A snapshot of an outbound queue.

    Attributes:
        messages: messages queued.
        message_bytes: their encoded size.
        control: control items queued.
        dropped_messages: messages dropped since the queue was made (full or oversized).
        dropped_control: control items dropped since the queue was made.
    """

    messages: int
    message_bytes: int
    control: int
    dropped_messages: int
    dropped_control: int


def _control_items(rpc: RPC) -> list[_ControlItem]:
    items: list[_ControlItem] = list(rpc.subscriptions)
    control = rpc.control
    if control is not None:
        items += [*control.graft, *control.prune, *control.idontwant]
        items += [*control.ihave, *control.iwant]
    return items


def _item_size(item: _ControlItem) -> int:
    if isinstance(item, SubOpts):
        return len(encode_rpc(RPC(subscriptions=(item,))))
    return len(encode_rpc(RPC(control=_control_of([item])))) + _ENTRY_OVERHEAD


def _control_of(items: list[_ControlItem]) -> ControlMessage:
    return ControlMessage(
        ihave=tuple(i for i in items if isinstance(i, ControlIHave)),
        iwant=tuple(i for i in items if isinstance(i, ControlIWant)),
        graft=tuple(i for i in items if isinstance(i, ControlGraft)),
        prune=tuple(i for i in items if isinstance(i, ControlPrune)),
        idontwant=tuple(i for i in items if isinstance(i, ControlIDontWant)),
    )


class OutboundQueue:
    """What waits to be written to one peer.

    Args:
        max_bytes: the most message bytes queued.
        max_control: the most control items queued.
        max_rpc_size: the largest RPC ``take`` builds (the peer's inbound bound).
    """

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        max_control: int = DEFAULT_MAX_QUEUED_CONTROL,
        max_rpc_size: int = DEFAULT_MAX_RPC_SIZE,
    ) -> None:
        self._max_bytes = max_bytes
        self._max_control = max_control
        self._max_rpc_size = max_rpc_size
        self._control: deque[tuple[_ControlItem, int]] = deque()
        self._messages: deque[tuple[Message, int]] = deque()
        self._bytes = 0
        self._dropped_messages = 0
        self._dropped_control = 0

    def push(self, rpc: RPC) -> int:
        """Queue the parts of ``rpc``.

        Args:
            rpc: what to send.

        Returns:
            How many parts (control items and messages) were dropped: 0 when all were queued.
        """
        dropped = 0
        for item in _control_items(rpc):
            size = _item_size(item)
            if len(self._control) >= self._max_control or size > self._max_rpc_size:
                dropped += 1
                self._dropped_control += 1
                continue
            self._control.append((item, size))
        for message in rpc.publish:
            size = publish_entry_size(message)
            if size > self._max_rpc_size or self._bytes + size > self._max_bytes:
                dropped += 1
                self._dropped_messages += 1
                continue
            self._messages.append((message, size))
            self._bytes += size
        return dropped

    def take(self) -> RPC | None:
        """The next RPC to write: queued control first, then messages, within the size bound.

        Returns:
            The RPC, or ``None`` when nothing is queued.
        """
        if not self._control and not self._messages:
            return None
        budget = self._max_rpc_size
        items: list[_ControlItem] = []
        while self._control and self._control[0][1] <= budget:
            item, size = self._control.popleft()
            items.append(item)
            budget -= size
        messages: list[Message] = []
        while self._messages and self._messages[0][1] <= budget:
            message, size = self._messages.popleft()
            messages.append(message)
            budget -= size
            self._bytes -= size
        subscriptions = tuple(i for i in items if isinstance(i, SubOpts))
        control = _control_of([i for i in items if not isinstance(i, SubOpts)])
        return RPC(
            subscriptions=subscriptions,
            publish=tuple(messages),
            control=control if control else None,
        )

    def __len__(self) -> int:
        return len(self._control) + len(self._messages)

    def statistics(self) -> QueueStats:
        """A snapshot of the queue's size and drop counters."""
        return QueueStats(
            messages=len(self._messages),
            message_bytes=self._bytes,
            control=len(self._control),
            dropped_messages=self._dropped_messages,
            dropped_control=self._dropped_control,
        )
