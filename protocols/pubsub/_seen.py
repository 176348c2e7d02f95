"""The seen-cache of pubsub (https://github.com/libp2p/specs/blob/master/pubsub/README.md#message-identification):
the IDs of messages received or published recently, so that each is delivered and forwarded once.

Entries live ``ttl`` seconds from when the ID was first seen (go's ``TimeCacheStrategy_FirstSeen``,
js's default), with a hard bound on their number: under a flood of distinct messages the oldest
IDs are forgotten early, which can only cause a duplicate delivery, never unbounded memory.
Pure: the time is passed in.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["DEFAULT_SEEN_MAX", "DEFAULT_SEEN_TTL", "SeenCache"]

#: go's ``TimeCacheDuration`` (gossipsub's seen TTL): 2 minutes.
DEFAULT_SEEN_TTL = 120.0

#: The most IDs held by default: 2 minutes at about 1,600 messages/s. With 32-byte IDs an entry
#: costs about 150 bytes of Python objects, so the bound is about 30 MB.
DEFAULT_SEEN_MAX = 200_000


class SeenCache:
    """Message IDs first seen within the last ``ttl`` seconds, at most ``max_entries`` of them.

    Calls must pass a ``now`` that never goes backwards (the anyio or the simulator clock).

    Args:
        ttl: seconds an ID is remembered.
        max_entries: the most IDs held; adding more forgets the oldest.

    Raises:
        ValueError: ``ttl`` is negative or ``max_entries`` below 1.
    """

    __slots__ = ("_entries", "_max", "_ttl", "evicted")

    def __init__(self, ttl: float = DEFAULT_SEEN_TTL, max_entries: int = DEFAULT_SEEN_MAX) -> None:
        if ttl < 0 or max_entries < 1:
            raise ValueError("ttl must be >= 0 and max_entries >= 1")
        self._ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[bytes, float] = OrderedDict()
        #: IDs forgotten before their TTL because the cache was full.
        self.evicted = 0

    def expire(self, now: float) -> int:
        """Forget the IDs first seen ``ttl`` or more seconds before ``now``.

        Args:
            now: the current time.

        Returns:
            How many were forgotten.
        """
        entries = self._entries
        limit = now - self._ttl
        count = 0
        while entries:
            msg_id, seen_at = next(iter(entries.items()))
            if seen_at > limit:
                break
            del entries[msg_id]
            count += 1
        return count

    def add(self, msg_id: bytes, now: float) -> bool:
        """Record ``msg_id`` as seen at ``now`` unless it is already held.

        Args:
            msg_id: the message ID.
            now: the current time.

        Returns:
            ``True`` when the ID was new (deliver and forward), ``False`` for a duplicate.
        """
        self.expire(now)
        if msg_id in self._entries:
            return False
        if len(self._entries) >= self._max:
            self._entries.popitem(last=False)
            self.evicted += 1
        self._entries[msg_id] = now
        return True

    def has(self, msg_id: bytes, now: float) -> bool:
        """Whether ``msg_id`` was seen within the TTL (without recording it).

        Args:
            msg_id: the message ID.
            now: the current time.

        Returns:
            ``True`` when it is held.
        """
        self.expire(now)
        return msg_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)
