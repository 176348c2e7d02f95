"""The gossipsub message cache (https://github.com/libp2p/specs/blob/master/pubsub/gossipsub/gossipsub-v1.0.md#message-cache):
recent messages in history windows, one per heartbeat, answering IWANT from all of them and
advertising in IHAVE only the IDs of the newest ``gossip`` windows.

Pure: the heartbeat calls ``shift``. Memory is bounded twice: by what the router accepts during
``history`` heartbeats, and by ``max_messages`` (beyond it new messages are still forwarded by
the mesh but not cached for gossip, so a flood of valid messages cannot grow the cache).
"""

from __future__ import annotations

from collections import deque

from p2pstack.identity import PeerId
from protocols.pubsub._types import Message

__all__ = ["DEFAULT_HISTORY_GOSSIP", "DEFAULT_HISTORY_LENGTH", "DEFAULT_MCACHE_MAX", "MessageCache"]

#: go's ``GossipSubHistoryLength``: windows kept for IWANT.
DEFAULT_HISTORY_LENGTH = 5
#: go's ``GossipSubHistoryGossip``: windows advertised in IHAVE.
DEFAULT_HISTORY_GOSSIP = 3
#: The most messages cached by default (5 heartbeats at 20,000 messages/s).
DEFAULT_MCACHE_MAX = 100_000


class MessageCache:
    """Messages of the last ``history`` heartbeats by ID, with per-peer IWANT counters.

    Args:
        history: windows kept (messages are served for ``history`` heartbeats).
        gossip: windows whose IDs ``gossip_ids`` returns (``gossip <= history``).
        max_messages: the most messages held.

    Raises:
        ValueError: ``gossip`` is not within 1..``history``, or ``max_messages`` < 1.
    """

    __slots__ = ("_gossip", "_max", "_messages", "_requests", "_windows", "_windows_max")

    def __init__(
        self,
        history: int = DEFAULT_HISTORY_LENGTH,
        gossip: int = DEFAULT_HISTORY_GOSSIP,
        max_messages: int = DEFAULT_MCACHE_MAX,
    ) -> None:
        if not 1 <= gossip <= history or max_messages < 1:
            raise ValueError("need 1 <= gossip <= history and max_messages >= 1")
        self._max = max_messages
        self._gossip = gossip
        self._messages: dict[bytes, Message] = {}
        self._requests: dict[bytes, dict[PeerId, int]] = {}
        # newest window first; each holds (message ID, topic) in insertion order
        self._windows: deque[list[tuple[bytes, str]]] = deque([[]])
        self._windows_max = history

    def put(self, msg_id: bytes, message: Message) -> bool:
        """Add a message to the newest window.

        Args:
            msg_id: its ID.
            message: the message.

        Returns:
            ``False`` when the ID was already cached or the cache is full (nothing changes).
        """
        if msg_id in self._messages or len(self._messages) >= self._max:
            return False
        self._messages[msg_id] = message
        self._windows[0].append((msg_id, message.topic))
        return True

    def get(self, msg_id: bytes) -> Message | None:
        """The cached message with that ID, or ``None``."""
        return self._messages.get(msg_id)

    def get_for_peer(self, msg_id: bytes, peer: PeerId) -> tuple[Message, int] | None:
        """The message for an IWANT of ``peer``, counting the requests of each peer (go's
        ``GossipSubGossipRetransmission`` caps how often one peer gets the same message).

        Args:
            msg_id: the ID asked for.
            peer: who asks.

        Returns:
            ``(message, times peer asked, this time included)``, or ``None`` when not cached.
        """
        message = self._messages.get(msg_id)
        if message is None:
            return None
        counts = self._requests.setdefault(msg_id, {})
        counts[peer] = counts.get(peer, 0) + 1
        return message, counts[peer]

    def gossip_ids(self, topic: str) -> list[bytes]:
        """The IDs of ``topic`` in the newest ``gossip`` windows, oldest first.

        Args:
            topic: the topic.

        Returns:
            The IDs to advertise in IHAVE.
        """
        windows = list(self._windows)[: self._gossip]
        return [msg_id for window in reversed(windows) for msg_id, t in window if t == topic]

    def shift(self) -> None:
        """Start a new window (once per heartbeat), dropping the oldest beyond ``history``."""
        self._windows.appendleft([])
        while len(self._windows) > self._windows_max:
            for msg_id, _topic in self._windows.pop():
                self._messages.pop(msg_id, None)
                self._requests.pop(msg_id, None)

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._messages

    def __len__(self) -> int:
        return len(self._messages)
