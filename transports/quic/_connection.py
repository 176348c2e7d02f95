"""The driver of one QUIC connection: feeds datagrams to aioquic's sans-IO ``QuicConnection``,
runs its timers, sends what it produces, checks the peer's libp2p certificate once the TLS
handshake completes (https://github.com/libp2p/specs/blob/master/tls/tls.md), and maps QUIC
streams to the host's ``MuxedStream``s (https://github.com/libp2p/specs/blob/master/quic/README.md).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import anyio
from aioquic.quic import events

from p2pstack.errors import (
    CertificateError,
    ConnectionClosedError,
    HandshakeError,
    PeerIdMismatch,
    RemoteProtocolError,
    StreamReset,
)
from p2pstack.identity import PeerId, PublicKey, verify_certificate
from p2pstack.sync import Signal, loop_clock
from transports.quic._stream import QuicStream

if TYPE_CHECKING:
    from p2pstack.interfaces import Buffer, MuxedStream
    from transports.quic._config import QuicConfig
    from transports.quic._engine import Libp2pQuic

__all__ = ["DatagramSink", "QuicMuxedConnection"]

log = logging.getLogger("transports.quic")

#: CONNECTION_CLOSE codes (RFC 9001 section 4.8: 0x100 + the TLS alert).
CLOSE_NO_ERROR = 0x0
CLOSE_INTERNAL_ERROR = 0x1
CLOSE_BAD_CERTIFICATE = 0x100 + 42
CLOSE_CERTIFICATE_REQUIRED = 0x100 + 116
#: Application error code of our RESET_STREAM and STOP_SENDING frames.
STREAM_ERROR = 0
#: A timer this close is run now, as if at its time: asyncio wakes timers up to one clock
#: resolution early, and waiting again for one already due would spin without time passing
#: (on the simulator's virtual clock, forever).
_TIMER_SLACK = 1e-6


class DatagramSink(Protocol):
    """What a connection needs from its endpoint (``QuicEndpoint``)."""

    async def send(self, datagrams: list[tuple[bytes, tuple[str, int]]]) -> None:
        """Send datagrams, waiting for room in the socket buffer. Never raises for the network."""
        ...

    def send_nowait(self, datagrams: list[tuple[bytes, tuple[str, int]]]) -> None:
        """Send what fits now; drop the rest. Never raises."""
        ...

    def register(self, cid: bytes, conn: QuicMuxedConnection) -> None:
        """Route datagrams addressed to ``cid`` to ``conn``."""
        ...

    def unregister(self, cid: bytes) -> None:
        """Stop routing ``cid``. Idempotent."""
        ...


class QuicMuxedConnection:
    """One QUIC connection as a ``MuxedConnection`` (and ``StreamPushingConnection``).

    Made by ``QuicEndpoint``. The endpoint's receive task calls ``datagram_received`` and
    ``after_receive``; ``handshake`` drives timers until the peer is authenticated; the host
    then runs ``run()`` for the connection's lifetime.
    """

    def __init__(
        self, quic: Libp2pQuic, sink: DatagramSink, config: QuicConfig, *, is_client: bool
    ) -> None:
        self.quic = quic
        self._sink = sink
        self._config = config
        self.is_client = is_client
        self._clock = loop_clock()
        self._streams: dict[int, QuicStream] = {}
        self._inbound: deque[QuicStream] = deque()
        self._handler: Callable[[MuxedStream], object] | None = None
        self._accept_signal = Signal()
        self._wake = Signal()
        self._dirty = False
        self._waiting_until: float | None = None
        # Streams waiting for send room, woken in the order they blocked (a dict: a set's
        # order follows object addresses, which would make simulations irreproducible).
        self._blocked: dict[QuicStream, None] = {}
        self._max_inbound = -1  # highest stream ID the peer opened
        self._lingering = False  # aclose() waits for acknowledgements
        # The peer's stream IDs below _max_inbound whose first frame has not arrived yet: opening
        # a stream implicitly opens the lower-numbered ones (RFC 9000 section 3.2), whose frames
        # may come later. Bounded by the stream limit we advertise (aioquic enforces it).
        self._unopened: set[int] = set()
        self._cids: set[bytes] = set()
        self._last_rx = self._clock()
        self._ping_uid = 0
        self._closed = False
        self._close_reason: BaseException | None = None
        self.expected_peer: PeerId | None = None
        self.remote_peer: PeerId | None = None
        self.remote_public_key: PublicKey | None = None
        self.remote_addr: tuple[str, int] = ("", 0)

    # -- MuxedConnection ----------------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        """Whether the connection has ended (no new streams; ``run()`` returns)."""
        return self._closed

    @property
    def close_reason(self) -> BaseException | None:
        """Why it ended: ``None`` for a clean close (or while open), ``HandshakeError``,
        ``CertificateError``, ``PeerIdMismatch`` or ``ConnectionClosedError``."""
        return self._close_reason

    @property
    def authenticated(self) -> bool:
        """Whether the handshake completed and the peer's certificate was verified."""
        return self.remote_peer is not None

    async def run(self) -> None:
        """Run timers and send queued data until the connection ends; never raises for it."""
        await self._drive(lambda: self._closed)

    async def open_stream(self) -> QuicStream:
        """Open a bidirectional stream (it waits for the peer's MAX_STREAMS if need be).

        Raises:
            ConnectionClosedError: the connection is closed.
        """
        if self._closed:
            raise ConnectionClosedError(f"connection closed: {self._close_reason}")
        stream_id = self.quic.open_bidi_stream()
        stream = QuicStream(self, stream_id, send_limit=self._config.send_buffer)
        self._streams[stream_id] = stream
        return stream

    async def accept_stream(self) -> QuicStream:
        """Wait for the next stream the peer opened.

        Raises:
            ConnectionClosedError: the connection ended.
        """
        while not self._inbound:
            if self._closed:
                raise ConnectionClosedError(f"connection closed: {self._close_reason}")
            await self._accept_signal.wait()
        return self._inbound.popleft()

    def set_stream_handler(self, handler: Callable[[MuxedStream], object]) -> None:
        """Hand each inbound stream to ``handler`` as it opens (queued ones at once)."""
        self._handler = handler
        while self._inbound:
            handler(self._inbound.popleft())

    async def aclose(self) -> None:
        """Close with NO_ERROR (CONNECTION_CLOSE) and end ``run()``. Idempotent, never raises.

        CONNECTION_CLOSE discards whatever the streams still have in flight, so data already
        written (a response followed by a close) is first given up to ``QuicConfig.linger``
        seconds to be acknowledged.
        """
        if self._closed:
            return
        try:
            if self.remote_peer is not None and self.quic.anything_unacknowledged():
                self._lingering = True
                with anyio.move_on_after(self._config.linger):
                    await self._drive(
                        lambda: self._closed or not self.quic.anything_unacknowledged()
                    )
        finally:
            self._lingering = False
            self.close_now(CLOSE_NO_ERROR, "closed", None)

    def close_now(
        self, code: int, reason: str, error: BaseException | None, *, silent: bool = False
    ) -> None:
        """Send CONNECTION_CLOSE (best effort, without waiting; not if ``silent``) and end
        the connection."""
        if self._closed:
            return
        if not silent:
            self.quic.close(error_code=code, reason_phrase=reason)
            self._sink.send_nowait(self.quic.datagrams_to_send(self._clock()))
        self._finish(error)

    # -- endpoint side ------------------------------------------------------------------------

    def add_cid(self, cid: bytes) -> None:
        """Route datagrams addressed to ``cid`` to this connection."""
        self._cids.add(cid)
        self._sink.register(cid, self)

    def datagram_received(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        """Feed one datagram to aioquic and dispatch what it produced (no I/O)."""
        if self._closed:
            return
        self._last_rx = now
        try:
            self.quic.receive_datagram(data, addr, now)
        except Exception as exc:
            # A peer's bytes must not reach the endpoint's task (and so the host's task
            # group): end only this connection, with a typed reason.
            error = RemoteProtocolError(f"QUIC packet processing failed: {exc!r}")
            self.close_now(CLOSE_INTERNAL_ERROR, "internal error", error)
            return
        self._process_events()
        if self._blocked:
            self._unblock_writers()
        if self._lingering:
            self._kick()  # aclose() re-checks what is still unacknowledged
        if not self._closed:
            closed_by_peer = self.quic.peer_closed()
            if closed_by_peer is not None:
                # aioquic reports it only when its draining period (3 PTO, RFC 9000 section
                # 10.2.2) is over, while streams, their handlers and per-peer slots stay held;
                # in draining nothing more is sent or received, so end the connection now.
                self._on_terminated(closed_by_peer)

    async def after_receive(self) -> None:
        """Send what the datagrams received produced (ACKs, data the new window allows)."""
        if self._closed:
            return
        datagrams = self.quic.datagrams_to_send(self._clock())
        if datagrams:
            await self._sink.send(datagrams)
        timer = self.quic.get_timer()
        waiting = self._waiting_until
        if timer is not None and (waiting is None or timer < waiting):
            self._kick()

    async def handshake(self) -> None:
        """Drive the connection until the peer is authenticated; the caller bounds the time.

        Raises:
            HandshakeError, CertificateError, PeerIdMismatch: the handshake failed.
            ConnectionClosedError: the connection ended during it.
        """
        # Send the first flight now: before anything is sent aioquic's timer reads an absolute
        # 0.2 s (harmless on a real clock, a 0.2 s stall at the start of a virtual one).
        self._kick()
        await self._drive(lambda: self._closed or self.remote_peer is not None)
        if self.remote_peer is None:
            reason = self._close_reason
            if isinstance(reason, HandshakeError | CertificateError | PeerIdMismatch):
                raise reason
            raise HandshakeError(f"QUIC handshake failed: {reason}")

    # -- streams (StreamOwner, documented there) -------------------------------------------------

    def stream_consumed(self, stream_id: int, amount: int) -> None:
        quic = self.quic
        quic.consumed[stream_id] = quic.consumed.get(stream_id, 0) + amount
        quic.consumed_total += amount
        if quic.credit_due(stream_id):
            self._kick()

    def stream_send(self, stream_id: int, data: Buffer, *, end: bool) -> None:
        if self._closed:
            raise StreamReset(f"connection closed: {self._close_reason}")
        try:
            # aioquic annotates bytes but only appends the data to its send buffer (a bytearray),
            # so any buffer works and a memoryview is not copied first.
            self.quic.send_stream_data(stream_id, data, end_stream=end)  # type: ignore[arg-type]
        except (ValueError, RuntimeError) as exc:  # aioquic: stream finished or reset
            raise StreamReset(str(exc)) from None
        self._kick()

    def stream_buffered(self, stream_id: int) -> int:
        return self.quic.unacknowledged(stream_id)

    def stream_blocked(self, stream: QuicStream) -> None:
        self._blocked[stream] = None

    def stream_abort(self, stream_id: int, *, send: bool, receive: bool) -> None:
        if self._closed:
            return
        try:
            if send:
                self.quic.reset_stream(stream_id, STREAM_ERROR)
            if receive:
                self.quic.stop_stream(stream_id, STREAM_ERROR)
        except ValueError:  # already discarded by aioquic: nothing left to abort
            pass
        self._forget(stream_id)
        if send or receive:
            self._kick()

    # -- internals ----------------------------------------------------------------------------

    def _kick(self) -> None:
        if not self._dirty:
            self._dirty = True
            self._wake.set()

    def _forget(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None and stream.is_done:
            del self._streams[stream_id]
            self.quic.consumed.pop(stream_id, None)

    def _unblock_writers(self) -> None:
        limit = self._config.send_buffer
        for stream in list(self._blocked):
            if stream.is_done or self.stream_buffered(stream.stream_id) < limit:
                del self._blocked[stream]
                stream.send_signal.set()

    async def _drive(self, done: Callable[[], bool]) -> None:
        """Wait for timers and kicks, run them, and send, until ``done()``."""
        while not done():
            deadline = self._next_deadline()
            if not self._dirty:
                self._waiting_until = deadline
                if deadline is None:
                    await self._wake.wait()
                else:
                    await self._wake.wait_until(deadline)
                self._waiting_until = None
            self._dirty = False
            if self._closed:
                break
            now = self._clock()
            try:
                if deadline is not None and now >= deadline - _TIMER_SLACK:
                    now = max(now, deadline)
                    self._on_deadline(now)
                datagrams = self.quic.datagrams_to_send(now)
            except Exception as exc:  # as in datagram_received: end only this connection
                error = RemoteProtocolError(f"QUIC connection failed: {exc!r}")
                self.close_now(CLOSE_INTERNAL_ERROR, "internal error", error, silent=True)
                break
            if datagrams:
                await self._sink.send(datagrams)

    def _next_deadline(self) -> float | None:
        timer = self.quic.get_timer()
        keep_alive = self._config.keep_alive
        if keep_alive is None or self.remote_peer is None:
            return timer
        ping_at = self._last_rx + keep_alive
        return ping_at if timer is None else min(timer, ping_at)

    def _on_deadline(self, now: float) -> None:
        quic = self.quic
        timer = quic.get_timer()
        if timer is not None and now >= timer:
            quic.handle_timer(now)
            if quic.get_timer() == timer:
                # aioquic's loss timer is sent time + delay, and it declares a packet lost when
                # sent time <= now - delay: rounding can leave it due but unfired, which on a
                # virtual clock (time stands still) would repeat forever.
                quic.handle_timer(timer + _TIMER_SLACK)
        keep_alive = self._config.keep_alive
        alive = self.remote_peer is not None
        if keep_alive is not None and alive and now >= self._last_rx + keep_alive:
            self._ping_uid += 1
            self.quic.send_ping(self._ping_uid)
            self._last_rx = now
        self._process_events()

    def _process_events(self) -> None:
        quic = self.quic
        while (event := quic.next_event()) is not None:
            kind = type(event)
            if kind is events.StreamDataReceived:
                assert isinstance(event, events.StreamDataReceived)
                self._on_stream_data(event.stream_id, event.data, event.end_stream)
            elif kind is events.StreamReset:
                assert isinstance(event, events.StreamReset)
                self._on_stream_reset(event.stream_id, event.error_code, receive=True)
            elif kind is events.StopSendingReceived:
                assert isinstance(event, events.StopSendingReceived)
                self._on_stream_reset(event.stream_id, event.error_code, receive=False)
            elif kind is events.HandshakeCompleted:
                self._on_handshake()
            elif kind is events.ConnectionIdIssued:
                assert isinstance(event, events.ConnectionIdIssued)
                self.add_cid(event.connection_id)
            elif kind is events.ConnectionIdRetired:
                assert isinstance(event, events.ConnectionIdRetired)
                self._cids.discard(event.connection_id)
                self._sink.unregister(event.connection_id)
            elif kind is events.ConnectionTerminated:
                assert isinstance(event, events.ConnectionTerminated)
                self._on_terminated(event)
                return

    def _on_stream_data(self, stream_id: int, data: bytes, end: bool) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            if not self._peer_opens(stream_id):
                # Closed here and forgotten (data in flight before STOP_SENDING took
                # effect): drop it, but release its window.
                self.stream_consumed(stream_id, len(data))
                return
            stream = QuicStream(self, stream_id, send_limit=self._config.send_buffer)
            self._streams[stream_id] = stream
            if self._handler is not None:
                self._handler(stream)
            else:
                self._inbound.append(stream)
                self._accept_signal.set()
        stream.data_received(data, end)

    def _peer_opens(self, stream_id: int) -> bool:
        """Whether a frame for ``stream_id`` (unknown here) opens a new stream of the peer's;
        ``False`` for our own IDs and for the peer's streams already seen and forgotten."""
        if (stream_id & 1) != (1 if self.is_client else 0):
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

    def _on_stream_reset(self, stream_id: int, code: int, *, receive: bool) -> None:
        self._unopened.discard(stream_id)
        stream = self._streams.get(stream_id)
        if stream is not None:
            what = "reset" if receive else "stopped"
            reason = StreamReset(f"stream {what} by peer (code {code})")
            stream.broken(reason, receive=receive, send=not receive)
            self._forget(stream_id)

    def _on_handshake(self) -> None:
        certificate = self.quic.peer_certificate_der()
        if certificate is None:
            error = HandshakeError("the peer sent no certificate (libp2p requires one)")
            self.close_now(CLOSE_CERTIFICATE_REQUIRED, str(error), error)
            return
        try:
            key = verify_certificate(certificate)
        except CertificateError as exc:
            self.close_now(CLOSE_BAD_CERTIFICATE, str(exc), exc)
            return
        peer = PeerId.from_public_key(key)
        if self.expected_peer is not None and peer != self.expected_peer:
            mismatch = PeerIdMismatch(str(self.expected_peer), str(peer))
            self.close_now(CLOSE_BAD_CERTIFICATE, "unexpected peer", mismatch)
            return
        self.remote_public_key = key
        self.remote_peer = peer

    def _on_terminated(self, event: events.ConnectionTerminated) -> None:
        error: BaseException | None = None
        text = f"code {event.error_code:#x}: {event.reason_phrase}"
        if self.remote_peer is None:
            error = HandshakeError(f"QUIC connection closed during the handshake ({text})")
        elif event.error_code != CLOSE_NO_ERROR or event.reason_phrase == "Idle timeout":
            error = ConnectionClosedError(f"QUIC connection closed ({text})")
        self._finish(error)

    def _finish(self, error: BaseException | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_reason = error
        for cid in self._cids:
            self._sink.unregister(cid)
        self._cids.clear()
        broken = ConnectionClosedError(f"connection closed: {error}")
        for stream in self._streams.values():
            # A stream whose FIN arrived stays readable to its end (a response, then a close).
            stream.broken(broken, receive=not stream.remote_fin)
        self._streams.clear()
        self._blocked.clear()
        self._accept_signal.set()
        self._wake.set()
