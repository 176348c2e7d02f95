"""The anyio driver of the yamux core: one reader task, one writer task that batches every
queued frame into one send and runs the core's keep-alive timers while it has nothing to send,
and ``Yamux``, the ``/yamux/1.0.0`` muxer
(https://github.com/libp2p/specs/blob/master/yamux/README.md).

On asyncio the writer task ends once it has had nothing to send for ``_WRITER_LINGER`` seconds
(0.1 s while the connection is new) and is started again when frames are queued or a timer is
due (a loop timer, not a task, waits for the timers meanwhile): an idle connection then holds
one task instead of two, about 5 KiB less (a task, its anyio handle, event and cancel scope,
the task group), which a node with thousands of idle connections feels. On other backends the
writer runs for the connection's life.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

import anyio
from anyio.abc import TaskGroup
from anyio.lowlevel import checkpoint

from p2pstack.errors import (
    ConnectionClosedError,
    LocalProtocolError,
    MuxerError,
    P2PError,
    P2PTimeoutError,
)
from p2pstack.interfaces import MemoryBudget, MuxedStream, SecureConnection
from p2pstack.resources import MuxerMemory
from p2pstack.sync import FastLock, Signal, loop_clock, running_asyncio_loop
from transports.yamux._config import YamuxConfig
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
)
from transports.yamux._frame import PROTOCOL_ID, GoAwayCode
from transports.yamux._stream import YamuxStream

__all__ = ["Yamux", "YamuxConnection"]

log = logging.getLogger("transports.yamux")

#: Control frames (ACKs, window updates, ping answers, RSTs) the reader may queue beyond
#: ``max_write_buffer`` before it stops reading until the writer catches up.
_CONTROL_SLACK = 64 * 1024
#: A read that held more frames than this was mostly small (control) frames: the next read asks
#: for at most ``_SMALL_READ`` bytes and other tasks run first, so that a flood of pings or
#: window updates cannot hold the event loop for a whole ``read_size`` read (a 256 KiB read of
#: 12-byte pings is about 21,000 frames, 0.5 s of work). Bulk data, a few frames per read, is
#: not affected.
_MANY_FRAMES = 512
_SMALL_READ = 16 * 1024
#: Seconds the writer task stays after its last write before it ends (asyncio only): long
#: enough that a busy connection does not start a task per frame (about 40 us each).
_WRITER_LINGER = 1.0
#: Until the connection has written this many times its writer stays only
#: ``_NEW_WRITER_LINGER``: a flood of new connections that write once or twice (a window
#: update, an identify stream) then holds few writer tasks at its peak.
_BUSY_WRITES = 16
_NEW_WRITER_LINGER = 0.1

_IO_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, P2PError)


class Yamux:
    """The yamux stream muxer (``/yamux/1.0.0``), a ``MemoryBudgetedMuxer``.

    Args:
        config: limits, windows, keep-alive and timeouts.
    """

    def __init__(self, config: YamuxConfig | None = None) -> None:
        self.config = config or YamuxConfig()

    @property
    def protocol_id(self) -> str:
        return PROTOCOL_ID

    def new_connection(
        self, conn: SecureConnection, *, is_initiator: bool, memory: MemoryBudget | None = None
    ) -> YamuxConnection:
        """Wrap ``conn``; no I/O happens until the caller runs ``run()``.

        Args:
            conn: the secured connection.
            is_initiator: whether we dialed (odd stream IDs) or accepted (even ones).
            memory: where buffered inbound data and window growth are reserved (the
                connection's resource scope); ``None``: only the windows bound the buffers.

        Returns:
            The muxed connection.
        """
        return YamuxConnection(conn, is_initiator=is_initiator, config=self.config, memory=memory)


class YamuxConnection:
    """A yamux session over a secure connection (a ``MuxedConnection``).

    With a ``memory`` budget each stream reserves what it buffers (in 64 KiB steps, released
    when its buffer empties or it ends), and once its window grows beyond 256 KiB the whole
    window (released when it ends). A refused buffer reservation resets that stream (counted in
    ``memory_resets``); a refused growth keeps the window as it is (``windows_not_grown``).

    Attributes:
        memory_resets: streams reset because their buffer could not be reserved.
        windows_not_grown: window growths skipped because they could not be reserved.
    """

    def __init__(
        self,
        conn: SecureConnection,
        *,
        is_initiator: bool,
        config: YamuxConfig,
        memory: MemoryBudget | None = None,
    ) -> None:
        self.secure_connection = conn
        self._config = config
        self._memory = None if memory is None else MuxerMemory(memory)
        self._core = YamuxConnectionCore(
            is_initiator=is_initiator,
            config=config,
            may_grow_window=None if memory is None else self._may_grow_window,
        )
        self.memory_resets = 0
        self.windows_not_grown = 0
        self._streams: dict[int, YamuxStream] = {}
        # A list, not a deque: at most ``accept_backlog`` entries, and an empty deque costs
        # about 0.75 KiB per connection.
        self._backlog: list[YamuxStream] = []
        # Set by the owner (``set_stream_handler``): inbound streams go to it, not the backlog.
        self._stream_handler: Callable[[MuxedStream], object] | None = None
        # Streams handed to it since the last input was dispatched: at most ``accept_backlog``
        # per read, as when they queue for an ``accept_stream`` loop that cannot run meanwhile.
        self._handed = 0
        self._accept_signal = Signal()
        self._writer_signal = Signal()
        self._drained_signal = Signal()
        self._send_lock = FastLock()
        # anyio.current_time until run() swaps in the loop's clock (cheaper per call).
        self._clock: Callable[[], float] = anyio.current_time
        self._pings: dict[int, anyio.Event] = {}
        self._remote_error: MuxerError | None = None
        self._timeout_error: P2PTimeoutError | None = None
        self._closed = False
        self._close_reason: BaseException | None = None
        self._run_scope: anyio.CancelScope | None = None
        # The writer's lifecycle (see the module docstring): run()'s task group, whether a
        # writer task is running, the loop (asyncio only: the writer may end) and the loop
        # timer that starts a writer for the core's next deadline while none runs.
        self._group: TaskGroup | None = None
        self._writing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._writes = 0  # sends to the secure connection (the writer's linger grows with it)

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def close_reason(self) -> BaseException | None:
        """Why the connection ended; ``None`` for a local close, a GoAway(normal) or a plain end
        of the underlying connection."""
        return self._close_reason

    @property
    def rtt(self) -> float | None:
        """The last measured round-trip time in seconds, or ``None``."""
        return self._core.rtt

    # -- MuxedConnection ---------------------------------------------------------------------

    async def run(self) -> None:
        """Read and dispatch frames until the connection ends. Never raises for remote or I/O
        causes: they end up in ``close_reason``."""
        if self._closed:
            return
        self._clock = loop_clock()
        self._loop = running_asyncio_loop()
        self._core.start_timers(self._clock())
        try:
            async with anyio.create_task_group() as group:
                self._run_scope, self._group = group.cancel_scope, group
                self._start_writer(group)
                await self._read_loop()
        finally:
            self._group = None
            with anyio.CancelScope(shield=True):
                await self._terminate(None)

    async def open_stream(self) -> YamuxStream:
        """Open an outbound stream (its SYN goes out with the next write).

        Raises:
            ConnectionClosedError: the connection is closed or going away.
            MuxerError: ``max_streams`` streams are open.
        """
        if self._closed or self._core.is_going_away:
            raise ConnectionClosedError("yamux connection is closed or going away")
        try:
            stream_id = self._core.open_stream()
        except P2PError as exc:
            raise MuxerError(str(exc)) from exc
        stream = self._streams[stream_id] = self._new_stream(stream_id)
        self._wake_writer()
        return stream

    async def accept_stream(self) -> YamuxStream:
        """Wait for the next inbound stream.

        Raises:
            ConnectionClosedError: the connection ended.
        """
        while not self._backlog:
            if self._closed:
                raise ConnectionClosedError("yamux connection is closed")
            await self._accept_signal.wait()
        return self._backlog.pop(0)

    def set_stream_handler(self, handler: Callable[[MuxedStream], object]) -> None:
        """Hand each inbound stream to ``handler`` as it opens (``StreamPushingConnection``);
        streams already queued for ``accept_stream`` are handed over at once.

        Args:
            handler: called synchronously from ``run()``'s task; must not block or raise.
        """
        self._stream_handler = handler
        backlog, self._backlog = self._backlog, []
        for stream in backlog:
            handler(stream)

    async def aclose(self) -> None:
        """Send GoAway(normal), close the secure connection, reset open streams and make
        ``run()`` return. Idempotent, never raises."""
        await self._terminate(None)

    async def ping(self) -> float:
        """Measure the round-trip time with a Ping, bounded by ``keepalive_timeout``.

        Returns:
            The round-trip time in seconds.

        Raises:
            P2PTimeoutError: no answer within ``keepalive_timeout``.
            ConnectionClosedError: the connection ended first.
        """
        if self._closed:
            raise ConnectionClosedError("yamux connection is closed")
        opaque = self._core.send_ping()
        answered = self._pings[opaque] = anyio.Event()
        start = self._clock()
        self._wake_writer()
        try:
            with anyio.move_on_after(self._config.keepalive_timeout):
                await answered.wait()
        finally:
            waiting = self._pings.pop(opaque, None) is not None
        if waiting:  # the reader pops the entry when the answer arrives
            if self._closed:
                raise ConnectionClosedError("yamux connection closed during ping")
            raise P2PTimeoutError("yamux ping was not answered in time")
        rtt = self._clock() - start
        self._core.update_rtt(rtt)
        return rtt

    # -- memory ------------------------------------------------------------------------------

    def _new_stream(self, stream_id: int) -> YamuxStream:
        memory = None if self._memory is None else self._memory.stream()
        return YamuxStream(self, stream_id, memory)

    def _may_grow_window(self, stream_id: int, window: int) -> bool:
        stream = self._streams.get(stream_id)
        if stream is None or stream.memory is None:
            return True
        if stream.memory.hold(window):
            return True
        self.windows_not_grown += 1
        return False

    def memory_refused(self, stream: YamuxStream, exc: Exception) -> None:
        """``stream``'s buffer could not be reserved: reset it (the peer sees RST, our
        reader a ``StreamReset`` naming the limit)."""
        self.memory_resets += 1
        log.debug("yamux stream %d reset: %s", stream.stream_id, exc)
        self._core.reset_stream(stream.stream_id)
        self._streams.pop(stream.stream_id, None)
        stream.on_reset(exc)
        self._wake_writer()

    # -- used by YamuxStream -----------------------------------------------------------------

    def consumed(self, stream_id: int, size: int) -> None:
        self._core.consume(stream_id, size, self._clock())
        if self._core.pending_output:
            self._wake_writer()

    async def send_stream_data(self, stream: YamuxStream, data: bytes) -> None:
        core, limit = self._core, self._config.max_write_buffer
        offset, total = 0, len(data)
        while offset < total:
            stream.check_writable()
            room = limit - core.pending_output
            if room <= 0:
                await self._drained_signal.wait()
                continue
            piece = data if not offset and total <= room else memoryview(data)[offset:][:room]
            sent = core.send_data(stream.stream_id, piece)
            if sent:
                offset += sent
                self._wake_writer()
            else:
                await stream.send_signal.wait()

    def end_stream(self, stream: YamuxStream) -> None:
        self._core.end_stream(stream.stream_id)
        self._after_local_change(stream.stream_id)

    def close_stream(self, stream: YamuxStream) -> None:
        self._core.close_stream(stream.stream_id)
        self._after_local_change(stream.stream_id)

    def reset_stream(self, stream: YamuxStream) -> None:
        self._core.reset_stream(stream.stream_id)
        self._after_local_change(stream.stream_id)

    def _after_local_change(self, stream_id: int) -> None:
        if not self._core.has_stream(stream_id):
            self._streams.pop(stream_id, None)
        self._wake_writer()

    # -- tasks -------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        core, conn, read_size = self._core, self.secure_connection, self._config.read_size
        reason: BaseException | None = None
        size = read_size
        try:
            while self._remote_error is None:
                data = await conn.receive(size)
                before = core.frames_received
                try:
                    core.receive_data(data, self._clock())
                finally:
                    self._dispatch()
                if core.pending_output:
                    self._wake_writer()
                elif self._timer is not None:
                    self._rearm_timer()
                    while core.pending_output > self._config.max_write_buffer + _CONTROL_SLACK:
                        await self._drained_signal.wait()
                if core.frames_received - before > _MANY_FRAMES:
                    size = min(read_size, _SMALL_READ)
                    await checkpoint()
                else:
                    size = read_size
            reason = self._remote_error
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            reason = self._remote_error
        except _IO_ERRORS as exc:  # RemoteProtocolError from the core included
            reason = exc
        await self._terminate(reason)

    def _dispatch(self) -> None:
        core, streams = self._core, self._streams
        self._handed = 0
        while (event := core.next_event()) is not None:
            if isinstance(event, DataReceived):
                if (stream := streams.get(event.stream_id)) is not None:
                    stream.on_data(event.data)
            elif isinstance(event, WindowUpdated):
                if (stream := streams.get(event.stream_id)) is not None:
                    stream.send_signal.set()
            elif isinstance(event, StreamOpened):
                self._on_stream_opened(event.stream_id)
            elif isinstance(event, StreamEnded):
                if (stream := streams.get(event.stream_id)) is not None:
                    stream.on_fin()
                    if not core.has_stream(event.stream_id):
                        del streams[event.stream_id]
            elif isinstance(event, StreamResetReceived):
                if (stream := streams.pop(event.stream_id, None)) is not None:
                    stream.on_reset()
            elif isinstance(event, PingAnswered):
                if (answered := self._pings.pop(event.opaque, None)) is not None:
                    answered.set()
            elif isinstance(event, PingTimedOut):
                self._timeout_error = P2PTimeoutError("yamux ping was not answered in time")
            elif isinstance(event, GoAwayReceived) and event.code != GoAwayCode.NORMAL:
                self._remote_error = MuxerError(f"yamux: peer sent GoAway with code {event.code}")

    def _on_stream_opened(self, stream_id: int) -> None:
        if self._stream_handler is not None:
            if self._handed >= self._config.accept_backlog:
                self._core.reset_stream(stream_id)
                return
            self._handed += 1
            stream = self._streams[stream_id] = self._new_stream(stream_id)
            self._stream_handler(stream)
            return
        if len(self._backlog) >= self._config.accept_backlog:
            self._core.reset_stream(stream_id)
            return
        stream = self._streams[stream_id] = self._new_stream(stream_id)
        self._backlog.append(stream)
        self._accept_signal.set()

    def _wake_writer(self) -> None:
        """Frames were queued: wake the writer, or start one if none runs."""
        if self._writing or self._group is None or self._closed:
            self._writer_signal.set()
        else:
            self._start_writer(self._group)

    def _start_writer(self, group: TaskGroup) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._writing = True
        group.start_soon(self._write_loop)

    def _on_timer(self) -> None:
        """The core's deadline is due while no writer runs: start one to handle it."""
        self._timer = None
        if not self._writing and not self._closed and self._group is not None:
            self._start_writer(self._group)

    def _writer_ended(self) -> None:
        """The writer ends for lack of work: arm a loop timer for the core's next deadline."""
        self._writing = False
        deadline = self._core.next_deadline()
        if deadline is not None and self._loop is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _rearm_timer(self) -> None:
        """Input may have moved the core's deadline earlier than the armed loop timer."""
        timer, deadline = self._timer, self._core.next_deadline()
        if timer is not None and (deadline is None or deadline < timer.when()):
            timer.cancel()
            self._writer_ended()

    async def _write_loop(self) -> None:
        core, conn, timeout = self._core, self.secure_connection, self._config.write_timeout
        reason: BaseException | None = None
        idle_since = self._clock()
        try:
            # One scope for the task's life whose deadline is armed around each write: cheaper
            # than entering a fresh ``fail_after`` per write, which shows in simulations with
            # thousands of connections.
            with anyio.CancelScope() as watchdog:
                while True:
                    if not core.pending_output:
                        if watchdog.deadline != math.inf:
                            watchdog.deadline = math.inf
                        if not await self._wait_for_output(idle_since):
                            # Nothing queued since the check above (no await in between).
                            self._writer_ended()
                            return
                        continue
                    watchdog.deadline = self._clock() + timeout
                    async with self._send_lock:
                        # Taken under the lock so that a final flush in _terminate never
                        # overtakes (or loses) bytes already taken here.
                        if data := core.data_to_send():
                            await conn.send(data)
                            self._writes += 1
                    idle_since = self._clock()
                    self._drained_signal.set()
            if watchdog.cancelled_caught:
                reason = P2PTimeoutError("yamux: a write to the connection timed out")
        except _IO_ERRORS as exc:
            reason = exc
        await self._terminate(reason, flush=False)

    async def _wait_for_output(self, idle_since: float) -> bool:
        """Wait until frames are queued, firing the core's keep-alive timers when due.

        The writer runs the timers instead of a task of their own. Every wake-up re-reads the
        deadline, so a deadline that moved earlier is honoured too.

        Args:
            idle_since: when the writer last wrote (or started).

        Returns:
            False once the writer may end: on asyncio, nothing was queued for
            ``_WRITER_LINGER`` seconds after ``idle_since`` (``_NEW_WRITER_LINGER`` until the
            connection has written ``_BUSY_WRITES`` times) and no timer is due.

        Raises:
            P2PTimeoutError: a keep-alive ping went unanswered (ends the connection).
            LocalProtocolError: the core left its deadline due after ``handle_timer``.
        """
        core = self._core
        deadline = core.next_deadline()
        now = self._clock()
        if deadline is not None and now >= deadline:
            core.handle_timer(now)
            after = core.next_deadline()
            if after is not None and after <= now:
                raise LocalProtocolError("YamuxConnectionCore.handle_timer left its deadline due")
            self._dispatch()
            if self._timeout_error is not None:
                raise self._timeout_error
            return True
        if self._loop is None:  # not asyncio: the writer runs for the connection's life
            if deadline is None:
                await self._writer_signal.wait()
            else:
                await self._writer_signal.wait_until(deadline)
            return True
        busy = self._writes >= _BUSY_WRITES
        linger_end = idle_since + (_WRITER_LINGER if busy else _NEW_WRITER_LINGER)
        if now >= linger_end:
            return False
        await self._writer_signal.wait_until(
            linger_end if deadline is None else min(deadline, linger_end)
        )
        return True

    async def _terminate(self, reason: BaseException | None, *, flush: bool = True) -> None:
        """End the connection once: record ``reason``, reset streams, wake every waiter, send
        what is queued (GoAway included) within ``close_timeout``, close the secure connection
        and cancel ``run()``'s tasks."""
        if self._closed:
            return
        self._closed = True
        self._close_reason = reason
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if reason is None:
            self._core.go_away(GoAwayCode.NORMAL)
        streams = list(self._streams.values())
        self._streams.clear()
        self._backlog.clear()
        for stream in streams:
            stream.on_connection_lost()
        if self._memory is not None:
            # Data of streams the peer finished stays readable, but the connection's budget
            # ends with it: every reservation is given back now.
            self._memory.close()
        for answered in self._pings.values():
            answered.set()
        self._accept_signal.set()
        self._drained_signal.set()
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(self._config.close_timeout):
                try:
                    if flush:
                        async with self._send_lock:
                            if data := self._core.data_to_send():
                                await self.secure_connection.send(data)
                except _IO_ERRORS:
                    pass
            with anyio.move_on_after(self._config.close_timeout):
                try:
                    await self.secure_connection.aclose()
                except _IO_ERRORS:
                    pass
        if self._run_scope is not None:
            self._run_scope.cancel()
