"""Muxer memory bookkeeping: ``BufferReservation`` per stream and ``MuxerMemory`` per connection,
reserving in a real connection scope."""

from __future__ import annotations

import pytest

from p2pstack.errors import ResourceLimitExceeded
from p2pstack.resources import (
    DEFAULT_QUANTUM,
    BufferReservation,
    ConnectionScope,
    LimitedResourceManager,
    MuxerMemory,
    ScopeLimit,
)
from tests.p2pstack.resources.helpers import addr, manager

Q = DEFAULT_QUANTUM


def scope_with(memory: int | None) -> tuple[LimitedResourceManager, ConnectionScope]:
    rm = manager(connection=ScopeLimit(memory=memory))
    return rm, rm.open_connection("outbound", addr("10.0.0.1"))


def test_cover_reserves_in_quanta_and_drained_releases() -> None:
    _, scope = scope_with(None)
    stream = MuxerMemory(scope).stream()
    stream.cover(1)
    assert stream.reserved == Q == scope.usage().memory
    stream.cover(Q)  # within what is reserved: nothing more
    assert scope.usage().memory == Q
    stream.cover(Q + 1)
    assert stream.reserved == 2 * Q == scope.usage().memory
    stream.drained()
    assert stream.reserved == 0 == scope.usage().memory


def test_a_refused_cover_changes_nothing_and_is_counted() -> None:
    rm, scope = scope_with(3 * Q)
    memory = MuxerMemory(scope)
    first, second = memory.stream(), memory.stream()
    first.cover(2 * Q)
    with pytest.raises(ResourceLimitExceeded) as caught:
        second.cover(2 * Q)
    assert caught.value.scope == "connection" and caught.value.resource == "memory"
    assert second.reserved == 0
    assert scope.usage().memory == memory.reserved == 2 * Q
    assert rm.statistics().refusals["connection/memory"] == 1


def test_the_floor_stays_reserved_until_close() -> None:
    _, scope = scope_with(None)
    stream = MuxerMemory(scope).stream()
    assert stream.hold(4 * Q)
    stream.cover(3 * Q)  # within the floor: no reservation call needed
    assert scope.usage().memory == 4 * Q
    stream.cover(5 * Q)
    stream.drained()
    assert scope.usage().memory == 4 * Q
    stream.close()
    assert stream.reserved == stream.floor == 0 == scope.usage().memory


def test_a_refused_floor_keeps_the_window() -> None:
    _, scope = scope_with(2 * Q)
    stream = MuxerMemory(scope).stream()
    assert stream.hold(Q)
    assert not stream.hold(3 * Q)
    assert stream.floor == Q == scope.usage().memory


def test_closing_the_connection_memory_releases_every_stream() -> None:
    _, scope = scope_with(None)
    memory = MuxerMemory(scope)
    streams = [memory.stream() for _ in range(3)]
    for index, stream in enumerate(streams):
        stream.cover((index + 1) * Q)
    assert streams[0].hold(2 * Q)  # one quantum more than it had
    assert scope.usage().memory == 6 * Q + Q
    memory.close()
    assert scope.usage().memory == 0
    for stream in streams:  # late releases are harmless; late reservations refused
        stream.drained()
        stream.close()
    assert scope.usage().memory == 0
    with pytest.raises(ValueError):
        BufferReservation(memory).cover(1)
    assert not memory.stream().hold(Q)


def test_a_finished_scope_refuses_and_releases_quietly() -> None:
    _, scope = scope_with(None)
    stream = MuxerMemory(scope).stream()
    stream.cover(Q)
    scope.done()
    stream.close()  # the scope gave everything back already
    assert scope.usage().memory == 0
    with pytest.raises(ValueError):
        MuxerMemory(scope).stream().cover(1)


def test_the_quantum_must_be_positive() -> None:
    _, scope = scope_with(None)
    with pytest.raises(ValueError):
        BufferReservation(scope, 0)
