"""The virtual-time loop, seeded randomness and the trace recorder."""

from __future__ import annotations

import hashlib
import io
import time

import anyio
import pytest

from p2pstack.sim import (
    SeededRandom,
    SimulationDeadlock,
    TraceRecorder,
    VirtualClock,
    derive_seed,
    run_virtual,
)


def test_an_hour_of_virtual_time_takes_well_under_a_second() -> None:
    async def main() -> float:
        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(anyio.sleep, 36.0 * (i + 1))
        return anyio.current_time()

    started = time.perf_counter()
    assert run_virtual(main) == pytest.approx(3600.0)
    assert time.perf_counter() - started < 1.0


def test_clock_only_moves_when_every_task_waits() -> None:
    clock = VirtualClock()

    async def main() -> list[float]:
        seen: list[float] = []
        for _ in range(1000):
            await anyio.lowlevel.checkpoint()  # runnable work never advances time
        seen.append(anyio.current_time())
        await anyio.sleep(2.5)
        seen.append(anyio.current_time())
        return seen

    assert run_virtual(main, clock=clock) == [0.0, 2.5]
    assert clock.now == 2.5
    assert clock.jumps == 1


def test_timeouts_fire_in_virtual_time() -> None:
    async def main() -> float:
        with anyio.move_on_after(10.0):
            await anyio.Event().wait()
        return anyio.current_time()

    assert run_virtual(main) == pytest.approx(10.0)


def test_deadlock_ends_the_run_with_a_clear_error() -> None:
    async def main() -> None:
        await anyio.sleep(5)
        await anyio.Event().wait()

    with pytest.raises(SimulationDeadlock, match=r"deadlock at virtual time 5\.0"):
        run_virtual(main)


def test_interleaving_is_the_same_every_run() -> None:
    async def main() -> list[int]:
        order: list[int] = []

        async def worker(i: int) -> None:
            for step in range(5):
                await anyio.sleep((i * 7 + step * 3) % 5 * 0.001)
                order.append(i * 10 + step)

        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(worker, i)
        return order

    assert run_virtual(main) == run_virtual(main)


def test_seeded_streams_are_stable_and_independent() -> None:
    assert derive_seed(1, "a") == derive_seed(1, "a")
    assert derive_seed(1, "a") != derive_seed(1, "b")
    assert derive_seed(1, "a") != derive_seed(2, "a")
    a = SeededRandom(5, "node/1")
    assert a.random_bytes(16) == SeededRandom(5, "node/1").random_bytes(16)
    assert a.child("x").label == "node/1/x"
    assert a.child("x").random() == SeededRandom(5, "node/1/x").random()


def test_trace_hash_is_the_sha256_of_the_written_file() -> None:
    now = [0.0]
    sink = io.StringIO()
    trace = TraceRecorder(lambda: now[0], sink=sink, keep=1)
    trace.record("a", x=1, y="z")
    now[0] = 1.25
    trace.record("b", items=[1, 2], nested={"k": None})
    assert trace.hexdigest() == hashlib.sha256(sink.getvalue().encode()).hexdigest()
    assert sink.getvalue().splitlines()[0] == '{"ev":"a","t":0.0,"x":1,"y":"z"}'
    assert trace.lines == ['{"ev":"a","t":0.0,"x":1,"y":"z"}']  # bounded by keep=1
    assert trace.count == 2
    assert trace.counts == {"a": 1, "b": 1}
