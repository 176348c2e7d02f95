"""An inbound stream handed to the host after its connection ended is reset, not served: the
host (its task group) must not die of it. Seen with QUIC dials closed right after a ping while
the remote's identify stream was still on its way."""

from __future__ import annotations

import anyio
import pytest

from p2pstack.events import ConnectionClosed
from tests.p2pstack.hosts import memory_hosts

pytestmark = pytest.mark.anyio


async def test_stream_served_after_its_connection_closed_is_reset() -> None:
    async with memory_hosts(2) as (a, b):
        conn = await a.connect(b.addrs[0])
        muxed = await conn._muxed.open_stream()
        closed = anyio.Event()
        a.events.on(ConnectionClosed, lambda _: closed.set())
        await conn.aclose()
        with anyio.fail_after(5):
            await closed.wait()
        assert conn._scope is not None and conn._scope.closed
        with anyio.fail_after(5):
            await a._handlers.serve(conn, muxed)  # raised ValueError before
        assert a.statistics().connections == 0
        # The host is still up: a new connection carries a stream.
        again = await a.connect(b.addrs[0])
        assert not again.is_closed
