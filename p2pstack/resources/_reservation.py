"""Per-stream bookkeeping of a muxer's receive-buffer memory in a ``MemoryBudget`` (a
connection's resource scope): reserve in steps, release when the buffer empties or the stream
ends, and keep a stream's whole receive window reserved once it grew beyond its initial size.

Reservations are made per step of ``quantum`` bytes (64 KiB by default), never per byte or per
read call, so that the data path pays for one ``reserve_memory`` per step of buffer growth at
most; a stream whose window was grown holds that window reserved and buffers within it without
any call at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from p2pstack.interfaces import MemoryBudget

__all__ = ["DEFAULT_QUANTUM", "BufferReservation", "MuxerMemory"]

#: The step reservations are made in.
DEFAULT_QUANTUM = 64 * 1024


class MuxerMemory:
    """The memory one muxed connection holds in its budget: the ``MemoryBudget`` its streams'
    ``BufferReservation``s reserve in. ``close()`` (when the connection ends) gives everything
    back at once, so nothing stays reserved whatever became of the streams; later releases are
    no-ops and later reservations raise ``ValueError``.

    Args:
        budget: the connection's budget (its resource scope).

    Attributes:
        reserved: bytes currently reserved through this object.
    """

    __slots__ = ("_budget", "closed", "reserved")

    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget
        self.reserved = 0
        self.closed = False

    def reserve_memory(self, amount: int) -> None:
        """Reserve ``amount`` bytes in the budget.

        Raises:
            ResourceLimitExceeded: the budget refused.
            ValueError: closed, or ``amount`` is negative.
        """
        if self.closed or amount < 0:
            raise ValueError("reserve_memory needs amount >= 0 on an open MuxerMemory")
        self._budget.reserve_memory(amount)
        self.reserved += amount

    def release_memory(self, amount: int) -> None:
        """Give back ``amount`` bytes (at most what is reserved). Never raises."""
        amount = min(amount, self.reserved)
        if amount > 0:
            self.reserved -= amount
            self._budget.release_memory(amount)

    def stream(self, quantum: int = DEFAULT_QUANTUM) -> BufferReservation:
        """A new stream's reservation, made in this connection's memory."""
        return BufferReservation(self, quantum)

    def close(self) -> None:
        """Release everything and refuse further reservations. Idempotent."""
        self.closed = True
        self.release_memory(self.reserved)


class BufferReservation:
    """The memory one stream holds in ``budget``: ``max(floor, buffered rounded up to
    quantum)``, kept until the buffer empties (then it drops back to ``floor``) or ``close()``.

    Args:
        budget: where memory is reserved (the connection's scope).
        quantum: the step reservations are made in (bytes, >= 1).

    Attributes:
        reserved: bytes currently reserved in ``budget`` for this stream.
        floor: bytes kept reserved whatever the buffer holds (a grown receive window).
    """

    __slots__ = ("_budget", "_quantum", "floor", "reserved")

    def __init__(self, budget: MemoryBudget, quantum: int = DEFAULT_QUANTUM) -> None:
        if quantum < 1:
            raise ValueError("quantum must be at least 1 byte")
        self._budget = budget
        self._quantum = quantum
        self.reserved = 0
        self.floor = 0

    def cover(self, buffered: int) -> None:
        """Make the reservation cover ``buffered`` bytes (callers skip the call while
        ``buffered <= reserved``).

        Raises:
            ResourceLimitExceeded: the budget refused; the reservation is unchanged.
            ValueError: the budget is closed.
        """
        if buffered <= self.reserved:
            return
        step = self._quantum
        want = -(-buffered // step) * step
        self._budget.reserve_memory(want - self.reserved)
        self.reserved = want

    def drained(self) -> None:
        """The buffer is empty: give back everything above ``floor``."""
        extra = self.reserved - self.floor
        if extra > 0:
            self.reserved = self.floor
            self._budget.release_memory(extra)

    def hold(self, total: int) -> bool:
        """Keep at least ``total`` bytes reserved until ``close()`` (a receive window grows to
        ``total``: whatever the peer may then send is covered without further calls).

        Returns:
            ``True`` if reserved; ``False`` if the budget refused (or is closed): nothing
            changed and the window should not grow.
        """
        from p2pstack.errors import ResourceLimitExceeded

        if total > self.reserved:
            try:
                self._budget.reserve_memory(total - self.reserved)
            except (ResourceLimitExceeded, ValueError):
                return False
            self.reserved = total
        self.floor = max(self.floor, total)
        return True

    def close(self) -> None:
        """Release everything (the stream ended or dropped its buffer). Idempotent."""
        reserved, self.reserved, self.floor = self.reserved, 0, 0
        if reserved:
            self._budget.release_memory(reserved)
