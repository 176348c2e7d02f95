"""The yamux stream muxer ``/yamux/1.0.0``
(https://github.com/libp2p/specs/blob/master/yamux/README.md): a sans-IO core
(``YamuxConnectionCore``), its events, and the anyio driver (``Yamux`` → ``YamuxConnection`` →
``YamuxStream``)."""

from transports.yamux._config import YamuxConfig
from transports.yamux._connection import Yamux, YamuxConnection
from transports.yamux._core import YamuxConnectionCore
from transports.yamux._events import (
    DataReceived,
    GoAwayReceived,
    PingAnswered,
    PingTimedOut,
    StreamEnded,
    StreamOpened,
    StreamResetReceived,
    WindowUpdated,
    YamuxEvent,
)
from transports.yamux._frame import (
    HEADER_LEN,
    INITIAL_WINDOW,
    PROTOCOL_ID,
    Flag,
    FrameType,
    GoAwayCode,
    Header,
    decode_header,
    encode_header,
)
from transports.yamux._stream import YamuxStream

__all__ = [
    "HEADER_LEN",
    "INITIAL_WINDOW",
    "PROTOCOL_ID",
    "DataReceived",
    "Flag",
    "FrameType",
    "GoAwayCode",
    "GoAwayReceived",
    "Header",
    "PingAnswered",
    "PingTimedOut",
    "StreamEnded",
    "StreamOpened",
    "StreamResetReceived",
    "WindowUpdated",
    "Yamux",
    "YamuxConfig",
    "YamuxConnection",
    "YamuxConnectionCore",
    "YamuxEvent",
    "YamuxStream",
    "decode_header",
    "encode_header",
]
