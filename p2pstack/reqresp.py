"""Request/response over host streams: one length-prefixed message each way on a fresh stream
(the shape of identify, kad, relay reservations, rendezvous and most libp2p RPCs;
https://github.com/libp2p/specs/blob/master/kad-dht/README.md#rpc-messages frames the same way).

Client (``request``): open a stream, write the request with its unsigned-varint length
prefix, half-close, read one length-prefixed response, close. Server (``serve``): read one
request (bounded by ``max_request_size``), call the handler, write its response, close.

Bounds on the server: at most ``max_total`` requests in progress, at most ``max_per_peer`` of
them from one peer; a stream beyond either limit is reset at once (the client sees
``RequestRefused``), so a single peer cannot starve the others. Each exchange, from the first
request byte to the last response byte, has ``timeout`` seconds. Only the public host API is
used: ``set_stream_handler`` and ``new_stream``.

Errors are typed: ``RequestTimeout`` (no response in time), ``RequestRefused`` (the server
reset the stream: over a limit, or its handler failed), ``RemoteProtocolError`` (oversized or
garbled framing), and whatever ``new_stream`` raises (``DialError``, ``ProtocolNotSupported``,
...).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import anyio
import attrs

from p2pstack.errors import (
    NETWORK_ERRORS,
    P2PError,
    P2PTimeoutError,
    RemoteProtocolError,
    StreamReset,
)
from p2pstack.framing import read_lp, write_lp

if TYPE_CHECKING:
    from p2pstack.connection import Stream
    from p2pstack.identity import PeerId

__all__ = [
    "DEFAULT_MAX_SIZE",
    "RequestError",
    "RequestHandler",
    "RequestRefused",
    "RequestServer",
    "RequestTimeout",
    "ServerStatistics",
    "StreamHost",
    "request",
    "serve",
]

#: Default bound on one request or response body (bytes).
DEFAULT_MAX_SIZE = 64 * 1024

#: ``handler(peer, request) -> response``: runs once per accepted request.
RequestHandler = Callable[["PeerId", bytes], Awaitable[bytes]]


class RequestError(P2PError):
    """A request got no valid response."""


class RequestRefused(RequestError):
    """The server reset the stream: it is at a concurrency limit or its handler failed."""


class RequestTimeout(RequestError, P2PTimeoutError):
    """No complete response within the request's timeout."""


class StreamHost(Protocol):
    """What this module needs of a host (``p2pstack.host.Host`` has it)."""

    def set_stream_handler(
        self, protocol_id: str, handler: Callable[[Stream], Awaitable[None]]
    ) -> None: ...

    def remove_stream_handler(self, protocol_id: str) -> None: ...

    async def new_stream(
        self, peer: PeerId, protocols: Sequence[str], *, timeout: float | None = None
    ) -> Stream: ...


@attrs.frozen(kw_only=True)
class ServerStatistics:
    """Counters of one ``RequestServer``.

    Attributes:
        active: requests in progress now.
        served: requests answered.
        rejected: streams reset because a limit was reached.
        timed_out: exchanges that overran ``timeout`` (stream reset).
        failed: exchanges that ended on a network or framing error (stream reset).
    """

    active: int
    served: int
    rejected: int
    timed_out: int
    failed: int


