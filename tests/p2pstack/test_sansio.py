"""The timed-core contract and its driver, on both backends and on the virtual clock."""

from __future__ import annotations

import anyio
import pytest

from p2pstack.errors import LocalProtocolError
from p2pstack.sansio import TimedCore, TimerDriver, run_timers
from p2pstack.sim import VirtualClock, run_virtual
from p2pstack.sync import Signal


class AlarmCore:
    """A core with a set of alarm times; fires each once, recording when."""

    def __init__(self, *times: float) -> None:
        self.alarms = sorted(times)
        self.fired: list[tuple[float, float]] = []  # (alarm, now)

    def add(self, when: float) -> None:
        self.alarms = sorted([*self.alarms, when])

    def next_deadline(self) -> float | None:
        return self.alarms[0] if self.alarms else None

    def handle_timer(self, now: float) -> None:
        while self.alarms and self.alarms[0] <= now:
            self.fired.append((self.alarms.pop(0), now))


class StuckCore:
    def next_deadline(self) -> float | None:
        return 0.0

    def handle_timer(self, now: float) -> None:
        pass


def test_cores_satisfy_the_protocol() -> None:
    core: TimedCore = AlarmCore()
    assert core.next_deadline() is None


def test_timers_fire_at_their_virtual_deadlines_without_polling() -> None:
    clock = VirtualClock()
    core = AlarmCore(5.0, 100.0)
    fires = 0

    async def on_fire() -> None:
        nonlocal fires
        fires += 1

    async def main() -> None:
        driver = TimerDriver(core, on_fire=on_fire)
        async with anyio.create_task_group() as tg:
            tg.start_soon(driver.run)
            await anyio.sleep(1000)
            tg.cancel_scope.cancel()

    run_virtual(main, clock=clock)
    assert core.fired == [(5.0, 5.0), (100.0, 100.0)]
    assert fires == 2
    # One jump per alarm plus the final sleep: a polling driver would jump far more often.
    assert clock.jumps == 3


def test_poke_rearms_for_an_earlier_deadline() -> None:
    core = AlarmCore(50.0)

    async def nothing() -> None:
        pass

    async def main() -> None:
        driver = TimerDriver(core, on_fire=nothing)
        async with anyio.create_task_group() as tg:
            tg.start_soon(driver.run)
            await anyio.sleep(1)
            core.add(3.0)
            core.add(70.0)  # later than the armed deadline: found when that one fires
            driver.poke()
            await anyio.sleep(100)
            tg.cancel_scope.cancel()

    run_virtual(main)
    assert core.fired == [(3.0, 3.0), (50.0, 50.0), (70.0, 70.0)]


def test_without_poke_an_earlier_deadline_waits_for_the_armed_one() -> None:
    core = AlarmCore(50.0)

    async def nothing() -> None:
        pass

    async def main() -> None:
        driver = TimerDriver(core, on_fire=nothing)
        async with anyio.create_task_group() as tg:
            tg.start_soon(driver.run)
            await anyio.sleep(1)
            core.add(3.0)
            await anyio.sleep(100)
            tg.cancel_scope.cancel()

    run_virtual(main)
    assert core.fired == [(3.0, 50.0), (50.0, 50.0)]


def test_an_idle_core_waits_for_a_poke() -> None:
    core = AlarmCore()

    async def nothing() -> None:
        pass

    async def main() -> None:
        driver = TimerDriver(core, on_fire=nothing)
        async with anyio.create_task_group() as tg:
            tg.start_soon(driver.run)
            await anyio.sleep(10)
            core.add(12.0)
            driver.poke()
            await anyio.sleep(10)
            tg.cancel_scope.cancel()

    run_virtual(main)
    assert core.fired == [(12.0, 12.0)]


def test_run_is_cancel_safe_and_restartable() -> None:
    core = AlarmCore(5.0, 20.0)

    async def nothing() -> None:
        pass

    async def main() -> None:
        driver = TimerDriver(core, on_fire=nothing)
        with anyio.move_on_after(10):
            await driver.run()
        assert core.fired == [(5.0, 5.0)]
        await anyio.sleep(15)  # the 20 s alarm passes while no driver runs
        with anyio.move_on_after(1):
            await driver.run()

    run_virtual(main)
    assert core.fired == [(5.0, 5.0), (20.0, 25.0)]


def test_a_core_that_keeps_its_deadline_due_is_an_error() -> None:
    async def nothing() -> None:
        pass

    async def main() -> None:
        await TimerDriver(StuckCore(), on_fire=nothing).run()

    with pytest.raises(LocalProtocolError, match="StuckCore"):
        run_virtual(main)


@pytest.mark.anyio
async def test_driver_on_the_real_clock_fires_in_order_and_reports(
    anyio_backend: str,
) -> None:
    now = anyio.current_time()
    core = AlarmCore(now + 0.05)
    fired = anyio.Event()

    async def on_fire() -> None:
        if not core.alarms:
            fired.set()

    driver = TimerDriver(core, on_fire=on_fire)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(driver.run)
            core.add(now + 0.01)
            driver.poke()
            await fired.wait()
            tg.cancel_scope.cancel()
    assert [alarm for alarm, _ in core.fired] == [now + 0.01, now + 0.05]
    assert all(when >= alarm for alarm, when in core.fired)


@pytest.mark.anyio
async def test_run_timers_with_an_external_wake(anyio_backend: str) -> None:
    core = AlarmCore()
    wake = Signal()
    fired = anyio.Event()

    async def on_fire() -> None:
        fired.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_timers(core, wake=wake, on_fire=on_fire))
            await anyio.wait_all_tasks_blocked()
            core.add(anyio.current_time() + 0.01)
            wake.set()
            await fired.wait()
            tg.cancel_scope.cancel()
    assert len(core.fired) == 1


@pytest.mark.anyio
async def test_an_error_in_on_fire_ends_run(anyio_backend: str) -> None:
    core = AlarmCore(anyio.current_time())

    async def on_fire() -> None:
        raise RuntimeError("boom")

    with anyio.fail_after(5), pytest.raises(RuntimeError, match="boom"):
        await TimerDriver(core, on_fire=on_fire).run()
