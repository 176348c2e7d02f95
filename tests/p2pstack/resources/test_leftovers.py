"""Nothing the resource manager allocates for a connection outlives it: after a churn of
connections and streams, no block allocated in ``p2pstack/resources`` is still alive.

Such survivors, even tiny ones (field names built per call and then left in CPython's type
attribute cache by ``getattr``), sit among the freed memory of a flood and keep the
allocator's pools and arenas from being returned (docs/reliability.md)."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import p2pstack.resources
from p2pstack.resources import ScopeLimit
from tests.p2pstack.resources.helpers import addr, manager

_RESOURCES = str(Path(p2pstack.resources.__file__).parent)


def _churn(count: int) -> None:
    limit = ScopeLimit(connections_inbound=10_000, streams_inbound=10_000, memory=1 << 30)
    rm = manager(system=limit, transient=limit, connection=limit, stream=limit)
    for i in range(count):
        scope = rm.open_connection("inbound", addr(f"10.0.{i // 250}.{i % 250}"))
        stream = scope.open_stream("inbound")
        stream.done()
        scope.done()


def test_connection_churn_leaves_no_allocation_behind() -> None:
    _churn(10)  # warm up: one-time caches
    gc.collect()
    tracemalloc.start()
    try:
        _churn(500)
        gc.collect()
        left = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, f"{_RESOURCES}/*")]
        )
    finally:
        tracemalloc.stop()
    blocks = sum(stat.count for stat in left.statistics("lineno"))
    assert blocks < 20, [str(stat) for stat in left.statistics("lineno")[:5]]
