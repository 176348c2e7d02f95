"""An inbound stream whose turn comes after its connection ended is reset, not served: the host
survives it (a muxer that pushes streams, like QUIC, can hand one over as the connection
closes)."""

from __future__ import annotations

from typing import cast

import anyio
import pytest

from p2pstack.events import ConnectionClosed
from p2pstack.interfaces import MuxedStream
from tests.p2pstack.hosts import memory_hosts

pytestmark = pytest.mark.anyio


class _LateStream:
    """Just enough of a MuxedStream for a stream that must be reset unread."""

    def __init__(self) -> None:
        self.was_reset = False

    async def reset(self) -> None:
        self.was_reset = True


async def test_stream_of_a_closed_connection_is_reset() -> None:
    async with memory_hosts(2) as (a, b):
        with b.subscribe() as events:
            conn = await a.connect(str(b.addrs[0]))
            (theirs,) = b.connections(a.peer_id)
            await conn.aclose()
            with anyio.fail_after(10):
                async for event in events:
                    if isinstance(event, ConnectionClosed) and event.connection is theirs:
                        break
        late = _LateStream()
        await b._handlers.serve(theirs, cast(MuxedStream, late))
        assert late.was_reset
        assert b.connections() == []