class RequestServer:
    """Serves one protocol; made by ``serve``. See the module docstring for the bounds.

    Args:
        handler: ``handler(peer, request) -> response``.
        max_per_peer: requests in progress from one peer.
        max_total: requests in progress in all.
        timeout: seconds for one whole exchange.
        max_request_size: largest request body accepted.

    Raises:
        ValueError: a limit is not positive.
    """

    def __init__(
        self,
        handler: RequestHandler,
        *,
        max_per_peer: int,
        max_total: int,
        timeout: float,
        max_request_size: int,
    ) -> None:
        if max_per_peer < 1 or max_total < 1 or timeout <= 0 or max_request_size < 0:
            raise ValueError("limits must be positive")
        self._handler = handler
        self._max_per_peer = max_per_peer
        self._max_total = max_total
        self._timeout = timeout
        self._max_request_size = max_request_size
        self._per_peer: dict[PeerId, int] = {}
        self._active = 0
        self._served = self._rejected = self._timed_out = self._failed = 0

    def statistics(self) -> ServerStatistics:
        """A snapshot of the counters."""
        return ServerStatistics(
            active=self._active,
            served=self._served,
            rejected=self._rejected,
            timed_out=self._timed_out,
            failed=self._failed,
        )

    async def handle_stream(self, stream: Stream) -> None:
        """The stream handler registered with the host: admit, answer, release.

        Raises:
            BaseException: whatever the request handler raised (the host then resets the
                stream); network, framing and timeout errors are counted, not raised.
        """
        peer = stream.remote_peer
        if self._active >= self._max_total or self._per_peer.get(peer, 0) >= self._max_per_peer:
            self._rejected += 1
            await stream.reset()
            return
        self._active += 1
        self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        try:
            await self._exchange(stream, peer)
        finally:
            self._active -= 1
            if (left := self._per_peer[peer] - 1) > 0:
                self._per_peer[peer] = left
            else:
                del self._per_peer[peer]

    async def _exchange(self, stream: Stream, peer: PeerId) -> None:
        with anyio.move_on_after(self._timeout) as scope:
            try:
                data = await read_lp(stream, max_size=self._max_request_size)
                response = await self._handler(peer, data)
                await write_lp(stream, response)
                await stream.send_eof()
            except NETWORK_ERRORS:
                self._failed += 1
                await stream.reset()
                return
        if scope.cancelled_caught:
            self._timed_out += 1
            await stream.reset()
            return
        self._served += 1


def serve(
    host: StreamHost,
    protocol_id: str,
    handler: RequestHandler,
    *,
    max_per_peer: int = 8,
    max_total: int = 64,
    timeout: float = 10.0,
    max_request_size: int = DEFAULT_MAX_SIZE,
) -> RequestServer:
    """Serve ``protocol_id`` on ``host`` with ``handler(peer, request) -> response``.

    Args:
        host: the host to register the stream handler with.
        protocol_id: the protocol served.
        handler: computes the response body; if it raises, the stream is reset and the error
            goes to the host's handler-failure path.
        max_per_peer: requests in progress from one peer; more are reset.
        max_total: requests in progress in all; more are reset.
        timeout: seconds for one whole exchange (read, handle, write).
        max_request_size: largest request body accepted; a larger one resets the stream.

    Returns:
        The server (``statistics()``); ``host.remove_stream_handler(protocol_id)`` stops it.

    Raises:
        ValueError: a limit is not positive.
    """
    server = RequestServer(
        handler,
        max_per_peer=max_per_peer,
        max_total=max_total,
        timeout=timeout,
        max_request_size=max_request_size,
    )
    host.set_stream_handler(protocol_id, server.handle_stream)
    return server


async def request(
    host: StreamHost,
    peer: PeerId,
    protocols: Sequence[str],
    payload: bytes,
    *,
    timeout: float = 10.0,
    max_response_size: int = DEFAULT_MAX_SIZE,
) -> bytes:
    """Send one request to ``peer`` and return its response body.

    Args:
        host: the host to open the stream from (dialing ``peer`` if needed).
        peer: the peer to ask.
        protocols: the protocols to propose, in order of preference.
        payload: the request body.
        timeout: seconds for the whole request, dialing and negotiation included.
        max_response_size: largest response body accepted.

    Returns:
        The response body.

    Raises:
        RequestTimeout: no complete response within ``timeout``.
        RequestRefused: the server reset the stream (limit reached, handler failed).
        RemoteProtocolError: the response is oversized or badly framed, or the stream ended
            without one.
        DialError, ProtocolNotSupported, ConnectionClosedError: from ``host.new_stream``.
    """
    if isinstance(protocols, str):
        raise TypeError("protocols must be a sequence of protocol IDs, not a string")
    with anyio.move_on_after(timeout):
        try:
            stream = await host.new_stream(peer, protocols)
        except StreamReset as exc:  # reset right after negotiation: refused at a limit
            raise RequestRefused(f"{peer} reset the request stream") from exc
        try:
            await write_lp(stream, payload)
            await stream.send_eof()
            response = await read_lp(stream, max_size=max_response_size)
        except StreamReset as exc:
            await _reset(stream)
            raise RequestRefused(f"{peer} reset the request stream") from exc
        except anyio.EndOfStream:
            await _reset(stream)
            raise RemoteProtocolError(f"{peer} closed the stream without a response") from None
        except BaseException:
            await _reset(stream)
            raise
        await stream.aclose()
        return response
    raise RequestTimeout(f"no response from {peer} within {timeout} s")


async def _reset(stream: Stream) -> None:
    with anyio.CancelScope(shield=True):
        await stream.reset()
