"""What the membership service reports: its statistics and the event types it publishes."""

from __future__ import annotations

import attrs

from protocols.membership._core import SwimStatistics
from protocols.membership._types import (
    MemberAlive,
    MemberDead,
    MemberJoined,
    MemberLeft,
    MemberSuspected,
    MetadataChanged,
)

__all__ = ["MEMBER_EVENT_TYPES", "MembershipStatistics"]

#: The event classes the service publishes on ``host.events``.
MEMBER_EVENT_TYPES: tuple[type[object], ...] = (
    MemberJoined,
    MemberAlive,
    MemberSuspected,
    MemberDead,
    MemberLeft,
    MetadataChanged,
)


@attrs.frozen(kw_only=True)
class MembershipStatistics:
    """A snapshot of the driver.

    Attributes:
        members: known members other than us (any state).
        live_members: alive or suspect members.
        connected_members: live members we have at least one connection to (any opener):
            the connections-per-member figure the policy bounds.
        own_connections: open connections this service dialed.
        closed_by_policy: connections the policy closed so far.
        bad_messages: inbound streams reset for bad input.
        send_failures: messages lost because the dial, stream or write failed.
        dropped_sends: messages dropped because too many sends were in flight.
        swim: the core's counters.
    """

    members: int
    live_members: int
    connected_members: int
    own_connections: int
    closed_by_policy: int
    bad_messages: int
    send_failures: int
    dropped_sends: int
    swim: SwimStatistics | None
