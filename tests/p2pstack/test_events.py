from __future__ import annotations

import logging

import anyio
import attrs
import pytest

from p2pstack.errors import EventOverflow
from p2pstack.events import EventBus

pytestmark = pytest.mark.anyio


@attrs.frozen
class Tick:
    n: int


@attrs.frozen
class Tock:
    n: int


async def test_subscription_receives_only_its_types_in_order() -> None:
    bus = EventBus()
    with bus.subscribe(Tick) as ticks, bus.subscribe() as everything:
        for n in range(3):
            bus.emit(Tick(n))
            bus.emit(Tock(n))
        with anyio.fail_after(5):
            assert [(await ticks.receive()).n for _ in range(3)] == [0, 1, 2]
            got = [await everything.receive() for _ in range(6)]
        assert got == [Tick(0), Tock(0), Tick(1), Tock(1), Tick(2), Tock(2)]
        with pytest.raises(anyio.WouldBlock):
            ticks.receive_nowait()
    assert bus.statistics().subscriptions == 0


async def test_overflow_fails_a_subscription_loudly() -> None:
    bus = EventBus()
    with bus.subscribe(Tick, max_buffer=2) as sub:
        for n in range(3):
            bus.emit(Tick(n))
        with pytest.raises(EventOverflow):
            await sub.receive()
        bus.emit(Tick(4))
        with pytest.raises(EventOverflow):  # it stays failed: nothing is silently skipped
            sub.receive_nowait()
    assert bus.statistics().overflowed_subscriptions == 1
    assert bus.statistics().dropped_events == 0


async def test_lossy_subscription_counts_drops_and_keeps_going() -> None:
    bus = EventBus()
    with bus.subscribe(Tick, max_buffer=2, lossy=True) as sub:
        for n in range(5):
            bus.emit(Tick(n))
        assert [sub.receive_nowait().n, sub.receive_nowait().n] == [0, 1]
        bus.emit(Tick(9))
        with anyio.fail_after(5):
            assert (await sub.receive()).n == 9
    assert sub.dropped == 3
    assert bus.statistics().dropped_events == 3


async def test_async_iteration_ends_when_closed() -> None:
    bus = EventBus()
    sub = bus.subscribe(Tick)
    received: list[int] = []

    async def reader() -> None:
        async for event in sub:
            received.append(event.n)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            bus.emit(Tick(1))
            bus.emit(Tick(2))
            sub.close()
    assert received == [1, 2]


def test_callbacks_see_the_same_order_when_a_callback_emits() -> None:
    bus = EventBus()
    first: list[object] = []
    second: list[object] = []

    def reemit(event: Tick) -> None:
        first.append(event)
        if event.n == 0:
            bus.emit(Tock(0))  # delivered after Tick(0) reached every listener

    bus.on(Tick, reemit)
    bus.on(Tock, first.append)
    bus.on(object, second.append)
    bus.emit(Tick(0))
    assert first == [Tick(0), Tock(0)]
    assert second == [Tick(0), Tock(0)]


def test_failing_callback_is_logged_counted_and_others_still_called(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    seen: list[Tick] = []

    def broken(event: Tick) -> None:
        raise RuntimeError("listener bug")

    bus.on(Tick, broken)
    handle = bus.on(Tick, seen.append)
    with caplog.at_level(logging.ERROR, logger="p2pstack.events"):
        bus.emit(Tick(1))
    assert seen == [Tick(1)]
    assert bus.statistics().callback_failures == 1
    assert "listener bug" in caplog.text  # with its traceback
    handle.close()
    handle.close()
    bus.emit(Tick(2))
    assert seen == [Tick(1)]


def test_callback_never_loses_events_however_many() -> None:
    bus = EventBus(default_buffer=1)
    seen: list[int] = []
    bus.on(Tick, lambda e: seen.append(e.n))
    for n in range(10_000):
        bus.emit(Tick(n))
    assert seen == list(range(10_000))


def test_max_buffer_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        EventBus().subscribe(max_buffer=0)


async def test_a_cancelled_receive_loses_no_event() -> None:
    bus = EventBus()
    with bus.subscribe(Tick) as sub:
        with anyio.move_on_after(0.05):
            await sub.receive()  # nothing yet: cancelled while waiting
        bus.emit(Tick(1))
        with anyio.CancelScope() as scope:
            scope.cancel()
            await sub.receive()  # cancelled at its first checkpoint
        assert sub.receive_nowait() == Tick(1)
