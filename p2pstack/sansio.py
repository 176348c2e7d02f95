"""The shape of sans-IO protocol cores that keep timers, and the one driver that runs them
(in the style of h11 / aioquic's ``QuicConnection``: time is an input like bytes).

A core never reads a clock, sleeps or starts tasks. Its input is bytes and commands, each
carrying the current time where time matters (``receive_data(data, now)``,
``handle_*(..., now)``); its output is bytes (``data_to_send()``), events (``next_event()``)
and, for timers, the earliest time at which it wants to be called again::

    core.next_deadline() -> float | None   # None: no timer armed
    core.handle_timer(now)                 # the deadline passed: act (queue bytes/events)

That is the ``TimedCore`` protocol. Deadlines are in the driver's clock: ``anyio``'s current
clock, which is the virtual clock under ``p2pstack.sim`` (so simulations and tests with timers
run in virtual time) and the event loop's monotonic clock otherwise.

``TimerDriver`` is the generic driver: one task sleeps until the core's next deadline, calls
``handle_timer(now)`` once it passed, then the caller's ``on_fire`` (which drains the core's
output), and sleeps again. The caller ``poke``s it after any input or command that may have
moved the deadline *earlier*; a deadline that moved later needs nothing (the task wakes at the
old time, sees the new one and sleeps again), so feeding input on a hot path costs one
comparison. Nothing polls: the task sleeps on a cancel-scope deadline or a wake-up signal.
``run_timers`` is the same loop for a caller that brings its own wake-up.

Contract of a ``TimedCore``:

* ``next_deadline`` is cheap and side-effect free; ``handle_timer(now)`` is only called with
  ``now >= next_deadline()`` and must move the deadline past ``now`` (or clear it): the driver
  raises ``LocalProtocolError`` rather than spin on a core that does not.
* ``handle_timer`` is synchronous, so a driver cancelled at any point leaves the core
  consistent: ``TimerDriver.run`` is cancel-safe and may be started again later.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio

from p2pstack.errors import LocalProtocolError
from p2pstack.sync import Signal, loop_clock

__all__ = ["TimedCore", "TimerDriver", "Waitable", "run_timers"]


class TimedCore(Protocol):
    """A sans-IO core with timers (see the module docstring for the contract)."""

    def next_deadline(self) -> float | None:
        """The time at which ``handle_timer`` should next be called, or ``None``."""
        ...

    def handle_timer(self, now: float) -> None:
        """Act on every timer due at ``now`` (queue output and events)."""
        ...


class Waitable(Protocol):
    """A re-armable wake-up such as ``p2pstack.sync.Signal``."""

    async def wait(self) -> None: ...


OnFire = Callable[[], Awaitable[None]]


class TimerDriver:
    """Runs the timers of one ``TimedCore`` in a task: ``run()`` in a task group, ``poke()``
    after input that may have moved the deadline earlier.

    Args:
        core: the core whose timers to run.
        on_fire: awaited after each ``handle_timer`` call (drain the core's output and events
            there); an exception from it ends ``run()``.
    """

    __slots__ = ("_armed", "_core", "_on_fire", "_signal")

    def __init__(self, core: TimedCore, *, on_fire: OnFire) -> None:
        self._core = core
        self._on_fire = on_fire
        self._signal = Signal()
        self._armed = math.inf  # the deadline ``run`` sleeps until (inf: none, or not running)

    def poke(self) -> None:
        """Tell the driver that the core's deadline may have moved earlier. Cheap: wakes the
        task only when the new deadline is before the one it sleeps until. Never blocks."""
        deadline = self._core.next_deadline()
        if deadline is not None and deadline < self._armed:
            self._armed = deadline
            self._signal.set()

    async def run(self) -> None:
        """Sleep until each deadline and fire it, forever (until cancelled).

        Raises:
            LocalProtocolError: the core did not move its deadline past ``now`` in
                ``handle_timer``.
            BaseException: whatever ``on_fire`` raised.
        """
        try:
            await _timer_loop(self._core, self._signal, self._on_fire, self._arm)
        finally:
            self._armed = math.inf

    def _arm(self, deadline: float) -> None:
        self._armed = deadline


async def run_timers(core: TimedCore, *, wake: Waitable, on_fire: OnFire) -> None:
    """Run ``core``'s timers until cancelled; the caller sets ``wake`` whenever the deadline
    may have moved earlier (every ``wake`` makes the loop re-read ``next_deadline``).

    Args:
        core: the core whose timers to run.
        wake: a re-armable wake-up the caller sets after input or commands.
        on_fire: awaited after each ``handle_timer`` call.

    Raises:
        LocalProtocolError: the core did not move its deadline past ``now``.
        BaseException: whatever ``on_fire`` raised.
    """
    await _timer_loop(core, wake, on_fire, None)


async def _timer_loop(
    core: TimedCore,
    wake: Waitable,
    on_fire: OnFire,
    arm: Callable[[float], None] | None,
) -> None:
    clock = loop_clock()  # the same clock as anyio's cancel-scope deadlines
    while True:
        deadline = core.next_deadline()
        if arm is not None:
            arm(math.inf if deadline is None else deadline)
        if deadline is None:
            await wake.wait()
            continue
        now = clock()
        if now < deadline:
            with anyio.CancelScope(deadline=deadline):
                await wake.wait()
            continue
        core.handle_timer(now)
        after = core.next_deadline()
        if after is not None and after <= now:
            raise LocalProtocolError(f"{type(core).__name__}.handle_timer left its deadline due")
        await on_fire()
