"""The yamux connection state machine, sans-IO: bytes and commands in, bytes and events out
(https://github.com/hashicorp/yamux/blob/master/spec.md, profiled for libp2p by
https://github.com/libp2p/specs/blob/master/yamux/README.md).

It never touches sockets, anyio, clocks or randomness: the driver passes the current time to
``receive_data`` and ``consume``, and runs the timers (keep-alive pings and their timeout) as a
``p2pstack.sansio.TimedCore``: ``start_timers(now)``, then ``next_deadline`` /
``handle_timer(now)``. The round-trip time that window auto-tuning needs is measured here too,
by a probe Ping sent when data first flows.

Bounds: the event queue holds at most three events per frame of the last ``receive_data``
call, so at most one per 4 input bytes (the driver drains it after each call); a partial
header is < 12 bytes; a Data payload is delivered as it arrives, never buffered here (as a view
into the input when it is at least half of it, so buffered views pin at most twice the
window). Output grows only by what the commands queue (``pending_output`` tells the driver
when to wait).
"""

from __future__ import annotations

from collections.abc import Callable

from p2pstack.errors import LocalProtocolError, RemoteProtocolError
from transports.yamux._config import YamuxConfig
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
    MAX_U32,
    Flag,
    FrameType,
    GoAwayCode,
    Header,
    decode_header,
    encode_header,
)
from transports.yamux._pings import PingSchedule, TimerAction

__all__ = ["YamuxConnectionCore"]

#: Auto-tuning doubles a stream's window when half of it was consumed within this many RTTs:
#: the window, not the reader, is then what limits throughput.
_GROWTH_RTTS = 2.0
#: The smallest RTT auto-tuning assumes. A ping on an idle loopback or LAN link answers in tens
#: of microseconds, but under load a window update waits behind the peer's reads, decryption and
#: writes for milliseconds: judged by the idle RTT, a window that is the bottleneck would never
#: grow. Growth still needs a reader that keeps up, and stays within ``max_window`` and
#: ``max_connection_window``.
_MIN_RTT = 0.005
#: Events taken from the front of the event list after which it is compacted even though the
#: consumer has not drained it (bounds what a slow consumer leaves behind).
_COMPACT_EVENTS = 1024


class _Stream:
    """Flow-control and close state of one live stream."""

    __slots__ = (
        "epoch",
        "recv_fin",
        "recv_max",
        "recv_window",
        "send_window",
        "sent_fin",
        "unacked",
    )

    def __init__(self) -> None:
        self.send_window = INITIAL_WINDOW  # bytes we may still send
        self.recv_window = INITIAL_WINDOW  # bytes the peer may still send us
        self.recv_max = INITIAL_WINDOW  # the window size we currently grant
        self.unacked = 0  # consumed by the reader, not yet granted back
        self.sent_fin = False
        self.recv_fin = False
        self.epoch: float | None = None  # time of the last window update we sent


