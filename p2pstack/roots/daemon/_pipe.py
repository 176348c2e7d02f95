"""Piping a control connection and a libp2p stream into each other: both directions at once,
with backpressure (a chunk is read only once the previous one was written) and half-close (the
end of one side's data is passed on as ``send_eof``); an error on either side closes both."""

from __future__ import annotations

from typing import Protocol

import anyio

from p2pstack.errors import NETWORK_ERRORS

__all__ = ["Pipeable", "pipe"]

#: Bytes read at once from either side.
CHUNK = 256 * 1024


class Pipeable(Protocol):
    """What :func:`pipe` needs of each side (``anyio`` socket streams and libp2p streams)."""

    async def receive(self, max_bytes: int = ...) -> bytes: ...
    async def send(self, item: bytes) -> None: ...
    async def send_eof(self) -> None: ...
    async def aclose(self) -> None: ...


_BROKEN: tuple[type[BaseException], ...] = (
    *NETWORK_ERRORS,
    OSError,
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
)


async def _copy(src: Pipeable, dst: Pipeable) -> None:
    while True:
        try:
            chunk = await src.receive(CHUNK)
        except anyio.EndOfStream:
            await dst.send_eof()
            return
        await dst.send(chunk)


async def pipe(a: Pipeable, b: Pipeable, *, first: bytes = b"") -> None:
    """Copy ``a`` to ``b`` and ``b`` to ``a`` until both directions ended, then close both.

    Args:
        a: one side (the control connection).
        b: the other side (the libp2p stream).
        first: bytes already read from ``a`` that belong to ``b`` (sent first).

    A broken side (reset, closed, network error) ends the pipe quietly; both sides are closed
    on the way out, whatever happened.
    """
    try:
        if first:
            await b.send(first)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_copy_quietly, a, b, tg.cancel_scope)
            tg.start_soon(_copy_quietly, b, a, tg.cancel_scope)
    except _BROKEN:
        pass
    finally:
        with anyio.CancelScope(shield=True):
            for side in (a, b):
                try:
                    await side.aclose()
                except _BROKEN:
                    pass


async def _copy_quietly(src: Pipeable, dst: Pipeable, scope: anyio.CancelScope) -> None:
    try:
        await _copy(src, dst)
    except _BROKEN:
        scope.cancel()  # one side broke: the other direction has nowhere to go either
