"""mplex buffers reserved in a memory budget: reserved as data is buffered, released as it is
read, when streams end and when the connection ends (also abruptly); a refused reservation
resets only that stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from p2pstack.errors import StreamReset
from p2pstack.interfaces import ByteStream
from p2pstack.resources import DEFAULT_QUANTUM
from p2pstack.testing import CountingBudget, fake_secure_pair
from p2pstack.testing._io import read_all, receive_exactly
from transports.mplex import Mplex, MplexConfig, MplexConnection

pytestmark = pytest.mark.anyio

FAST = MplexConfig(stream_open_window=0)  # no pacing of stream opens in these tests
Q = DEFAULT_QUANTUM


@asynccontextmanager
async def budgeted_pair(
    budget: CountingBudget,
) -> AsyncIterator[tuple[MplexConnection, MplexConnection, anyio.Event]]:
    """``a`` dials ``b``; ``b`` reserves in ``budget``; the event is set when b's run() ended."""
    conn_a, conn_b = fake_secure_pair()
    a = Mplex(config=FAST).new_connection(conn_a, is_initiator=True)
    b = Mplex(config=FAST).new_connection(conn_b, is_initiator=False, memory=budget)
    b_done = anyio.Event()

    async def run_b() -> None:
        await b.run()
        b_done.set()

    async with anyio.create_task_group() as group:
        group.start_soon(a.run)
        group.start_soon(run_b)
        with anyio.fail_after(20):
            yield a, b, b_done
        await a.aclose()
        await b.aclose()
    assert budget.errors == []


def conn_a_of(conn: MplexConnection) -> ByteStream:
    return conn._conn


async def test_buffered_data_is_reserved_until_read() -> None:
    budget = CountingBudget()
    async with budgeted_pair(budget) as (a, b, _):
        out = await a.open_stream()
        await out.send(b"x" * 100_000)
        inbound = await b.accept_stream()
        await budget.wait_for(">=", 100_000)
        assert budget.reserved == 2 * Q  # whole quanta, not one call per frame
        assert await receive_exactly(inbound, 60_000)
        assert budget.reserved == 2 * Q  # held until the buffer is empty
        await receive_exactly(inbound, 40_000)
        assert budget.reserved == 0
        await out.aclose()
        await inbound.aclose()
    assert budget.reserved == 0


async def test_a_refused_reservation_resets_only_that_stream() -> None:
    budget = CountingBudget(limit=2 * Q)
    async with budgeted_pair(budget) as (a, b, _):
        outs = [await a.open_stream() for _ in range(3)]
        for out in outs:
            await out.send(b"y" * 100_000)
        first, second, third = [await b.accept_stream() for _ in range(3)]
        await budget.wait_until(lambda: budget.refusals == 2)  # all of it arrived
        assert await receive_exactly(first, 100_000) == b"y" * 100_000
        for refused in (second, third):
            with pytest.raises(StreamReset, match="memory limit"):
                await refused.receive()
        with pytest.raises(StreamReset):  # the sender learns it through a Reset
            await outs[1].receive()
        assert b.memory_resets == 2 and budget.refusals == 2
        assert budget.reserved == 0
        # The connection and new streams still work.
        honest = await a.open_stream()
        await honest.send(b"still here")
        await honest.send_eof()
        accepted = await b.accept_stream()
        assert await read_all(accepted, 1 << 20) == b"still here"
        for stream in (*outs, first, second, third, honest, accepted):
            await stream.aclose()
    assert budget.reserved == 0


async def test_everything_is_released_when_the_connection_is_cut() -> None:
    budget = CountingBudget()
    async with budgeted_pair(budget) as (a, b, b_done):
        open_one, finished = await a.open_stream(), await a.open_stream()
        await open_one.send(b"a" * 50_000)
        await finished.send(b"b" * 50_000)
        await finished.send_eof()
        inbound = [await b.accept_stream() for _ in range(2)]
        await budget.wait_for(">=", 2 * Q)
        await conn_a_of(a).aclose()  # abrupt: no resets sent
        await b_done.wait()
        assert budget.reserved == 0
        with pytest.raises(StreamReset):
            await inbound[0].receive()
        # Data the peer finished stays readable; its accounting ended with the connection.
        assert await read_all(inbound[1], 1 << 20) == b"b" * 50_000
    assert budget.reserved == 0
