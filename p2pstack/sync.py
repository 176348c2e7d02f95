"""Small synchronisation helpers for drivers on hot paths: a re-armable wake-up, a mutex that
costs nothing when uncontended, and a cheap clock.

They exist because the generic anyio primitives do scheduler work on every call (a cancellation
check, a running-loop lookup), and on CPython 3.11 every running-loop lookup also makes a
``getpid()`` system call. A connection driver takes a lock and reads the clock once or more per
frame, so with thousands of connections (a simulation) those costs dominate.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from types import TracebackType

import anyio

__all__ = ["FastLock", "Signal", "loop_clock"]


class Signal:
    """A re-armable wake-up: any number of tasks ``wait``; ``set`` wakes them all and re-arms.

    Allocates an ``anyio.Event`` only when someone actually waits.
    """

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: anyio.Event | None = None

    async def wait(self) -> None:
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()

    def set(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None


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
        self._waiters: deque[anyio.Event] = deque()

    def locked(self) -> bool:
        return self._locked

    async def acquire(self) -> None:
        if not self._locked:
            self._locked = True
            return
        handed = anyio.Event()
        self._waiters.append(handed)
        try:
            await handed.wait()
        except BaseException:
            if handed.is_set():  # the lock was handed over just as we were cancelled
                self.release()
            else:
                self._waiters.remove(handed)
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


def loop_clock() -> Callable[[], float]:
    """The current event loop's clock as a plain function, for a driver to keep and call often.

    Reads the same clock as ``anyio.current_time()`` (on asyncio, the loop's ``time``, which a
    simulation's virtual loop replaces) without looking the loop up on every call. Call it
    from inside the event loop the clock is for.
    """
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:  # not on asyncio (trio): anyio's clock is the one to use
        return anyio.current_time
