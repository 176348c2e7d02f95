"""Outbound DHT requests: one request per stream, every request timed out
(https://github.com/libp2p/specs/blob/master/kad-dht/README.md#rpc-messages).

A request opens a fresh stream, writes one length-prefixed message, reads the one answer
(PUT_VALUE is answered with an echo; ADD_PROVIDER with nothing) and closes. Any failure resets
the stream and surfaces as a typed error.

The stream is half-closed only after the answer is read, as go and js clients do: js-libp2p's
kad-dht server (16.x) reads the next request after answering, and an end of stream that arrives
then (rather than with the request) makes it reset the stream, often before the answer it has
just written is read here (a reset discards buffered data, as in go-yamux).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from protocols.kad._types import KadMessage, KadProtocolError, KadTimeout, MessageType
from protocols.kad._wire import KadMessageDecoder, frame

if TYPE_CHECKING:
    from p2pstack.host import Host, Stream
    from p2pstack.identity import PeerId

#: Awaited before a request goes to a connected peer (``Kad(before_request=...)``).
BeforeRequest = Callable[["PeerId"], Awaitable[object]]

__all__ = ["read_message", "send_request"]

#: Requests the spec answers with nothing.
_UNANSWERED = frozenset({MessageType.ADD_PROVIDER})


async def read_message(
    stream: Stream, decoder: KadMessageDecoder, pending: deque[KadMessage]
) -> KadMessage:
    """The next message of ``stream``: from ``pending`` (decoded earlier) or read now.

    Args:
        stream: the stream to read from.
        decoder: the stream's decoder (keeps partial messages between calls).
        pending: messages decoded but not yet handled, oldest first; consumed in place (a
            deque: one read may decode thousands of tiny pipelined requests).

    Returns:
        The next message.

    Raises:
        anyio.EndOfStream: the stream ended (a partial message left is dropped).
        KadProtocolError: bad framing, an oversized or malformed message.
    """
    while not pending:
        data = await stream.receive()
        pending.extend(decoder.feed(data))
    return pending.popleft()


async def send_request(
    host: Host,
    peer: PeerId,
    request: KadMessage,
    *,
    protocol_id: str,
    timeout: float,
    max_size: int,
    before: BeforeRequest | None = None,
) -> KadMessage | None:
    """Send ``request`` to ``peer`` on a new stream and return its answer.

    Args:
        host: our host (dials ``peer`` if needed).
        peer: the peer to ask.
        request: the request.
        protocol_id: the DHT protocol to negotiate.
        timeout: most seconds for the whole exchange, dialing included.
        max_size: largest answer accepted, in bytes.
        before: awaited once ``peer`` is connected, before the stream opens (within
            ``timeout``; see ``Kad``'s ``before_request``).

    Returns:
        The answer, or ``None`` for a request the spec leaves unanswered (ADD_PROVIDER).

    Raises:
        KadTimeout: no answer within ``timeout``.
        KadProtocolError: the answer is malformed, oversized, of another type, or missing.
        P2PError: dialing or negotiating failed (``DialError``, ``ProtocolNotSupported``, ...),
            or the stream was reset.
    """
    with anyio.move_on_after(timeout):
        if before is not None:
            await host.dial_peer(peer)
            await before(peer)
        stream = await host.new_stream(peer, [protocol_id])
        try:
            answer = await _exchange(stream, request, max_size)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await stream.reset()
            raise
        with anyio.CancelScope(shield=True):
            await stream.aclose()
        return answer
    raise KadTimeout(f"no answer from {peer} to {request.type.name} within {timeout} s")


async def _exchange(stream: Stream, request: KadMessage, max_size: int) -> KadMessage | None:
    await stream.send(frame(request))
    if request.type in _UNANSWERED:
        await stream.send_eof()
        return None
    try:
        answer = await read_message(stream, KadMessageDecoder(max_size), deque())
    except anyio.EndOfStream:
        raise KadProtocolError(f"stream closed without an answer to {request.type.name}") from None
    if answer.type != request.type:
        raise KadProtocolError(f"answer of type {answer.type.name} to a {request.type.name}")
    return answer
