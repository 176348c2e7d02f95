"""anyio driver of the mplex muxer: pumps a secured byte stream through ``MplexConnectionCore``
(https://github.com/libp2p/specs/blob/master/mplex/README.md).

One reader task (``run()``) feeds the core and dispatches its events; writes are serialised by
one lock and batched (whatever the core queued while a write was in flight goes out in the next
write); every write has a deadline and is shielded from cancellation so a cancelled sender can
never leave half a message on the wire.
"""

from __future__ import annotations

import logging
from collections import deque

import anyio
import anyio.abc
import attrs

from p2pstack.errors import (
    ConnectionClosedError,
    LocalProtocolError,
    P2PError,
    P2PTimeoutError,
    RemoteProtocolError,
)
from p2pstack.interfaces import ByteStream, MemoryBudget, SecureConnection
from p2pstack.resources import MuxerMemory
from p2pstack.sansio import TimerDriver
from p2pstack.sync import loop_clock

from ._config import MplexConfig
from ._core import (
    DataReceived,
    IdleTimedOut,
    MplexConnectionCore,
    StreamEnded,
    StreamKey,
    StreamOpened,
    StreamOpenPacer,
    StreamWasReset,
)
from ._stream import MplexStream

__all__ = ["PROTOCOL_ID", "Mplex", "MplexConnection"]

PROTOCOL_ID = "/mplex/6.7.0"

log = logging.getLogger("transports.mplex")

# The reader stops reading and writes itself once this many control bytes (resets of rejected
# or overflowing streams) wait to be sent, so a peer cannot grow our output without bound.
_MAX_PENDING_CONTROL = 64 << 10

# Errors a broken underlying connection may raise from send/receive.
_IO_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, P2PError)


@attrs.frozen(kw_only=True)
class Mplex:
    """The ``/mplex/6.7.0`` stream muxer (a ``MemoryBudgetedMuxer``).

    Attributes:
        config: limits and timing shared by every connection it makes.
    """

    config: MplexConfig = attrs.field(factory=MplexConfig)

    @property
    def protocol_id(self) -> str:
        return PROTOCOL_ID

    def new_connection(
        self, conn: SecureConnection, *, is_initiator: bool, memory: MemoryBudget | None = None
    ) -> MplexConnection:
        """Wrap a secured connection. Does no I/O: the caller then runs ``run()``.

        Args:
            conn: the secured connection.
            is_initiator: whether we dialed it (mplex numbers streams per side, so this is
                informational).
            memory: where buffered inbound data is reserved (the connection's resource
                scope); ``None``: only ``max_stream_buffer`` bounds the buffers.

        Returns:
            The multiplexed connection.
        """
        return MplexConnection(conn, is_initiator=is_initiator, config=self.config, memory=memory)


