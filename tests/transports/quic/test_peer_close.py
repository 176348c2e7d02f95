"""A connection ends as soon as the peer's CONNECTION_CLOSE arrives, not when aioquic's draining
period (three PTOs) ends: a peer that closes and redials at once must not find its closed
connections still counted against the host's per-peer limit."""

from __future__ import annotations

import anyio
import pytest
from aioquic.quic.connection import QuicConnectionState

from p2pstack.errors import ConnectionClosedError
from tests.transports.quic.conftest import connected_pair
from transports.quic import QuicMuxedConnection

pytestmark = pytest.mark.anyio


async def test_peer_close_ends_the_connection_before_draining_ends() -> None:
    async with connected_pair() as (dialed, accepted, _):
        await dialed.muxed.aclose()
        with anyio.fail_after(5), pytest.raises(ConnectionClosedError):
            await accepted.muxed.accept_stream()
        # aioquic is still draining: the connection did not wait for its timer
        assert isinstance(accepted.muxed, QuicMuxedConnection)
        assert accepted.muxed.quic._state is QuicConnectionState.DRAINING
        assert accepted.muxed.close_reason is None  # a clean close by the peer
