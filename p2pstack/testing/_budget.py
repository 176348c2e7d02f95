"""A ``MemoryBudget`` for muxer tests that counts what is reserved and fails on a release of
more than was reserved, and the memory checks ``check_muxer`` runs on muxers that take one
(``p2pstack.interfaces.MemoryBudgetedMuxer``)."""

from __future__ import annotations

from collections.abc import Callable

import anyio

from p2pstack.errors import ResourceLimitExceeded
from p2pstack.interfaces import MuxedConnection
from p2pstack.testing._io import receive_exactly

__all__ = ["CountingBudget", "check_memory_follows_reads"]


class CountingBudget:
    """A ``MemoryBudget`` that records reservations.

    Args:
        limit: bytes it grants in total before refusing (``None``: no limit).

    Attributes:
        reserved: bytes reserved now.
        peak: the most reserved at once.
        reservations: ``reserve_memory`` calls granted.
        refusals: ``reserve_memory`` calls refused.
        errors: contract violations seen (a negative amount, a release of more than reserved).
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.reserved = 0
        self.peak = 0
        self.reservations = 0
        self.refusals = 0
        self.errors: list[str] = []
        self.changed = anyio.Event()

    def reserve_memory(self, amount: int) -> None:
        """Reserve ``amount`` bytes.

        Raises:
            ResourceLimitExceeded: over ``limit`` (``scope="connection"``).
            ValueError: ``amount`` is negative.
        """
        if amount < 0:
            self.errors.append(f"reserve_memory({amount})")
            raise ValueError("negative reservation")
        if self.limit is not None and self.reserved + amount > self.limit:
            self.refusals += 1
            self._changed()
            raise ResourceLimitExceeded(
                f"test budget at memory limit ({self.limit})",
                scope="connection",
                resource="memory",
                limit=self.limit,
            )
        self.reservations += 1
        self.reserved += amount
        self.peak = max(self.peak, self.reserved)
        self._changed()

    def release_memory(self, amount: int) -> None:
        """Give back ``amount`` bytes; records an error if more than is reserved."""
        if amount < 0 or amount > self.reserved:
            self.errors.append(f"release_memory({amount}) with {self.reserved} reserved")
        self.reserved -= amount
        self._changed()

    def _changed(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    async def wait_for(self, predicate: str, value: int) -> None:
        """Wait until ``reserved`` is ``">="`` / ``"=="`` ``value`` (bound it with a timeout)."""
        await self.wait_until(
            lambda: self.reserved >= value if predicate == ">=" else self.reserved == value
        )

    async def wait_until(self, check: Callable[[], bool]) -> None:
        """Wait until ``check()`` is true, checking after every reservation, refusal and
        release (bound it with a timeout)."""
        while not check():
            await self.changed.wait()


async def check_memory_follows_reads(
    a: MuxedConnection, b: MuxedConnection, budget_b: CountingBudget
) -> None:
    """Data ``b`` buffers is reserved in its budget and released once read."""
    out = await a.open_stream()
    await out.send(b"x" * 100_000)
    inbound = await b.accept_stream()
    await budget_b.wait_for(">=", 100_000)  # nobody reads yet: all of it is buffered
    await receive_exactly(inbound, 100_000)
    await budget_b.wait_for("==", 0)
    for stream in (out, inbound):
        await stream.aclose()
