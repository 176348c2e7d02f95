"""The streams of one QUIC connection (https://github.com/libp2p/specs/blob/master/quic/README.md):
those open, the peer's new ones waiting for ``accept_stream`` or handed to the handler, the
peer's stream IDs implicitly opened but not yet seen (RFC 9000 section 3.2), and writers
waiting for send room. No I/O: ``QuicMuxedConnection`` calls it as aioquic reports events."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from p2pstack.errors import StreamReset
from p2pstack.sync import Signal
from transports.quic._stream import QuicStream, StreamOwner

if TYPE_CHECKING:
    from p2pstack.interfaces import MuxedStream

__all__ = ["StreamTable"]


class StreamTable:
    """The stream bookkeeping of one connection.

    Args:
        owner: the connection (its streams call it to send, read and abort).
        is_client: whether we dialed (the peer's stream IDs are then odd: RFC 9000 section 2.1).
        send_limit: unacknowledged bytes per stream before its ``send`` blocks.
    """

    def __init__(self, owner: StreamOwner, *, is_client: bool, send_limit: int) -> None:
        self._owner = owner
        self._peer_bit = 1 if is_client else 0
        self._send_limit = send_limit
        self.streams: dict[int, QuicStream] = {}
        #: The peer's streams not yet accepted (none while a handler is set).
        self.inbound: deque[QuicStream] = deque()
        self.handler: Callable[[MuxedStream], object] | None = None
        self.accept_signal = Signal()
        # Streams waiting for send room, woken in the order they blocked (a dict: a set's
        # order follows object addresses, which would make simulations irreproducible).
        self.blocked: dict[QuicStream, None] = {}
        self._max_inbound = -1  # highest stream ID the peer opened
        # The peer's stream IDs below _max_inbound whose first frame has not arrived yet: opening
        # a stream implicitly opens the lower-numbered ones (RFC 9000 section 3.2), whose frames
        # may come later. Bounded by the stream limit we advertise (aioquic enforces it).
        self._unopened: set[int] = set()

    def open(self, stream_id: int) -> QuicStream:
        """Our new stream ``stream_id``."""
        stream = QuicStream(self._owner, stream_id, send_limit=self._send_limit)
        self.streams[stream_id] = stream
        return stream

    def set_handler(self, handler: Callable[[MuxedStream], object]) -> None:
        """Hand each inbound stream to ``handler`` as it opens (queued ones at once)."""
        self.handler = handler
        while self.inbound:
            handler(self.inbound.popleft())

    def data_received(self, stream_id: int, data: bytes, end: bool) -> None:
        """Deliver STREAM data, opening the peer's new stream on its first frame."""
        stream = self.streams.get(stream_id)
        if stream is None:
            if not self._peer_opens(stream_id):
                # Closed here and forgotten (data in flight before STOP_SENDING took
                # effect): drop it, but release its window.
                self._owner.stream_consumed(stream_id, len(data))
                return
            stream = self.open(stream_id)
            if self.handler is not None:
                self.handler(stream)
            else:
                self.inbound.append(stream)
                self.accept_signal.set()
        stream.data_received(data, end)

    def _peer_opens(self, stream_id: int) -> bool:
        """Whether a frame for ``stream_id`` (unknown here) opens a new stream of the peer's;
        ``False`` for our own IDs and for the peer's streams already seen and forgotten."""
        if (stream_id & 1) != self._peer_bit:
            return False
        if stream_id > self._max_inbound:
            first = self._max_inbound + 4 if self._max_inbound >= 0 else stream_id & 3
            self._unopened.update(range(first, stream_id, 4))
            self._max_inbound = stream_id
            return True
        if stream_id in self._unopened:
            self._unopened.discard(stream_id)
            return True
        return False

    def reset_by_peer(self, stream_id: int, code: int, *, receive: bool) -> None:
        """RESET_STREAM (``receive``) or STOP_SENDING arrived for ``stream_id``."""
        self._unopened.discard(stream_id)
        stream = self.streams.get(stream_id)
        if stream is not None:
            what = "reset" if receive else "stopped"
            reason = StreamReset(f"stream {what} by peer (code {code})")
            stream.broken(reason, receive=receive, send=not receive)

    def forget(self, stream_id: int) -> bool:
        """Drop ``stream_id`` if both its directions are done; whether it was dropped."""
        stream = self.streams.get(stream_id)
        if stream is not None and stream.is_done:
            del self.streams[stream_id]
            return True
        return False

    def unblock_writers(self, buffered: Callable[[int], int]) -> None:
        """Wake the writers whose stream has room again (``buffered(id)`` below the limit)."""
        limit = self._send_limit
        for stream in list(self.blocked):
            if stream.is_done or buffered(stream.stream_id) < limit:
                del self.blocked[stream]
                stream.send_signal.set()

    def break_all(self, error: Exception) -> None:
        """The connection ended: fail every stream with ``error`` and wake ``accept``. A
        stream whose FIN arrived stays readable to its end (a response, then a close)."""
        for stream in self.streams.values():
            stream.broken(error, receive=not stream.remote_fin)
        self.streams.clear()
        self.blocked.clear()
        self.accept_signal.set()