class MplexConnection:
    """An mplex connection (a ``MuxedConnection``): run ``run()`` in a task group.

    Bounds: see ``MplexConfig``; inbound streams waiting for ``accept_stream`` are at most
    ``accept_backlog``; bytes waiting to be written are at most what blocked senders passed in,
    plus ``64 KiB`` of control messages. With a ``memory`` budget each stream reserves what it
    buffers (in 64 KiB steps, released when its buffer empties or it ends); a refused
    reservation resets that stream (counted in ``memory_resets``).
    """

    def __init__(
        self,
        conn: ByteStream,
        *,
        is_initiator: bool,
        config: MplexConfig | None = None,
        memory: MemoryBudget | None = None,
    ) -> None:
        """Args:
        conn: the secured byte stream to multiplex.
        is_initiator: whether we dialed the connection (informational for mplex).
        config: limits and timing (default ``MplexConfig()``).
        memory: where stream buffers are reserved (``None``: not accounted).
        """
        self._conn = conn
        self._memory = None if memory is None else MuxerMemory(memory)
        self.is_initiator = is_initiator
        self._config = config or MplexConfig()
        self._core = MplexConnectionCore(self._config)
        self._pacer = StreamOpenPacer(
            self._config.max_stream_opens_per_window, self._config.stream_open_window
        )
        self._streams: dict[StreamKey, MplexStream] = {}
        self._backlog: deque[MplexStream] = deque()
        self._accept_event = anyio.Event()
        self._readers_caught_up = anyio.Event()
        self._backlog_drained = anyio.Event()
        self._write_lock = anyio.Lock(fast_acquire=True)
        self._open_lock = anyio.Lock(fast_acquire=True)
        self._tg: anyio.abc.TaskGroup | None = None
        self._reader_scope: anyio.CancelScope | None = None
        self._flush_scheduled = False
        self._started = False
        self._closing = False
        self._dead = False
        self._transport_closed = False
        self._close_reason: BaseException | None = None
        self.rejected_streams = 0
        """Inbound streams reset because a limit (count or backlog) was reached."""
        self.memory_resets = 0
        """Streams reset because their buffer could not be reserved in ``memory``."""

    @property
    def is_closed(self) -> bool:
        return self._dead or self._closing

    @property
    def close_reason(self) -> BaseException | None:
        """Why the connection ended, or ``None`` for a clean close (or while it is open)."""
        return self._close_reason

    async def run(self) -> None:
        """Read and dispatch until the connection ends; then reset every open stream and close
        the underlying connection. Returns for every remote or network cause (recorded in
        ``close_reason``).

        Raises:
            LocalProtocolError: ``run()`` was called twice.
        """
        if self._started:
            raise LocalProtocolError("MplexConnection.run() may be called once")
        self._started = True
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self._core.start_timers(anyio.current_time())
                if self._core.next_deadline() is not None:
                    tg.start_soon(TimerDriver(self._core, on_fire=self._on_timer).run)
                reason = await self._read_loop()
                self._terminate(reason)
                tg.cancel_scope.cancel()
        finally:
            self._tg = None
            self._terminate(None)
            await self._close_transport()

    async def _read_loop(self) -> BaseException | None:
        with anyio.CancelScope() as scope:
            self._reader_scope = scope
            if self._dead:
                scope.cancel()
            return await self._read_until_end()
        return None

    async def _read_until_end(self) -> BaseException | None:
        conn, core, read_size = self._conn, self._core, self._config.read_size
        # The idle timer needs the arrival time of each read; nothing else here does.
        clock = loop_clock() if self._config.idle_timeout is not None else None
        while True:
            try:
                data = await conn.receive(read_size)
            except anyio.EndOfStream:
                return None
            except _IO_ERRORS as exc:
                return exc
            if core.is_closed:  # aclose() is under way: what arrives now is moot
                return None
            try:
                core.receive_data(data, None if clock is None else clock())
            except RemoteProtocolError as exc:
                return exc
            self._dispatch()
            if core.pending_output > _MAX_PENDING_CONTROL:
                await self._flush()
            elif core.pending_output:
                self._schedule_flush()
            if core.congested:
                await self._wait_for_readers()
            if len(self._backlog) >= self._config.accept_backlog:
                await self._wait_for_accepts()

    async def _wait_for_readers(self) -> None:
        """Stop reading while a stream holds too much unread data (TCP then pushes back on
        the sender); a stream that stays congested past ``backpressure_timeout`` is reset."""
        core = self._core
        with anyio.move_on_after(self._config.backpressure_timeout):
            while core.congested:
                self._readers_caught_up = anyio.Event()
                await self._readers_caught_up.wait()
            return
        for key in core.congested:
            stream = self._streams.pop(key, None)
            if stream is not None:
                stream._on_reset("stream not read for too long (mplex backpressure timeout)")
            core.reset_stream(key)
        await self._flush_quietly()

    async def _wait_for_accepts(self) -> None:
        """Stop reading while the accept backlog is full, so that a peer opening streams
        faster than the application accepts them is slowed down by TCP rather than refused;
        after ``backpressure_timeout`` reading goes on and further new streams are reset."""
        with anyio.move_on_after(self._config.backpressure_timeout):
            while len(self._backlog) >= self._config.accept_backlog and not self._dead:
                self._backlog_drained = anyio.Event()
                await self._backlog_drained.wait()

    def _on_consumed(self) -> None:
        """A stream's reader took data: wake the paused reader if nothing is congested."""
        if not self._core.congested:
            self._readers_caught_up.set()

    def _dispatch(self) -> None:
        core = self._core
        streams = self._streams
        while (event := core.next_event()) is not None:
            if isinstance(event, DataReceived):
                stream = streams.get(event.key)
                if stream is not None:
                    stream._on_data(event.data)
            elif isinstance(event, StreamOpened):
                self._on_stream_opened(event.key)
            elif isinstance(event, StreamEnded):
                stream = streams.get(event.key)
                if stream is not None:
                    stream._on_eof()
                    self._forget_if_done(stream)
            elif isinstance(event, StreamWasReset):
                stream = streams.pop(event.key, None)
                if stream is not None:
                    stream._on_reset(event.reason)
            elif isinstance(event, IdleTimedOut):
                self._terminate(
                    P2PTimeoutError(f"mplex: nothing received for {event.idle_timeout} s")
                )
            else:  # StreamRejected
                self.rejected_streams += 1

    async def _on_timer(self) -> None:
        self._dispatch()

    def _on_stream_opened(self, key: StreamKey) -> None:
        if len(self._backlog) >= self._config.accept_backlog:
            # Nobody is accepting fast enough: refuse rather than queue without bound.
            self._core.reset_stream(key)
            self.rejected_streams += 1
            return
        stream = self._new_stream(key)
        self._streams[key] = stream
        self._backlog.append(stream)
        self._accept_event.set()

    def _new_stream(self, key: StreamKey) -> MplexStream:
        memory = None if self._memory is None else self._memory.stream()
        return MplexStream(self, key, memory)

    def _memory_refused(self, stream: MplexStream, exc: Exception) -> None:
        """``stream``'s buffer could not be reserved: reset it (the peer sees a reset, our
        reader a ``StreamReset`` naming the limit)."""
        self.memory_resets += 1
        log.debug("mplex stream %s reset: %s", stream.key, exc)
        self._streams.pop(stream.key, None)
        self._core.reset_stream(stream.key)
        stream._on_reset(f"mplex stream {stream.stream_id} was reset: {exc}")
        self._schedule_flush()

    def _forget_if_done(self, stream: MplexStream) -> None:
        if not self._core.is_open(stream.key):
            self._streams.pop(stream.key, None)

    async def open_stream(self) -> MplexStream:
        """Open a new outbound stream, pacing opens as ``MplexConfig`` says.

        May wait up to ``stream_open_window`` seconds when opens come faster than the pacing
        allows (js-libp2p closes connections that open streams faster; see the package docs).

        Raises:
            ConnectionClosedError: the connection is closed or going away.
            MuxerError: ``max_outbound_streams`` streams are already open.
        """
        self._check_alive()
        async with self._open_lock:
            delay = self._pacer.delay(anyio.current_time())
            if delay > 0:
                await anyio.sleep(delay)  # pacing towards the peer's rate limit
            self._check_alive()
            key = self._core.open_stream()
            stream = self._new_stream(key)
            self._streams[key] = stream
            try:
                await self._flush()
            except BaseException:
                # Cancelled before the NewStream was written: take the stream back.
                self._core.reset_stream(key)
                self._streams.pop(key, None)
                self._schedule_flush()
                raise
            self._check_alive()
            # Pace by the time the NewStream left us, not by when it was queued.
            self._pacer.record(anyio.current_time())
        return stream

    async def accept_stream(self) -> MplexStream:
        """Wait for the next inbound stream.

        Raises:
            ConnectionClosedError: the connection ended.
        """
        while True:
            if self._backlog:
                self._backlog_drained.set()
                return self._backlog.popleft()
            self._check_alive()
            event = self._accept_event
            if event.is_set():
                event = self._accept_event = anyio.Event()
            await event.wait()

    async def aclose(self) -> None:
        """Reset every open stream, close the underlying connection and make ``run()`` return.
        Idempotent, never raises."""
        if self._closing:
            return
        self._closing = True
        with anyio.CancelScope(shield=True):
            if not self._dead:
                self._core.reset_all()
                # Break the streams before yielding: nobody may queue data behind the resets.
                self._break_streams("mplex connection closed")
                with anyio.move_on_after(self._config.write_timeout):
                    await self._flush()
            self._terminate(None)
            await self._close_transport()

    # Writing ----------------------------------------------------------------------------------

    async def _flush(self) -> None:
        """Write everything the core queued. Never raises for I/O errors: a failed write ends
        the connection (the callers then see their stream broken)."""
        async with self._write_lock:
            self._flush_scheduled = False
            data = self._core.data_to_send()
            if not data or self._dead:
                return
            # Shielded: a cancelled write could leave half a message on the wire. The scope's
            # own deadline still applies (one scope, not two: this is the hot path).
            deadline = anyio.current_time() + self._config.write_timeout
            try:
                with anyio.CancelScope(shield=True, deadline=deadline) as scope:
                    await self._conn.send(data)
            except _IO_ERRORS as exc:
                self._terminate(exc)
                return
            if scope.cancelled_caught:
                self._terminate(P2PTimeoutError("mplex: write timed out"))

    async def _flush_quietly(self) -> None:
        try:
            await self._flush()
        except anyio.get_cancelled_exc_class():
            self._schedule_flush()
            raise

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self._tg is not None and not self._dead:
            self._flush_scheduled = True
            self._tg.start_soon(self._flush)

    # Ending -----------------------------------------------------------------------------------

    def _check_alive(self) -> None:
        if self._dead or self._closing:
            raise ConnectionClosedError("mplex connection is closed") from self._close_reason

    def _terminate(self, reason: BaseException | None) -> None:
        """End the connection once: record why, break every stream, wake every waiter."""
        if self._dead:
            return
        self._dead = True
        self._close_reason = reason
        self._core.connection_lost()
        if self._memory is not None:
            self._memory.close()  # see YamuxConnection._terminate: the budget ends here
        self._break_streams(
            "mplex connection closed" if reason is None else f"mplex connection lost: {reason}"
        )
        if self._reader_scope is not None:
            self._reader_scope.cancel()

    def _break_streams(self, text: str) -> None:
        for stream in self._streams.values():
            stream._on_connection_lost(text)
        for stream in self._backlog:
            stream._on_connection_lost(text)
        self._streams.clear()
        self._backlog.clear()
        self._accept_event.set()

    async def _close_transport(self) -> None:
        if self._transport_closed:
            return
        self._transport_closed = True
        with anyio.CancelScope(shield=True), anyio.move_on_after(self._config.write_timeout):
            try:
                await self._conn.aclose()
            except _IO_ERRORS:
                pass
