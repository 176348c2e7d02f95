from __future__ import annotations

import types

import anyio
import pytest

from p2pstack.resources import ACTIVE_BYTES, ActivityWatcher
from p2pstack.streams import memory_connection_pair
from tests.p2pstack.resources.helpers import addr, manager

pytestmark = pytest.mark.anyio


async def test_active_after_active_bytes_received() -> None:
    rm = manager()
    scope = rm.open_connection("inbound", addr("127.0.0.1"))
    ours, theirs = memory_connection_pair()
    watched = ActivityWatcher(ours, scope)
    assert ACTIVE_BYTES == 48
    with anyio.fail_after(5):
        for _ in range(ACTIVE_BYTES - 1):  # a trickler: one byte at a time
            await theirs.send(b"t")
            assert await watched.receive() == b"t"
        assert not scope.active
        await theirs.send(b"t")
        await watched.receive()
        assert scope.active
        await watched.aclose()


async def test_first_received_byte_marks_the_scope_active_when_asked() -> None:
    rm = manager()
    scope = rm.open_connection("inbound", addr("127.0.0.1"))
    ours, theirs = memory_connection_pair()
    watched = ActivityWatcher(ours, scope, active_bytes=1)
    assert watched.remote_multiaddr == ours.remote_multiaddr
    with anyio.fail_after(5):
        await watched.send(b"hello")
        assert await theirs.receive() == b"hello"
        assert not scope.active  # sending is not activity from the remote
        await theirs.send(b"x")
        assert await watched.receive() == b"x"
        assert scope.active
        await theirs.send_eof()
        with pytest.raises(anyio.EndOfStream):
            await watched.receive()
        await watched.aclose()


async def test_once_active_receive_is_the_inner_connections_own() -> None:
    rm = manager()
    scope = rm.open_connection("inbound", addr("127.0.0.1"))
    ours, theirs = memory_connection_pair()
    watched = ActivityWatcher(ours, scope, active_bytes=1)
    with anyio.fail_after(5):
        await theirs.send(b"x")
        assert await watched.receive() == b"x"
        assert scope.active
        pending = watched.receive(10)
        assert isinstance(pending, types.CoroutineType)
        assert pending.cr_code is type(ours).receive.__code__  # no wrapping frame
        await theirs.send(b"after")
        assert await pending == b"after"
        await watched.aclose()
