"""Events the yamux sans-IO core reports about what the remote peer did
(https://github.com/hashicorp/yamux/blob/master/spec.md), unioned into ``YamuxEvent``."""

from __future__ import annotations

import attrs

__all__ = [
    "DataReceived",
    "GoAwayReceived",
    "PingAnswered",
    "PingTimedOut",
    "StreamEnded",
    "StreamOpened",
    "StreamResetReceived",
    "WindowUpdated",
    "YamuxEvent",
]


@attrs.frozen(slots=True)
class StreamOpened:
    """The peer opened a stream (SYN); it has been acknowledged (ACK)."""

    stream_id: int


@attrs.frozen(slots=True)
class DataReceived:
    """Payload bytes for a stream (part of one Data frame, or all of it).

    ``data`` is a read-only view into the bytes given to ``receive_data`` when the payload is
    at least half of them (a smaller piece is copied): the core copies no large payload, the
    reader copies once when it takes the bytes.
    """

    stream_id: int
    data: bytes | memoryview


@attrs.frozen(slots=True)
class StreamEnded:
    """The peer half-closed the stream (FIN): it sends no more data."""

    stream_id: int


@attrs.frozen(slots=True)
class StreamResetReceived:
    """The peer reset the stream (RST); it is gone."""

    stream_id: int


@attrs.frozen(slots=True)
class WindowUpdated:
    """The peer granted ``delta`` more bytes of send window on the stream."""

    stream_id: int
    delta: int


@attrs.frozen(slots=True)
class PingAnswered:
    """The peer answered our ping carrying ``opaque``."""

    opaque: int


@attrs.frozen(slots=True)
class PingTimedOut:
    """Our keep-alive ping carrying ``opaque`` went unanswered for ``keepalive_timeout``: the
    connection is dead."""

    opaque: int


@attrs.frozen(slots=True)
class GoAwayReceived:
    """The peer is going away: it accepts no new streams. ``code`` 0 normal, 1 protocol
    error, 2 internal error (other values are passed through)."""

    code: int


YamuxEvent = (
    StreamOpened
    | DataReceived
    | StreamEnded
    | StreamResetReceived
    | WindowUpdated
    | PingAnswered
    | PingTimedOut
    | GoAwayReceived
)
