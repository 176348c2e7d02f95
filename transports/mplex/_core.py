"""Sans-IO core of an mplex connection: the stream table, its limits and the message flags
(https://github.com/libp2p/specs/blob/master/mplex/README.md#protocol).

The core takes bytes in (``receive_data``) and commands (``open_stream``, ``send_data``,
``close_stream``, ``reset_stream``), and gives bytes out (``data_to_send``) and events
(``next_event``). It never touches sockets, anyio, time or randomness; the pacing of stream
opens (``StreamOpenPacer``) takes the current time as an argument, and the idle timeout is a
``p2pstack.sansio.TimedCore`` timer (``start_timers(now)``, ``receive_data(data, now)``,
``next_deadline`` / ``handle_timer(now)``).
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import attrs

from p2pstack.errors import LocalProtocolError, MuxerError, RemoteProtocolError

from ._config import MplexConfig
from ._frame import Flag, Frame, encode_header, parse_frame
from ._pacer import StreamOpenPacer

__all__ = [
    "DataReceived",
    "IdleTimedOut",
    "MplexConnectionCore",
    "MplexEvent",
    "StreamEnded",
    "StreamKey",
    "StreamOpenPacer",
    "StreamOpened",
    "StreamRejected",
    "StreamWasReset",
]


class StreamKey(NamedTuple):
    """Names one stream of a connection.

    mplex stream IDs are scoped by the stream's initiator: both sides count from 0, so ID 3
    may name a stream we opened *and* one the peer opened. The flag of every message says which
    (``*Initiator`` flags come from the opener, ``*Receiver`` flags from the other side).

    Attributes:
        stream_id: the number on the wire.
        local: ``True`` for a stream we opened, ``False`` for one the peer opened.
    """

    stream_id: int
    local: bool


@attrs.frozen(slots=True)
class StreamOpened:
    """The peer opened a stream and it was accepted by the limits.

    Attributes:
        key: the new stream.
        name: the name sent with ``NewStream`` (informational only; js-libp2p sends
            ``"i<id>"``, go-mplex and we send the decimal ID).
    """

    key: StreamKey
    name: str


@attrs.frozen(slots=True)
class StreamRejected:
    """The peer opened a stream beyond ``max_inbound_streams``; it was answered with a reset."""

    key: StreamKey
    reason: str


@attrs.frozen(slots=True)
class DataReceived:
    """Bytes arrived on a stream. Report them with ``consumed`` once the application read them."""

    key: StreamKey
    data: bytes


@attrs.frozen(slots=True)
class StreamEnded:
    """The peer half-closed the stream: no more data will arrive on it."""

    key: StreamKey


@attrs.frozen(slots=True)
class StreamWasReset:
    """The stream was aborted, by the peer (``by_peer``) or by the core itself (receive buffer
    overflow, data after the peer's close); buffered data must be dropped."""

    key: StreamKey
    reason: str
    by_peer: bool


@attrs.frozen(slots=True)
class IdleTimedOut:
    """Nothing arrived for ``idle_timeout`` seconds: the core ended the connection."""

    idle_timeout: float


MplexEvent = (
    StreamOpened | StreamRejected | DataReceived | StreamEnded | StreamWasReset | IdleTimedOut
)


@attrs.define(slots=True)
class _Stream:
    send_closed: bool = False  # we sent Close (or cannot write any more)
    recv_closed: bool = False  # the peer sent Close
    released: bool = False  # the application stopped reading: drop what arrives
    buffered: int = 0  # bytes delivered in DataReceived and not yet consumed


# Flags by (what, our role): index 0 when we are the stream's receiver, 1 when its initiator.
_MESSAGE = (Flag.MESSAGE_RECEIVER, Flag.MESSAGE_INITIATOR)
_CLOSE = (Flag.CLOSE_RECEIVER, Flag.CLOSE_INITIATOR)
_RESET = (Flag.RESET_RECEIVER, Flag.RESET_INITIATOR)


class MplexConnectionCore:
    """The state machine of one mplex connection, without I/O.

    Bounds: the partial message kept between ``receive_data`` calls is below
    ``max_message_size`` + 20 bytes; the event queue holds at most what one ``receive_data``
    call produced (at most one event per 2 received bytes) and is drained by the caller; each
    stream's undelivered bytes are bounded by ``max_stream_buffer`` through ``consumed``
    feedback; stream counts by ``max_inbound_streams`` / ``max_outbound_streams``. Outgoing
    bytes accumulate until ``data_to_send``: the caller drains them (the driver applies
    backpressure to writers).
    """

    def __init__(self, config: MplexConfig | None = None) -> None:
        """Args:
        config: limits (default ``MplexConfig()``).
        """
        self._config = config or MplexConfig()
        self._streams: dict[StreamKey, _Stream] = {}
        self._congested: set[StreamKey] = set()
        self._next_id = 0
        self._inbound = 0
        self._outbound = 0
        self._rbuf = bytearray()
        self._out: list[bytes | memoryview] = []
        self._out_size = 0
        self._events: deque[MplexEvent] = deque()
        self._error: RemoteProtocolError | None = None
        self._closed = False
        self._last_receive: float | None = None  # None: no idle timer
        self.ignored_messages = 0
        """Messages for streams that are unknown or already finished (a normal race after a
        reset; counted for diagnostics)."""

    # ------------------------------------------------------------------ state

    @property
    def is_closed(self) -> bool:
        """Whether the connection ended (``close``, ``connection_lost`` or a protocol error)."""
        return self._closed

    @property
    def error(self) -> RemoteProtocolError | None:
        """The protocol violation that killed the connection, if any."""
        return self._error

    @property
    def pending_output(self) -> int:
        """Bytes queued for ``data_to_send``."""
        return self._out_size

    @property
    def inbound_streams(self) -> int:
        """Streams the peer opened that are still open on the wire."""
        return self._inbound

    @property
    def outbound_streams(self) -> int:
        """Streams we opened that are still open on the wire."""
        return self._outbound

    def is_open(self, key: StreamKey) -> bool:
        """Whether ``key`` is still open on the wire (not reset, not closed both ways)."""
        return key in self._streams

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes | bytearray | memoryview, now: float | None = None) -> None:
        """Feed bytes read from the connection; then drain ``next_event`` and ``data_to_send``.

        Args:
            data: the bytes read.
            now: when they arrived (restarts the idle timer); ``None`` without timers.

        Raises:
            RemoteProtocolError: the peer broke the protocol (malformed varint, unknown flag,
                oversized message, ``NewStream`` for an open stream). The connection is dead.
            LocalProtocolError: called after the connection ended.
        """
        if self._closed:
            raise LocalProtocolError("mplex connection is closed")
        if now is not None and self._last_receive is not None:
            self._last_receive = now
        if self._rbuf:
            self._rbuf += data
            buf: bytes | bytearray | memoryview = self._rbuf
        else:
            buf = data
        pos = 0
        max_size = self._config.max_message_size
        try:
            while (parsed := parse_frame(buf, pos, max_size)) is not None:
                frame, pos = parsed
                self._handle(frame)
        except RemoteProtocolError as exc:
            self._fail(exc)
            raise
        if buf is self._rbuf:
            del self._rbuf[:pos]
        elif pos < len(buf):
            self._rbuf = bytearray(buf[pos:])

    def next_event(self) -> MplexEvent | None:
        """The next event, or ``None`` when there is none."""
        return self._events.popleft() if self._events else None

    # ------------------------------------------------------------------ timers

    def start_timers(self, now: float) -> None:
        """The connection runs from ``now``: arm the idle timeout (if ``idle_timeout`` is set)."""
        if self._config.idle_timeout is not None:
            self._last_receive = now

    def next_deadline(self) -> float | None:
        """When the idle timeout expires unless bytes arrive first, or ``None``."""
        idle = self._config.idle_timeout
        if self._last_receive is None or idle is None or self._closed:
            return None
        return self._last_receive + idle

    def handle_timer(self, now: float) -> None:
        """End the connection with ``IdleTimedOut`` if nothing arrived for ``idle_timeout``
        seconds by ``now`` (the driver then closes the transport)."""
        deadline = self.next_deadline()
        idle = self._config.idle_timeout
        if deadline is not None and idle is not None and now >= deadline:
            self.connection_lost()
            self._events.append(IdleTimedOut(idle))

    def _handle(self, frame: Frame) -> None:
        flag = frame.flag
        if flag is Flag.NEW_STREAM:
            self._on_new_stream(frame)
            return
        # A flag sent by the stream's initiator names a stream the peer opened.
        key = StreamKey(frame.stream_id, not flag.sent_by_initiator)
        st = self._streams.get(key)
        if st is None:
            self.ignored_messages += 1
        elif flag in _MESSAGE:
            self._on_data(key, st, frame.data)
        elif flag in _CLOSE:
            if not st.recv_closed:
                st.recv_closed = True
                if not st.released:
                    self._events.append(StreamEnded(key))
                self._forget_if_done(key, st)
        else:
            # Reset: "any data queued or in flight should be dropped"; no answer is sent.
            self._forget(key)
            if not st.released:
                self._events.append(StreamWasReset(key, "stream reset by peer", by_peer=True))

    def _on_new_stream(self, frame: Frame) -> None:
        key = StreamKey(frame.stream_id, False)
        if key in self._streams:
            raise RemoteProtocolError(f"mplex: NewStream for open stream {frame.stream_id}")
        if self._inbound >= self._config.max_inbound_streams:
            self._queue(encode_header(frame.stream_id, Flag.RESET_RECEIVER, 0))
            self._events.append(StreamRejected(key, "too many inbound streams"))
            return
        self._streams[key] = _Stream()
        self._inbound += 1
        self._events.append(StreamOpened(key, frame.data.decode("utf-8", "replace")))

    def _on_data(self, key: StreamKey, st: _Stream, data: bytes) -> None:
        if st.recv_closed:
            self._abort(key, st, "peer sent data after closing the stream")
        elif st.released or not data:
            return
        elif st.buffered + len(data) > self._config.max_stream_buffer:
            # No flow control in mplex: reset the slow stream rather than buffer without bound.
            self._abort(key, st, "stream receive buffer overflow")
        else:
            st.buffered += len(data)
            if st.buffered >= self._config.backpressure_threshold:
                self._congested.add(key)
            self._events.append(DataReceived(key, data))

    def _abort(self, key: StreamKey, st: _Stream, reason: str) -> None:
        self._queue(encode_header(key.stream_id, _RESET[key.local], 0))
        self._forget(key)
        if not st.released:
            self._events.append(StreamWasReset(key, reason, by_peer=False))

    # ------------------------------------------------------------------ commands

    def open_stream(self) -> StreamKey:
        """Allocate the next stream ID and queue its ``NewStream`` (named by the decimal ID).

        Raises:
            MuxerError: ``max_outbound_streams`` streams are already open.
            LocalProtocolError: the connection ended.
        """
        self._check_open()
        if self._outbound >= self._config.max_outbound_streams:
            raise MuxerError(f"mplex: {self._outbound} outbound streams open, the maximum")
        stream_id = self._next_id
        self._next_id += 1
        key = StreamKey(stream_id, True)
        self._streams[key] = _Stream()
        self._outbound += 1
        name = str(stream_id).encode()
        self._queue(encode_header(stream_id, Flag.NEW_STREAM, len(name)), name)
        return key

    def send_data(self, key: StreamKey, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` on the stream, split into messages of at most ``max_message_size``.

        Raises:
            LocalProtocolError: the stream is not open for writing (closed, reset or unknown),
                or the connection ended.
        """
        self._check_open()
        st = self._streams.get(key)
        if st is None or st.send_closed:
            raise LocalProtocolError(f"mplex: stream {key} is not open for writing")
        flag = _MESSAGE[key.local]
        size = len(data)
        max_size = self._config.max_message_size
        if not size:
            return
        # Immutable bytes are queued without a copy (data_to_send joins everything once);
        # mutable buffers are copied so later changes by the caller cannot leak onto the wire.
        payload = data if isinstance(data, bytes) else bytes(data)
        if size <= max_size:
            self._queue(encode_header(key.stream_id, flag, size), payload)
            return
        view = memoryview(payload)
        for start in range(0, size, max_size):
            chunk = view[start : start + max_size]
            self._queue(encode_header(key.stream_id, flag, len(chunk)), chunk)

    def close_stream(self, key: StreamKey) -> None:
        """Half-close: queue ``Close`` unless already sent. Idempotent; unknown keys are ignored."""
        st = self._streams.get(key)
        if st is None or st.send_closed or self._closed:
            return
        st.send_closed = True
        self._queue(encode_header(key.stream_id, _CLOSE[key.local], 0))
        self._forget_if_done(key, st)

    def reset_stream(self, key: StreamKey) -> None:
        """Abort the stream: queue ``Reset`` and forget it. Idempotent; a stream that is already
        finished on the wire sends nothing (js-libp2p rate-limits messages for unknown streams).
        """
        st = self._streams.get(key)
        if st is None or self._closed:
            return
        self._queue(encode_header(key.stream_id, _RESET[key.local], 0))
        self._forget(key)

    def release(self, key: StreamKey) -> None:
        """The application is done with the stream: half-close it and drop whatever still
        arrives (mplex cannot close the read side; the peer's own close finishes it)."""
        st = self._streams.get(key)
        if st is None:
            return
        st.released = True
        st.buffered = 0
        self._congested.discard(key)
        self.close_stream(key)

    def consumed(self, key: StreamKey, nbytes: int) -> None:
        """The application read ``nbytes`` delivered by ``DataReceived``: free buffer space."""
        st = self._streams.get(key)
        if st is not None:
            st.buffered = max(0, st.buffered - nbytes)
            if st.buffered < self._config.backpressure_threshold:
                self._congested.discard(key)

    @property
    def congested(self) -> list[StreamKey]:
        """Streams holding at least ``backpressure_threshold`` unread bytes: the driver should
        stop feeding ``receive_data`` until the application reads them down."""
        return list(self._congested)

    def reset_all(self) -> list[StreamKey]:
        """Queue ``Reset`` for every open stream, forget them and end the connection.

        Returns:
            The streams that were open.
        """
        keys = list(self._streams)
        if not self._closed:
            for key in keys:
                self._queue(encode_header(key.stream_id, _RESET[key.local], 0))
        self.connection_lost()
        return keys

    def connection_lost(self) -> None:
        """The underlying connection is gone: forget every stream. Idempotent."""
        self._closed = True
        self._streams.clear()
        self._inbound = self._outbound = 0
        self._rbuf = bytearray()

    # ------------------------------------------------------------------ output

    def data_to_send(self) -> bytes:
        """Everything queued for the wire since the last call (``b""`` when nothing is)."""
        if not self._out:
            return b""
        out = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out = []
        self._out_size = 0
        return bytes(out)

    # ------------------------------------------------------------------ helpers

    def _queue(self, header: bytes, payload: bytes | memoryview = b"") -> None:
        self._out.append(header)
        self._out_size += len(header)
        if payload:
            self._out.append(payload)
            self._out_size += len(payload)

    def _check_open(self) -> None:
        if self._closed:
            raise LocalProtocolError("mplex connection is closed")

    def _forget_if_done(self, key: StreamKey, st: _Stream) -> None:
        if st.send_closed and st.recv_closed:
            self._forget(key)

    def _forget(self, key: StreamKey) -> None:
        self._congested.discard(key)
        if self._streams.pop(key, None) is not None:
            if key.local:
                self._outbound -= 1
            else:
                self._inbound -= 1

    def _fail(self, exc: RemoteProtocolError) -> None:
        self._error = exc
        self.connection_lost()
