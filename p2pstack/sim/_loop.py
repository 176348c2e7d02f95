"""A virtual-time asyncio event loop: the clock jumps to the next timer whenever every task is
waiting, so protocol time costs only the CPU the protocols use (deterministic simulation, see
docs/simulation.md).

This is the one place that imports asyncio directly: it *is* an event loop. Everything it runs
still uses anyio only.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar, TypeVarTuple, Unpack

import anyio

from p2pstack.errors import P2PError

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = ["SimulationDeadlock", "VirtualClock", "VirtualEventLoop", "run_virtual"]

T = TypeVar("T")
PosArgs = TypeVarTuple("PosArgs")


class SimulationDeadlock(P2PError):
    """Every task of a simulation waits and no timer is pending: nothing can ever happen."""


class VirtualClock:
    """Virtual seconds since the start of the run. Only the loop's selector advances it.

    Args:
        start: the initial reading.
        on_advance: called with the new time whenever the clock jumps (progress display).
    """

    def __init__(
        self, start: float = 0.0, on_advance: Callable[[float], None] | None = None
    ) -> None:
        self.now = start
        self.on_advance = on_advance
        self.jumps = 0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self.now += seconds
            self.jumps += 1
            if self.on_advance is not None:
                self.on_advance(self.now)


class _VirtualSelector(selectors.BaseSelector):
    """A selector with no real I/O: ``select(t)`` advances the clock by ``t`` instead of
    blocking. ``select(None)`` means no ready callback and no timer: a deadlock.

    File objects may be registered (asyncio registers its self-pipe) but are never reported
    ready: a simulation must not depend on threads or signals arriving at real times.
    """

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self._map: dict[object, selectors.SelectorKey] = {}

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: object = None
    ) -> selectors.SelectorKey:
        key = selectors.SelectorKey(fileobj, _fd(fileobj), events, data)
        self._map[fileobj] = key
        return key

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._map.pop(fileobj)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise SimulationDeadlock(
                f"deadlock at virtual time {self._clock.now:.6f} s: every task waits and no "
                "timer is pending"
            )
        self._clock.advance(timeout)
        return []

    def get_map(self) -> dict[object, selectors.SelectorKey]:  # type: ignore[override]  # a plain dict is a Mapping
        return self._map

    def close(self) -> None:
        self._map.clear()


def _fd(fileobj: FileDescriptorLike) -> int:
    return fileobj if isinstance(fileobj, int) else fileobj.fileno()


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose ``time()`` is a ``VirtualClock``.

    asyncio's ready queue is FIFO and nothing here waits on real I/O, so given the same
    coroutines and seeded randomness, every run executes the same callbacks in the same order.
    """

    def __init__(self, clock: VirtualClock | None = None) -> None:
        self.clock = clock if clock is not None else VirtualClock()
        super().__init__(_VirtualSelector(self.clock))
        # asyncio treats timers within one clock resolution as due; virtual time is exact.
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self.clock.now


def run_virtual(
    func: Callable[[Unpack[PosArgs]], Awaitable[T]],
    *args: *PosArgs,
    clock: VirtualClock | None = None,
) -> T:
    """Run ``func(*args)`` with anyio on a ``VirtualEventLoop`` and return its result.

    Args:
        func: the async entry point.
        args: its positional arguments.
        clock: the virtual clock to use (a fresh one starting at 0 if omitted); pass one to
            watch time advance or read it afterwards.

    Returns:
        What ``func`` returned.

    Raises:
        SimulationDeadlock: every task waited with no timer pending.
        BaseException: whatever ``func`` raised.
    """
    the_clock = clock if clock is not None else VirtualClock()
    result: T = anyio.run(
        func,
        *args,
        backend="asyncio",
        backend_options={"loop_factory": lambda: VirtualEventLoop(the_clock)},
    )
    return result
