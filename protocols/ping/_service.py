"""The ping service: answers ``/ipfs/ping/1.0.0`` and measures round trips
(https://github.com/libp2p/specs/blob/master/ping/ping.md).

Both stream styles in use are served: js-libp2p opens one stream per ping and half-closes it,
go-libp2p keeps one stream open and pings on it repeatedly.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from p2pstack.errors import (
    NETWORK_ERRORS,
    LocalProtocolError,
    P2PTimeoutError,
    RemoteProtocolError,
)
from p2pstack.interfaces import ByteStream
from protocols.ping._wire import PAYLOAD_SIZE, PROTOCOL_ID, PayloadBuffer, check_echo

if TYPE_CHECKING:
    from p2pstack.host import Host, Stream
    from p2pstack.identity import PeerId

__all__ = ["Ping", "ping_round_trips", "serve_ping"]

_log = logging.getLogger(__name__)

#: Bytes read (and payloads echoed) per batch: 64 payloads.
_BATCH_BYTES = 64 * PAYLOAD_SIZE


async def serve_ping(stream: ByteStream, *, idle_timeout: float = 60.0) -> int:
    """Echo 32-byte payloads until the peer ends its side of the stream.

    Payloads that arrive together are echoed in one write, and the task yields to the event
    loop after each batch: a peer that pipelines thousands of payloads costs one batch at a
    time, not one long stretch without yielding (muxed streams return buffered data without
    waiting, so a loop of reads and writes could otherwise keep the loop to itself).

    Args:
        stream: the negotiated ping stream.
        idle_timeout: most seconds to wait for each payload.

    Returns:
        The number of payloads echoed.

    Raises:
        P2PTimeoutError: no complete payload arrived within ``idle_timeout``.
        RemoteProtocolError: the stream ended inside a payload.
    """
    buf = PayloadBuffer(_BATCH_BYTES)
    echoed = 0
    while True:
        try:
            with anyio.fail_after(idle_timeout):
                # Reading at most the room left in the buffer keeps it bounded.
                data = await stream.receive(_BATCH_BYTES - buf.pending)
        except anyio.EndOfStream:
            buf.finish()
            return echoed
        except TimeoutError:
            raise P2PTimeoutError(f"ping: no payload within {idle_timeout} s") from None
        buf.feed(data)
        payloads = buf.pop_payloads()
        if payloads:
            await stream.send(b"".join(payloads))
            echoed += len(payloads)
        await anyio.lowlevel.checkpoint()


async def _receive_exactly(stream: ByteStream, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        try:
            buf += await stream.receive(size - len(buf))
        except anyio.EndOfStream:
            raise RemoteProtocolError(
                f"ping stream ended after {len(buf)} of {size} echoed bytes"
            ) from None
    return bytes(buf)


async def ping_round_trips(
    stream: ByteStream,
    payloads: list[bytes],
    *,
    timeout: float = 10.0,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Send each payload, wait for its echo, and time the round trip.

    Args:
        stream: an open ping stream.
        payloads: 32-byte payloads, sent one at a time.
        timeout: most seconds for each round trip.
        clock: monotonic seconds (default ``time.perf_counter``: loop clocks such as uvloop's
            tick in milliseconds, too coarse for loopback round trips).

    Returns:
        One round-trip time in seconds per payload.

    Raises:
        LocalProtocolError: a payload is not 32 bytes long.
        RemoteProtocolError: an echo differs from its payload, or the stream ended early.
        P2PTimeoutError: an echo did not arrive within ``timeout``.
    """
    rtts: list[float] = []
    for payload in payloads:
        if len(payload) != PAYLOAD_SIZE:
            raise LocalProtocolError(f"ping payload must be {PAYLOAD_SIZE} bytes")
        started = clock()
        try:
            with anyio.fail_after(timeout):
                await stream.send(payload)
                echo = await _receive_exactly(stream, PAYLOAD_SIZE)
        except TimeoutError:
            raise P2PTimeoutError(f"ping: no echo within {timeout} s") from None
        rtts.append(clock() - started)
        check_echo(payload, echo)
    return rtts


