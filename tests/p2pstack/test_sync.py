"""p2pstack.sync: FastLock, Signal and loop_clock on both anyio backends."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from p2pstack.sync import FastLock, Signal, loop_clock

pytestmark = pytest.mark.anyio


async def test_fast_lock_excludes_and_serves_waiters_in_order() -> None:
    lock = FastLock()
    order: list[int] = []
    inside = 0

    async def worker(index: int) -> None:
        nonlocal inside
        async with lock:
            inside += 1
            assert inside == 1
            order.append(index)
            await anyio.lowlevel.checkpoint()
            inside -= 1

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            for index in range(5):
                group.start_soon(worker, index)
                await anyio.lowlevel.checkpoint()  # queue them in index order
    assert order == [0, 1, 2, 3, 4]
    assert not lock.locked()


async def test_fast_lock_cancelled_waiter_leaves_the_queue() -> None:
    lock = FastLock()
    await lock.acquire()
    with anyio.move_on_after(0.01):
        await lock.acquire()
    lock.release()
    assert not lock.locked()  # the cancelled waiter did not keep it
    with anyio.fail_after(1):
        async with lock:
            assert lock.locked()


async def test_fast_lock_handed_to_a_cancelled_waiter_is_passed_on() -> None:
    lock = FastLock()
    await lock.acquire()
    second_got_it = anyio.Event()
    first_scope = anyio.CancelScope()

    async def first() -> None:
        with first_scope:
            async with lock:
                pass

    async def second() -> None:
        async with lock:
            second_got_it.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(first)
            await anyio.wait_all_tasks_blocked()
            group.start_soon(second)
            await anyio.wait_all_tasks_blocked()
            # Cancel ``first`` and hand it the lock before it runs: it must pass the lock on to
            # ``second`` rather than keep it.
            first_scope.cancel()
            lock.release()
            await second_got_it.wait()
    assert not lock.locked()


async def test_fast_lock_release_unlocked_raises() -> None:
    with pytest.raises(RuntimeError):
        FastLock().release()


async def test_signal_wakes_every_waiter_and_rearms() -> None:
    signal = Signal()
    woken = 0

    async def waiter() -> None:
        nonlocal woken
        await signal.wait()
        woken += 1

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            signal.set()
        assert woken == 3
        with anyio.move_on_after(0.01) as scope:
            await signal.wait()  # re-armed: no earlier set() leaks through
        assert scope.cancelled_caught


async def test_loop_clock_reads_anyio_time() -> None:
    clock = loop_clock()
    before = anyio.current_time()
    now = clock()
    assert before <= now <= anyio.current_time()


async def test_signal_cancelled_waiter_does_not_disturb_the_others(anyio_backend: str) -> None:
    signal = Signal()
    woken: list[str] = []

    async def waiter(name: str) -> None:
        await signal.wait()
        woken.append(name)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(waiter, "a")
            group.start_soon(waiter, "b")
            await anyio.wait_all_tasks_blocked()
            for _ in range(100):  # waits that time out leave nothing behind
                with anyio.move_on_after(0):
                    await signal.wait()
            if anyio_backend == "asyncio":
                assert len(signal._waiters) == 2
            signal.set()
    assert sorted(woken) == ["a", "b"]
    assert not signal._waiters


async def test_signal_wait_until_returns_at_the_deadline_or_when_set(anyio_backend: str) -> None:
    signal = Signal()
    with anyio.fail_after(5):
        start = anyio.current_time()
        await signal.wait_until(start + 0.05)  # nobody sets it: the deadline ends the wait
        assert anyio.current_time() >= start + 0.05
        for _ in range(50):  # waits that time out leave nothing behind
            await signal.wait_until(anyio.current_time())
        if anyio_backend == "asyncio":
            assert signal._waiters == []

        async with anyio.create_task_group() as group:
            group.start_soon(signal.wait_until, anyio.current_time() + 60)
            await anyio.wait_all_tasks_blocked()
            signal.set()  # wakes it long before its deadline
        assert anyio.current_time() < start + 30


async def test_signal_wait_until_is_cancellable(anyio_backend: str) -> None:
    signal = Signal()
    with anyio.move_on_after(0.01) as scope:
        await signal.wait_until(anyio.current_time() + 60)
    assert scope.cancelled_caught
    if anyio_backend == "asyncio":
        assert signal._waiters == []
