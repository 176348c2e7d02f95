from __future__ import annotations

import anyio
import pytest

from p2pstack.resources import ActivityWatcher
from p2pstack.streams import memory_connection_pair
from tests.p2pstack.resources.helpers import addr, manager

pytestmark = pytest.mark.anyio


async def test_first_received_byte_marks_the_scope_active() -> None:
    rm = manager()
    scope = rm.open_connection("inbound", addr("127.0.0.1"))
    ours, theirs = memory_connection_pair()
    watched = ActivityWatcher(ours, scope)
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
