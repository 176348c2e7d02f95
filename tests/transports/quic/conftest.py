"""Helpers of the QUIC transport tests: started transports and connected pairs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from multiaddr import Multiaddr

from p2pstack.identity import Identity
from p2pstack.interfaces import UpgradedConnection
from transports.quic import QuicConfig, QuicListener, QuicTransport

LOCAL4 = "/ip4/127.0.0.1/udp/0/quic-v1"
LOCAL6 = "/ip6/::1/udp/0/quic-v1"


@asynccontextmanager
async def connected_pair(
    listen: str = LOCAL4, config: QuicConfig | None = None
) -> AsyncIterator[tuple[UpgradedConnection, UpgradedConnection, QuicListener]]:
    """A dialed and an accepted connection between two started transports, both running."""
    server_id, client_id = Identity.generate(), Identity.generate()
    async with (
        QuicTransport(identity=server_id, config=config) as server,
        QuicTransport(identity=client_id, config=config) as client,
    ):
        listener = await server.listen(Multiaddr(listen))
        with anyio.fail_after(10):
            dialed = await client.dial(listener.multiaddrs[0], remote_peer=server_id.peer_id)
            accepted = await listener.accept()
        async with anyio.create_task_group() as tg:
            tg.start_soon(dialed.muxed.run)
            tg.start_soon(accepted.muxed.run)
            try:
                yield dialed, accepted, listener
            finally:
                await dialed.muxed.aclose()
                await accepted.muxed.aclose()
                await listener.aclose()
