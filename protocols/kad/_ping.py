"""A minimal ``/ipfs/ping/1.0.0`` client for routing-table liveness checks
(https://github.com/libp2p/specs/blob/master/ping/ping.md). The kad spec forbids sending kad
PING, and protocols do not import each other, so the DHT carries its own twenty lines."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from p2pstack.errors import NETWORK_ERRORS, ProtocolNotSupported

if TYPE_CHECKING:
    from p2pstack.host import Host
    from p2pstack.identity import PeerId

__all__ = ["PING_PROTOCOL_ID", "is_alive"]

PING_PROTOCOL_ID = "/ipfs/ping/1.0.0"
_PAYLOAD = 32


async def is_alive(
    host: Host,
    peer: PeerId,
    *,
    timeout: float,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> bool:
    """Ping ``peer`` once (dialing it if needed).

    A peer that answers the stream negotiation but does not serve ping is alive too (it is
    reachable; js-libp2p counts such an answer the same way).

    Args:
        host: our host.
        peer: the peer to check.
        timeout: most seconds for dialing, negotiating and the round trip.
        random_bytes: source of the payload.

    Returns:
        Whether the peer answered in time with its echo.
    """
    payload = random_bytes(_PAYLOAD)
    with anyio.move_on_after(timeout):
        try:
            stream = await host.new_stream(peer, [PING_PROTOCOL_ID])
        except ProtocolNotSupported:
            return True
        except NETWORK_ERRORS:
            return False
        try:
            await stream.send(payload)
            echo = b""
            while len(echo) < _PAYLOAD:
                echo += await stream.receive(_PAYLOAD - len(echo))
            await stream.send_eof()
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await stream.reset()
            if isinstance(exc, NETWORK_ERRORS):
                return False
            raise
        with anyio.CancelScope(shield=True):
            await stream.aclose()
        return echo == payload
    return False