class YamuxConnectionCore:
    """One side of a yamux session.

    Streams are forgotten once they are reset, or once both sides sent FIN, or once
    ``close_stream`` was called; frames for forgotten or unknown streams are ignored (they race
    with resets), except that Data for them is answered with RST so a writer learns that
    nobody reads.

    Args:
        is_initiator: the dialer uses odd stream IDs, the listener even ones.
        config: limits (``max_streams``, ``max_window``, ``max_connection_window``,
            ``max_message_size`` are used here).
        may_grow_window: asked ``(stream_id, window)`` before a stream's receive window grows
            to ``window`` bytes (the driver reserves memory for it); ``False`` keeps the window.
    """

    def __init__(
        self,
        *,
        is_initiator: bool,
        config: YamuxConfig | None = None,
        may_grow_window: Callable[[int, int], bool] | None = None,
    ) -> None:
        self._config = config or YamuxConfig()
        self._may_grow_window = may_grow_window
        self._next_id = 1 if is_initiator else 2
        self._streams: dict[int, _Stream] = {}
        # A list read from ``_events_head`` and cleared once drained (the driver drains it
        # after every input): an empty deque costs about 0.75 KiB per connection, a list 56 B.
        self._events: list[YamuxEvent] = []
        self._events_head = 0
        self._out: list[bytes | memoryview] = []
        self._out_size = 0
        self._partial = bytearray()
        self._payload_left = 0
        self._payload_id = 0
        self._payload_fin = False
        self._window_total = 0
        self._pings = PingSchedule(
            interval=self._config.keepalive_interval, timeout=self._config.keepalive_timeout
        )
        self._now: float | None = None  # the time given with the input being parsed
        self._local_go_away = False
        self._remote_go_away = False
        self._failed = False
        #: Frame headers parsed so far (the driver reads less after a read full of them).
        self.frames_received = 0

    # -- state -------------------------------------------------------------------------------

    @property
    def pending_output(self) -> int:
        """Bytes queued by commands and not yet taken by ``data_to_send``."""
        return self._out_size

    @property
    def is_going_away(self) -> bool:
        """Whether either side sent GoAway or the peer broke the protocol: no new streams."""
        return self._local_go_away or self._remote_go_away or self._failed

    @property
    def stream_count(self) -> int:
        """Streams currently tracked (counted against ``max_streams``)."""
        return len(self._streams)

    def has_stream(self, stream_id: int) -> bool:
        """Whether ``stream_id`` is a live (not forgotten) stream."""
        return stream_id in self._streams

    @property
    def rtt(self) -> float | None:
        """The last measured (or ``update_rtt``-given) round-trip time in seconds."""
        return self._pings.rtt

    def send_window(self, stream_id: int) -> int:
        """Bytes we may still send on the stream (0 for unknown streams)."""
        stream = self._streams.get(stream_id)
        return 0 if stream is None else stream.send_window

    # -- output ------------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Take every byte queued for the peer (``b""`` if none)."""
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        return data

    def next_event(self) -> YamuxEvent | None:
        """Take the next event, or ``None`` when there is none."""
        events, head = self._events, self._events_head
        if head >= len(events):
            return None
        event = events[head]
        head += 1
        if head == len(events):
            events.clear()
            head = 0
        elif head >= _COMPACT_EVENTS:  # a consumer that never drains: drop what it took
            del events[:head]
            head = 0
        self._events_head = head
        return event

    def _frame(self, frame_type: FrameType, flags: int, stream_id: int, length: int) -> None:
        self._out.append(encode_header(frame_type, flags, stream_id, length))
        self._out_size += HEADER_LEN

    # -- commands ----------------------------------------------------------------------------

    def open_stream(self) -> int:
        """Open an outbound stream: queue a WindowUpdate with SYN.

        Returns:
            The new stream ID.

        Raises:
            LocalProtocolError: the session is going away, ``max_streams`` are open, or the
                stream ID space is exhausted.
        """
        if self.is_going_away:
            raise LocalProtocolError("yamux: the session is going away")
        if len(self._streams) >= self._config.max_streams:
            raise LocalProtocolError("yamux: too many open streams")
        stream_id = self._next_id
        if stream_id > MAX_U32:
            raise LocalProtocolError("yamux: stream IDs exhausted")
        self._next_id += 2
        self._add_stream(stream_id)
        self._frame(FrameType.WINDOW_UPDATE, Flag.SYN, stream_id, 0)
        return stream_id

    def send_data(self, stream_id: int, data: bytes | memoryview) -> int:
        """Queue as much of ``data`` as the peer's window allows, in frames of at most
        ``max_message_size`` bytes.

        The caller must not mutate ``data`` before ``data_to_send`` took it.

        Args:
            stream_id: a live stream on which we have not sent FIN.
            data: the bytes to send.

        Returns:
            How many leading bytes of ``data`` were queued (0 when the window is exhausted).

        Raises:
            LocalProtocolError: unknown stream, FIN already sent, or the session failed.
        """
        stream = self._streams.get(stream_id)
        if stream is None or stream.sent_fin or self._failed:
            raise LocalProtocolError(f"yamux: stream {stream_id} cannot send")
        total = min(len(data), stream.send_window)
        step = self._config.max_message_size
        if total == len(data) <= step:
            self._out.append(encode_header(FrameType.DATA, 0, stream_id, total))
            self._out.append(data)
            frames = 1
        else:
            view = memoryview(data)
            frames = 0
            for offset in range(0, total, step):
                size = min(step, total - offset)
                self._out.append(encode_header(FrameType.DATA, 0, stream_id, size))
                self._out.append(view[offset : offset + size])
                frames += 1
        stream.send_window -= total
        self._out_size += total + frames * HEADER_LEN
        return total

    def end_stream(self, stream_id: int) -> None:
        """Half-close: queue FIN (on a WindowUpdate). No-op if already sent or unknown."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.sent_fin:
            return
        stream.sent_fin = True
        self._frame(FrameType.WINDOW_UPDATE, Flag.FIN, stream_id, 0)
        if stream.recv_fin:
            self._forget(stream_id)

    def close_stream(self, stream_id: int) -> None:
        """Send FIN if not sent yet and stop reading: the stream is forgotten, and later Data
        from the peer is answered with RST. No-op for unknown streams."""
        self.end_stream(stream_id)
        self._forget(stream_id)

    def reset_stream(self, stream_id: int) -> None:
        """Queue RST and forget the stream. No-op for unknown streams."""
        if self._forget(stream_id):
            self._frame(FrameType.WINDOW_UPDATE, Flag.RST, stream_id, 0)

    def consume(self, stream_id: int, size: int, now: float) -> None:
        """Record that the reader took ``size`` bytes; grant window back when half of it was
        used, doubling the window (up to ``max_window``, and if ``may_grow_window`` agrees)
        when that happened within about two round trips (at least 5 ms each) of the previous
        update.

        Args:
            stream_id: the stream read from (unknown or finished streams are ignored).
            size: bytes the application consumed.
            now: the current time in seconds (any monotonic clock).
        """
        stream = self._streams.get(stream_id)
        if stream is None or stream.recv_fin:
            return
        stream.unacked += size
        if stream.unacked < stream.recv_max // 2:
            return
        delta = stream.unacked
        epoch = stream.epoch
        rtt = None if self._pings.rtt is None else max(self._pings.rtt, _MIN_RTT)
        if rtt is not None and epoch is not None and now - epoch < _GROWTH_RTTS * rtt:
            grow = min(stream.recv_max, self._config.max_window - stream.recv_max)
            ask = self._may_grow_window
            if (
                grow > 0
                and self._window_total + grow <= self._config.max_connection_window
                and (ask is None or ask(stream_id, stream.recv_max + grow))
            ):
                stream.recv_max += grow
                self._window_total += grow
                delta += grow
        stream.epoch = now
        stream.unacked = 0
        stream.recv_window += delta
        self._frame(FrameType.WINDOW_UPDATE, 0, stream_id, delta)
        if (opaque := self._pings.probe(now)) is not None:
            self.ping(opaque)  # auto-tuning needs an RTT: measure one now that data flows

    def update_rtt(self, rtt: float) -> None:
        """Set the round-trip time (seconds) that window auto-tuning compares against."""
        self._pings.rtt = rtt

    def send_ping(self) -> int:
        """Queue a Ping with the next opaque value of the session's counter (the one
        keep-alive and RTT probes use too, so the values never collide).

        Returns:
            The opaque value; the answer arrives as ``PingAnswered`` with it.
        """
        opaque = self._pings.new_opaque()
        self.ping(opaque)
        return opaque

    def ping(self, opaque: int) -> None:
        """Queue a Ping with SYN carrying the caller's ``opaque``; the answer arrives as
        ``PingAnswered(opaque)``. Prefer ``send_ping`` once timers run (no collisions).

        Raises:
            ValueError: ``opaque`` is not a u32.
        """
        if not 0 <= opaque <= MAX_U32:
            raise ValueError("ping opaque value must fit in 32 bits")
        self._frame(FrameType.PING, Flag.SYN, 0, opaque)

    def go_away(self, code: int = GoAwayCode.NORMAL) -> None:
        """Queue GoAway (once); afterwards inbound streams are refused with RST."""
        if not self._local_go_away:
            self._local_go_away = True
            self._frame(FrameType.GO_AWAY, 0, 0, code)

    # -- timers (p2pstack.sansio.TimedCore) --------------------------------------------------

    def start_timers(self, now: float) -> None:
        """The session runs from ``now``: arm keep-alive (if configured) and allow the RTT
        probe. Without this call the core keeps no timers."""
        self._pings.start(now)

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` is next due (a keep-alive ping or its timeout), or ``None``."""
        return None if self._failed else self._pings.next_deadline()

    def handle_timer(self, now: float) -> None:
        """Send the keep-alive Ping once ``keepalive_interval`` passed without input, or queue
        ``PingTimedOut`` once it went unanswered for ``keepalive_timeout`` (the driver then
        closes the connection; no timer is armed afterwards).

        Args:
            now: the current time, in the clock of the times given to the core.
        """
        action = self._pings.handle_timer(now)
        opaque = self._pings.keepalive_opaque
        if action is TimerAction.SEND_KEEPALIVE and opaque is not None:
            self.ping(opaque)
        elif action is TimerAction.TIMED_OUT:
            self._events.append(PingTimedOut(opaque if opaque is not None else 0))

    # -- input -------------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float | None = None) -> None:
        """Parse bytes read from the connection; events and replies are queued.

        Args:
            data: the bytes read.
            now: when they arrived (postpones keep-alive, times Ping answers); ``None`` when
                the core runs without timers.

        Raises:
            RemoteProtocolError: the peer broke the spec; GoAway(protocol error) is queued and
                the core accepts no more input.
            LocalProtocolError: called again after a ``RemoteProtocolError``.
        """
        if self._failed:
            raise LocalProtocolError("yamux: the session already failed")
        if not isinstance(data, bytes):
            data = bytes(data)
        if now is not None:
            self._pings.received(now)
        self._now = now
        try:
            self._parse(data)
        except RemoteProtocolError:
            self._failed = True
            self.go_away(GoAwayCode.PROTOCOL_ERROR)
            raise

    def _parse(self, data: bytes) -> None:
        view = memoryview(data)
        size = len(data)
        pos = 0
        while pos < size:
            if self._payload_left:
                take = min(self._payload_left, size - pos)
                piece = view[pos : pos + take]
                # A view, not a copy: the stream copies once when its reader takes the bytes.
                # Small pieces are copied so that a view never pins more than twice its size
                # (a peer must not make 1 byte of window hold a whole read buffer).
                self._deliver(data if take == size else piece if 2 * take >= size else bytes(piece))
                pos += take
                continue
            if self._partial or size - pos < HEADER_LEN:
                need = HEADER_LEN - len(self._partial)
                self._partial += view[pos : pos + need]
                pos = min(size, pos + need)
                if len(self._partial) < HEADER_LEN:
                    return
                header = decode_header(self._partial)
                self._partial.clear()
            else:
                header = decode_header(view, pos)
                pos += HEADER_LEN
            self._handle(header)

    def _deliver(self, chunk: bytes | memoryview) -> None:
        self._payload_left -= len(chunk)
        stream_id = self._payload_id
        if stream_id in self._streams:
            self._events.append(DataReceived(stream_id, chunk))
            if not self._payload_left and self._payload_fin:
                self._remote_fin(stream_id)

    def _handle(self, header: Header) -> None:
        self.frames_received += 1
        if header.type is FrameType.PING:
            if header.flags & Flag.SYN:
                # "The StreamID and Length value are echoed back" with ACK.
                self._frame(FrameType.PING, Flag.ACK, header.stream_id, header.length)
            elif header.flags & Flag.ACK and not self._pings.answered(header.length, self._now):
                self._events.append(PingAnswered(header.length))
        elif header.type is FrameType.GO_AWAY:
            self._remote_go_away = True
            self._events.append(GoAwayReceived(header.length))
        else:
            self._stream_frame(header)

    def _stream_frame(self, header: Header) -> None:
        flags, stream_id, length = header.flags, header.stream_id, header.length
        is_data = header.type is FrameType.DATA
        stream = self._streams.get(stream_id)
        if flags & Flag.SYN:
            stream = self._accept_remote(stream_id, stream)
            if stream is None:  # refused: already answered with RST
                self._skip(length if is_data else 0)
                return
        elif stream is None:
            if is_data and length and not flags & Flag.RST:
                self._frame(FrameType.WINDOW_UPDATE, Flag.RST, stream_id, 0)
            self._skip(length if is_data else 0)
            return
        if not is_data:
            if length:
                stream.send_window = min(stream.send_window + length, MAX_U32)
                self._events.append(WindowUpdated(stream_id, length))
            self._stream_flags(stream_id, flags)
            return
        if flags & Flag.RST:
            self._stream_flags(stream_id, flags)
            self._skip(length)
            return
        if length:
            if stream.recv_fin:
                raise RemoteProtocolError(f"yamux: data after FIN on stream {stream_id}")
            if length > stream.recv_window:
                raise RemoteProtocolError(f"yamux: data beyond the window on stream {stream_id}")
            stream.recv_window -= length
            self._payload_left = length
            self._payload_id = stream_id
            self._payload_fin = bool(flags & Flag.FIN)  # FIN takes effect after the payload
        else:
            self._stream_flags(stream_id, flags)

    def _skip(self, length: int) -> None:
        # Discard a payload; ID 0 is never a live stream.
        self._payload_left = length
        self._payload_id = 0
        self._payload_fin = False

    def _stream_flags(self, stream_id: int, flags: int) -> None:
        if flags & Flag.RST:
            if self._forget(stream_id):
                self._events.append(StreamResetReceived(stream_id))
        elif flags & Flag.FIN:
            self._remote_fin(stream_id)

    def _accept_remote(self, stream_id: int, existing: _Stream | None) -> _Stream | None:
        if existing is not None:
            raise RemoteProtocolError(f"yamux: SYN for open stream {stream_id}")
        if stream_id == 0 or stream_id % 2 == self._next_id % 2:
            raise RemoteProtocolError(f"yamux: peer opened stream {stream_id} of our parity")
        if self._local_go_away or len(self._streams) >= self._config.max_streams:
            self._frame(FrameType.WINDOW_UPDATE, Flag.RST, stream_id, 0)
            return None
        stream = self._add_stream(stream_id)
        self._frame(FrameType.WINDOW_UPDATE, Flag.ACK, stream_id, 0)
        self._events.append(StreamOpened(stream_id))
        return stream

    def _remote_fin(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.recv_fin:
            return
        stream.recv_fin = True
        self._events.append(StreamEnded(stream_id))
        if stream.sent_fin:
            self._forget(stream_id)

    def _add_stream(self, stream_id: int) -> _Stream:
        stream = self._streams[stream_id] = _Stream()
        self._window_total += stream.recv_max
        return stream

    def _forget(self, stream_id: int) -> bool:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return False
        self._window_total -= stream.recv_max
        return True
