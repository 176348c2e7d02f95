"""A peer's CONNECTION_CLOSE ends our side of the connection at once (its streams fail, its
handlers and per-peer stream slots are released), not when aioquic's draining period is over:
fresh dials in a row from one peer were refused at the per-peer ping limit while the earlier
connections drained."""

from __future__ import annotations

import anyio
import pytest
from aioquic.quic.connection import QuicConnectionState

from p2pstack.errors import ConnectionClosedError, StreamReset
from tests.transports.quic.conftest import connected_pair
from transports.quic import QuicMuxedConnection

pytestmark = pytest.mark.anyio


async def test_peer_close_ends_the_connection_without_waiting_for_draining() -> None:
    async with connected_pair() as (dialed, accepted, _):
        muxed = accepted.muxed
        assert isinstance(muxed, QuicMuxedConnection)
        outbound = await dialed.muxed.open_stream()
        await outbound.send(b"x")
        with anyio.fail_after(5):
            inbound = await muxed.accept_stream()
            assert await inbound.receive() == b"x"
        await dialed.muxed.aclose()
        with anyio.fail_after(5), pytest.raises(StreamReset):
            await inbound.receive()
        assert muxed.is_closed
        # Ended on the CONNECTION_CLOSE itself: aioquic is still in its draining period.
        assert muxed.quic._state is QuicConnectionState.DRAINING


async def test_peer_close_ends_the_connection_before_draining_ends() -> None:
    async with connected_pair() as (dialed, accepted, _):
        await dialed.muxed.aclose()
        with anyio.fail_after(5), pytest.raises(ConnectionClosedError):
            await accepted.muxed.accept_stream()
        # aioquic is still draining: the connection did not wait for its timer
        assert isinstance(accepted.muxed, QuicMuxedConnection)
        assert accepted.muxed.quic._state is QuicConnectionState.DRAINING
        assert accepted.muxed.close_reason is None  # a clean close by the peer
