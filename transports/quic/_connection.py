"""The driver of one QUIC connection: feeds datagrams to aioquic's sans-IO ``QuicConnection``
(its timers and sending: ``_driver``), checks the peer's libp2p certificate once the TLS
handshake completes (``_handshake``), and maps QUIC streams to the host's ``MuxedStream``s
(``_stream_table``; https://github.com/libp2p/specs/blob/master/quic/README.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

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
from transports.quic._driver import DatagramSink, QuicDriver
from transports.quic._handshake import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_NO_ERROR,
    Rejection,
    authenticate,
    termination_error,
)
from transports.quic._stream_table import StreamTable

if TYPE_CHECKING:
    from p2pstack.identity import PeerId, PublicKey
    from p2pstack.interfaces import Buffer, MuxedStream
    from transports.quic._config import QuicConfig
    from transports.quic._engine import Libp2pQuic
    from transports.quic._stream import QuicStream

__all__ = ["DatagramSink", "QuicMuxedConnection"]  # DatagramSink: from _driver

log = logging.getLogger("transports.quic")

#: Application error code of our RESET_STREAM and STOP_SENDING frames.
STREAM_ERROR = 0


class QuicMuxedConnection(QuicDriver):
    """One QUIC connection as a ``MuxedConnection`` (and ``StreamPushingConnection``).

    Made by ``QuicEndpoint``. The endpoint's receive task calls ``datagram_received`` and
    ``after_receive``; ``handshake`` drives timers until the peer is authenticated; the host
    then runs ``run()`` for the connection's lifetime.
    """

    def __init__(
        self, quic: Libp2pQuic, sink: DatagramSink, config: QuicConfig, *, is_client: bool
    ) -> None:
        super().__init__(quic, sink, config)
        self.is_client = is_client
        self._table = StreamTable(self, is_client=is_client, send_limit=config.send_buffer)
        self._lingering = False  # aclose() waits for acknowledgements
        self._close_reason: BaseException | None = None
        self.expected_peer: PeerId | None = None
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
        return self._table.open(self.quic.open_bidi_stream())

    async def accept_stream(self) -> QuicStream:
        """Wait for the next stream the peer opened.

        Raises:
            ConnectionClosedError: the connection ended.
        """
        table = self._table
        while not table.inbound:
            if self._closed:
                raise ConnectionClosedError(f"connection closed: {self._close_reason}")
            await table.accept_signal.wait()
        return table.inbound.popleft()

    def set_stream_handler(self, handler: Callable[[MuxedStream], object]) -> None:
        """Hand each inbound stream to ``handler`` as it opens (queued ones at once)."""
        self._table.set_handler(handler)

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
        if self._table.blocked:
            self._table.unblock_writers(self.quic.unacknowledged)
        if self._lingering:
            self._kick()  # aclose() re-checks what is still unacknowledged
        if not self._closed:
            closed_by_peer = self.quic.peer_closed()
            if closed_by_peer is not None:
                # aioquic reports it only when its draining period (3 PTO, RFC 9000 section
                # 10.2.2) is over, while streams, their handlers and per-peer slots stay held;
                # in draining nothing more is sent or received, so end the connection now.
                self._on_terminated(closed_by_peer)

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
        self._table.blocked[stream] = None

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

    def _forget(self, stream_id: int) -> None:
        if self._table.forget(stream_id):
            self.quic.consumed.pop(stream_id, None)

    def _process_events(self) -> None:
        quic = self.quic
        while (event := quic.next_event()) is not None:
            kind = type(event)
            if kind is events.StreamDataReceived:
                assert isinstance(event, events.StreamDataReceived)
                self._table.data_received(event.stream_id, event.data, event.end_stream)
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
                self._retire_cid(event.connection_id)
            elif kind is events.ConnectionTerminated:
                assert isinstance(event, events.ConnectionTerminated)
                self._on_terminated(event)
                return

    def _on_stream_reset(self, stream_id: int, code: int, *, receive: bool) -> None:
        self._table.reset_by_peer(stream_id, code, receive=receive)
        self._forget(stream_id)

    def _on_handshake(self) -> None:
        result = authenticate(self.quic.peer_certificate_der(), self.expected_peer)
        if isinstance(result, Rejection):
            self.close_now(result.code, result.reason, result.error)
            return
        self.remote_public_key, self.remote_peer = result

    def _on_terminated(self, event: events.ConnectionTerminated) -> None:
        self._finish(termination_error(event, authenticated=self.remote_peer is not None))

    def _finish(self, error: BaseException | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_reason = error
        self._release_cids()
        self._table.break_all(ConnectionClosedError(f"connection closed: {error}"))
        self._wake.set()