class Ping:
    """The ping service (``host.service(Ping)``).

    Args:
        random_bytes: source of the random payloads (injectable for deterministic tests).
        clock: monotonic seconds for round-trip times (default ``time.perf_counter``; a
            simulation passes its virtual clock).
        idle_timeout: most seconds an inbound stream may wait for its next payload.
        max_inbound_streams: most inbound ping streams served at once, all peers together;
            more are reset.
        max_inbound_per_peer: most inbound ping streams one peer may hold at once; more are
            reset, so that one peer cannot use up ``max_inbound_streams`` and make every
            other peer's ping fail (js-libp2p allows 2 per peer, go-libp2p 1; 4 leaves room
            for a few concurrent ``ping()`` calls, each of which opens its own stream).

    Raises:
        ValueError: a limit is less than 1.
    """

    def __init__(
        self,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
        clock: Callable[[], float] = time.perf_counter,
        idle_timeout: float = 60.0,
        max_inbound_streams: int = 64,
        max_inbound_per_peer: int = 4,
    ) -> None:
        self._random_bytes = random_bytes
        self._clock = clock
        self._idle_timeout = idle_timeout
        self._max_inbound = max_inbound_streams
        if max_inbound_per_peer < 1:
            raise ValueError("max_inbound_per_peer must be at least 1")
        self._max_per_peer = max_inbound_per_peer
        self._host: Host | None = None

    async def start(self, host: Host) -> None:
        """Register the ``/ipfs/ping/1.0.0`` handler."""
        self._host = host
        host.set_stream_handler(
            PROTOCOL_ID,
            self._handle,
            max_inbound=self._max_inbound,
            max_inbound_per_peer=self._max_per_peer,
            allow_limited=True,  # a few bytes: cheap on a relayed connection (js does too)
        )

    async def stop(self) -> None:
        """Nothing to leave gracefully: the host closes the streams."""

    async def _handle(self, stream: Stream) -> None:
        await serve_ping(stream, idle_timeout=self._idle_timeout)

    async def ping(
        self,
        peer: PeerId,
        *,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[float]:
        """Ping ``peer`` ``count`` times over one stream (dialing it if needed).

        Args:
            peer: the peer to ping.
            count: number of round trips.
            timeout: most seconds for opening the stream and for each round trip.

        Returns:
            The round-trip times in seconds, in order.

        Raises:
            RemoteProtocolError: an echo did not match its payload.
            P2PTimeoutError: the stream could not be opened, or an echo did not arrive, in time.
            P2PError: dialing or negotiating the stream failed (``DialError``,
                ``ProtocolNotSupported``, ...).
        """
        if self._host is None:
            raise LocalProtocolError("Ping.ping() called before the service was started")
        if count < 1:
            raise ValueError("count must be at least 1")
        try:
            with anyio.fail_after(timeout):
                stream = await self._host.new_stream(peer, [PROTOCOL_ID], allow_limited=True)
        except TimeoutError:
            raise P2PTimeoutError(f"ping: could not open a stream within {timeout} s") from None
        payloads = [self._random_bytes(PAYLOAD_SIZE) for _ in range(count)]
        try:
            rtts = await ping_round_trips(stream, payloads, timeout=timeout, clock=self._clock)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await stream.reset()
            raise
        # Half-close first so that the peer's echo loop ends cleanly, as js-libp2p expects.
        # The round trips are measured; a peer that drops the stream now does not undo them.
        with anyio.CancelScope(shield=True):
            try:
                await stream.send_eof()
            except NETWORK_ERRORS as exc:
                _log.debug("ping: closing the stream to %s failed: %r", peer, exc)
            finally:
                await stream.aclose()
        return rtts
