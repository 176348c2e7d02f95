"""Relaying the bytes of one circuit between its two streams, within the circuit's data budget
(circuit-v2.md: the relay "bridges" the hop stream of the source and the stop stream of the
target; ``Limit.data`` is "the maximum number of bytes allowed to be transmitted in each
direction").
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from p2pstack.errors import NETWORK_ERRORS
from p2pstack.interfaces import ByteStream

__all__ = ["DataLimitReached", "splice"]


class DataLimitReached(Exception):
    """One direction of a circuit reached its data limit."""


async def _pump(
    src: ByteStream,
    dst: ByteStream,
    direction: int,
    take: Callable[[int, int], int],
    buffer_size: int,
) -> None:
    while True:
        try:
            data = await src.receive(buffer_size)
        except anyio.EndOfStream:
            await dst.send_eof()
            return
        allowed = take(direction, len(data))
        if allowed:
            await dst.send(data[:allowed])
        if allowed < len(data):
            raise DataLimitReached


async def splice(
    a: ByteStream,
    b: ByteStream,
    *,
    take: Callable[[int, int], int],
    buffer_size: int,
) -> str:
    """Copy ``a`` to ``b`` and ``b`` to ``a`` until both ends finished writing.

    Each direction holds at most ``buffer_size`` bytes at a time. The caller resets the
    streams when this returns anything but ``"closed"``, and cancels it (the duration limit).

    Args:
        a: the source's stream (direction 0 reads it).
        b: the target's stream (direction 1 reads it).
        take: ``take(direction, n)`` -> bytes of ``n`` that may be forwarded.
        buffer_size: most bytes read at once from one side.

    Returns:
        ``"closed"`` (both sides half-closed), ``"data limit"`` or ``"reset"`` (a side failed).
    """
    outcome = "closed"

    async def run(src: ByteStream, dst: ByteStream, direction: int) -> None:
        nonlocal outcome
        try:
            await _pump(src, dst, direction, take, buffer_size)
        except DataLimitReached:
            outcome = "data limit"
            tg.cancel_scope.cancel()
        except NETWORK_ERRORS:
            outcome = "reset"
            tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, a, b, 0)
        tg.start_soon(run, b, a, 1)
    return outcome
