"""Message-delivery records for the gossipsub v1.1 peer score
(https://github.com/libp2p/specs/blob/master/pubsub/gossipsub/gossipsub-v1.1.md#p-and-pb-mesh-message-delivery).

One record per message ID: whether the message is still being validated, valid, invalid,
ignored or throttled; when validation ended; and who else sent it meanwhile (so that near-first
mesh deliveries can be credited and senders of an invalid message penalised). Records live for
the seen-cache TTL, like go's, and their number is capped as well.
"""

from __future__ import annotations

import enum
from collections import OrderedDict

import attrs

from p2pstack.identity import PeerId

__all__ = ["DeliveryRecord", "DeliveryStatus", "MessageDeliveries"]


class DeliveryStatus(enum.Enum):
    """What is known about a message's validity."""

    UNKNOWN = enum.auto()  # being validated
    VALID = enum.auto()
    INVALID = enum.auto()
    IGNORED = enum.auto()  # the validator said ignore: no penalty, no credit
    THROTTLED = enum.auto()  # never validated: validity unknown


@attrs.define
class DeliveryRecord:
    """The record of one message ID."""

    first_seen: float
    status: DeliveryStatus = DeliveryStatus.UNKNOWN
    validated: float = 0.0
    peers: set[PeerId] = attrs.Factory(set)


class MessageDeliveries:
    """Delivery records by message ID, oldest first, expiring ``seen_ttl`` after first seen.

    Args:
        seen_ttl: seconds a record is kept after the message was first seen.
        max_records: bound on the number of records; the oldest goes first.

    Raises:
        ValueError: if seen_ttl is negative or max_records < 1.
    """

    def __init__(self, *, seen_ttl: float, max_records: int) -> None:
        if seen_ttl < 0 or max_records < 1:
            raise ValueError("seen_ttl must be >= 0 and max_records >= 1")
        self._ttl = seen_ttl
        self._max = max_records
        self._records: OrderedDict[bytes, DeliveryRecord] = OrderedDict()

    def get(self, msg_id: bytes, now: float) -> DeliveryRecord:
        """The record of msg_id, created (first seen now) if there is none.

        Expired records are dropped first, so the store never holds more than the messages of
        one TTL (and never more than max_records).
        """
        self.expire(now)
        record = self._records.get(msg_id)
        if record is None:
            record = self._records[msg_id] = DeliveryRecord(first_seen=now)
            if len(self._records) > self._max:
                self._records.popitem(last=False)
        return record

    def expire(self, now: float) -> None:
        """Drop the records first seen more than seen_ttl before now."""
        records = self._records
        while records:
            first = next(iter(records.values()))
            if now - first.first_seen <= self._ttl:
                break
            records.popitem(last=False)

    def __len__(self) -> int:
        return len(self._records)
