"""The mplex stream muxer, ``/mplex/6.7.0`` (https://github.com/libp2p/specs/blob/master/mplex/README.md).

Each message is ``uvarint(stream_id << 3 | flag) uvarint(length) data``. Both sides number the
streams they open from 0 (``StreamKey`` says whose stream an ID names), name them by their
decimal ID in ``NewStream`` (as go-mplex does; js-libp2p 3 sends ``"i<id>"``; names are not
interpreted), and split writes into messages of at most 1 MiB (js-libp2p's and go-mplex's
``maxMessageSize``; a larger incoming message closes the connection). mplex has no flow
control: a stream whose unread data would exceed ``max_stream_buffer`` (4 MiB) is reset.

Opening streams towards js-libp2p. In @libp2p/mplex 12 (the version shipped with js-libp2p 3)
``MplexStreamMuxer.handleMessage`` consumes one point of a ``RateLimiter({points:
disconnectThreshold ?? 5, duration: 1})`` for *every* ``NewStream`` it receives, whatever the
number of open streams, and aborts the whole connection when the 6th point is consumed within
the window (a fixed window that starts at the first point and lasts 1 s); a second limiter key
does the same for messages addressed to streams it does not know
(https://github.com/libp2p/js-libp2p/blob/main/packages/stream-multiplexer-mplex/src/mplex.ts).
Older releases (libp2p 1.x/2.x) applied the limiter only once ``maxInboundStreams`` (1024) was
reached; ``maxStreamBufferSize`` (4 MiB) resets a single slow stream and is unrelated. So
``MplexConnection.open_stream`` paces ``NewStream`` messages: at most
``max_stream_opens_per_window`` (5) within any ``stream_open_window`` (1.25 s: js's 1 s plus a
margin for delivery jitter), measured when the message was written. 100 streams therefore take
about 24 s to open; later opens wait, nothing is refused. And after a stream is reset or closed
both ways we send nothing more on it, to stay clear of the unknown-stream limiter. (The js
registrar separately limits inbound streams per protocol, 32 by default.)

Inbound protection: at most ``max_inbound_streams`` open peer streams and ``accept_backlog``
streams waiting for ``accept_stream``; beyond either, the new stream is reset. A full backlog
also pauses reading until the application accepts, so a burst of opens waits rather than fails.
"""

from ._config import MplexConfig
from ._core import (
    DataReceived,
    IdleTimedOut,
    MplexConnectionCore,
    MplexEvent,
    StreamEnded,
    StreamKey,
    StreamOpened,
    StreamOpenPacer,
    StreamRejected,
    StreamWasReset,
)
from ._frame import Flag, Frame, encode_header, parse_frame
from ._mplex import PROTOCOL_ID, Mplex, MplexConnection
from ._stream import MplexStream

__all__ = [
    "PROTOCOL_ID",
    "DataReceived",
    "Flag",
    "Frame",
    "IdleTimedOut",
    "Mplex",
    "MplexConfig",
    "MplexConnection",
    "MplexConnectionCore",
    "MplexEvent",
    "MplexStream",
    "StreamEnded",
    "StreamKey",
    "StreamOpenPacer",
    "StreamOpened",
    "StreamRejected",
    "StreamWasReset",
    "encode_header",
    "parse_frame",
]
