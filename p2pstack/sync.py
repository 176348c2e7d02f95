"""Small synchronisation helpers for drivers on hot paths: a re-armable wake-up, a mutex that
costs nothing when uncontended, and a cheap clock.

They exist because the generic anyio primitives do scheduler work on every call (a cancellation
check, a running-loop lookup), and on CPython 3.11 every running-loop lookup also makes a
``getpid()`` system call. A connection driver takes a lock and reads the clock once or more per
frame, so with thousands of connections (a simulation) those costs dominate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import cast

import anyio

__all__ = ["FastLock", "Signal", "loop_clock", "running_asyncio_loop"]


class Signal:
    """A re-armable wake-up: any number of tasks ``wait``; ``set`` wakes them all and re-arms.

    Costs nothing until someone waits. On asyncio each waiter awaits a bare future of the loop
    (the loop is found once per signal), skipping the per-wait loop lookups of
    ``anyio.Event``; on other backends waiters share an ``anyio.Event``. Waiting is
    cancellable like any anyio wait, and cancelling one waiter does not disturb the others.
    """

    __slots__ = ("_event", "_loop", "_waiters")

    def __init__(self) -> None:
        self._event: anyio.Event | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        # None until the first wait; then the loop, or anyio.Event's path (_NOT_ASYNCIO).

    async def wait(self) -> None:
        loop = self._loop
        if loop is None:
            loop = self._loop = running_asyncio_loop() or _NOT_ASYNCIO
        if loop is _NOT_ASYNCIO:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
            return
        future: asyncio.Future[None] = loop.create_future()
        self._waiters.append(future)
        try:
            await future
        finally:
            if future.cancelled() or not future.done():  # cancelled: forget this waiter
                with contextlib.suppress(ValueError):  # (unless set() already took it)
                    self._waiters.remove(future)

    async def wait_until(self, deadline: float) -> None:
        """Wait until ``set`` is called or the event loop's clock (``anyio.current_time()``)
        reaches ``deadline``, whichever comes first; cancellable like ``wait``.

        On asyncio the deadline is a plain loop timer that wakes this waiter, about a tenth
        of the memory of a cancel scope, which matters to a driver that waits like this on
        every one of thousands of idle connections.

        Args:
            deadline: when to stop waiting, in the clock of ``anyio.current_time()``.
        """
        loop = self._loop
        if loop is None:
            loop = self._loop = running_asyncio_loop() or _NOT_ASYNCIO
        if loop is _NOT_ASYNCIO:
            with anyio.CancelScope(deadline=deadline):
                await self.wait()
            return
        future: asyncio.Future[None] = loop.create_future()
        self._waiters.append(future)
        timer = loop.call_at(deadline, _wake, future)
        try:
            await future
        finally:
            timer.cancel()
            # Woken by the timer or cancelled: forget this waiter (set() took it otherwise).
            with contextlib.suppress(ValueError):
                self._waiters.remove(future)

    def set(self) -> None:
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for future in waiters:
                if not future.done():
                    future.set_result(None)
        if self._event is not None:
            self._event.set()
            self._event = None


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class FastLock:
    """A mutex for ``async with`` that takes no scheduler round trip, cancellation check or
    loop lookup when it is free. Waiters are served first come, first served: ``release``
    hands the lock straight to the oldest one.

    Unlike ``anyio.Lock``, acquiring a free lock is not a checkpoint. Not reentrant, and not
    thread-safe (one event loop only), like every anyio primitive.
    """

    __slots__ = ("_locked", "_waiters")

    def __init__(self) -> None:
        self._locked = False
        # Made on first contention: an empty deque costs about 0.75 KiB, and most locks
        # (one or two per connection) are never contended.
        self._waiters: deque[anyio.Event] | None = None

    def locked(self) -> bool:
        return self._locked

    async def acquire(self) -> None:
        if not self._locked:
            self._locked = True
            return
        handed = anyio.Event()
        if self._waiters is None:
            self._waiters = deque()
        waiters = self._waiters
        waiters.append(handed)
        try:
            await handed.wait()
        except BaseException:
            if handed.is_set():  # the lock was handed over just as we were cancelled
                self.release()
            else:
                waiters.remove(handed)
            raise

    def release(self) -> None:
        """Release the lock (to the oldest waiter, if any).

        Raises:
            RuntimeError: the lock is not held.
        """
        if not self._locked:
            raise RuntimeError("release of an unlocked FastLock")
        if self._waiters:
            self._waiters.popleft().set()  # stays locked: ownership moves to that waiter
        else:
            self._locked = False

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def running_asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio event loop, or ``None`` on another backend (trio). For fast paths
    that use the loop directly (timers, the clock) and fall back to anyio elsewhere."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # not on asyncio
        return None


#: Marks a signal whose waits go through anyio.Event (no asyncio loop is running).
_NOT_ASYNCIO: asyncio.AbstractEventLoop = cast(asyncio.AbstractEventLoop, object())


def loop_clock() -> Callable[[], float]:
    """The current event loop's clock as a plain function, for a driver to keep and call often.

    Reads the same clock as ``anyio.current_time()`` (on asyncio, the loop's ``time``, which a
    simulation's virtual loop replaces) without looking the loop up on every call. Call it
    from inside the event loop the clock is for.
    """
    loop = running_asyncio_loop()
    return anyio.current_time if loop is None else loop.time
