"""The ``Kad`` service's timers as one sans-IO ``TimedCore`` (run by ``p2pstack.sansio``):
the routing table's own deadlines (bucket refresh) plus provider expiry sweeps, the
republishing of this node's records and provider records, and the random walk."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from protocols.kad._config import KadConfig
    from protocols.kad._table import RoutingTable

__all__ = ["MAX_REPUBLISHED", "Maintenance", "remember"]

#: Records (and, separately, provider keys) this node republishes, at most; beyond it the
#: oldest are forgotten (they still live out their TTL on the peers that hold them).
MAX_REPUBLISHED = 10_000

T = TypeVar("T")

#: Seconds to wait before asking again a table that left its deadline due (never spin).
_RETRY = 1.0


class Maintenance:
    """Timers of the DHT service; the driver drains ``take_refresh`` and ``take_due`` after
    each ``handle_timer``.

    Args:
        table: the routing table (its deadlines are included).
        config: the intervals.
        now: the current time.
    """

    def __init__(self, table: RoutingTable, config: KadConfig, now: float) -> None:
        self._table = table
        intervals = {
            "expire": config.provider_expiry_interval,
            "providers": config.provider_republish,
            "records": config.record_republish,
            "rejoin": config.refresh_interval,
            "walk": config.random_walk_interval,
        }
        # A job whose interval is None (record republish switched off) never fires.
        self._intervals = {name: every for name, every in intervals.items() if every is not None}
        self._next = {name: now + every for name, every in self._intervals.items()}
        self._due: set[str] = set()
        self._refresh: list[bytes] = []
        self._fired = -math.inf

    def next_deadline(self) -> float | None:
        """The earliest timer (always set: the periodic jobs never stop)."""
        deadline = min(self._next.values())
        table = self._table.next_deadline()
        if table is not None:
            deadline = min(deadline, table if table > self._fired else self._fired + _RETRY)
        return deadline

    def handle_timer(self, now: float) -> None:
        """Fire the table's timers and mark the periodic jobs that are due."""
        self._fired = now
        table = self._table.next_deadline()
        if table is not None and table <= now:
            self._table.handle_timer(now)
        self._refresh.extend(self._table.refresh_due())
        for name, when in self._next.items():
            if when <= now:
                self._due.add(name)
                self._next[name] = now + self._intervals[name]

    def take_refresh(self) -> list[bytes]:
        """FIND_NODE keys of the buckets to refresh now (each returned once)."""
        keys, self._refresh = self._refresh, []
        return keys

    def take_due(self) -> set[str]:
        """The periodic jobs due now: ``expire``, ``providers``, ``records``, ``rejoin``,
        ``walk``."""
        due, self._due = self._due, set()
        return due


def remember(republished: dict[bytes, T], key: bytes, value: T) -> None:
    """Note ``key`` for republishing (newest last), forgetting the oldest beyond
    :data:`MAX_REPUBLISHED`."""
    republished.pop(key, None)
    republished[key] = value
    while len(republished) > MAX_REPUBLISHED:
        del republished[next(iter(republished))]
