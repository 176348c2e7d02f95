"""The perf service: serves ``/perf/1.0.0`` and measures upload/download throughput to a peer
(https://github.com/libp2p/specs/blob/master/perf/perf.md).

Built for benchmarks: bytes are sent from one preallocated zero buffer and received bytes are
only counted, so the hot loops do no allocation beyond what the stream itself does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from p2pstack.errors import LocalProtocolError, P2PTimeoutError, RemoteProtocolError
from p2pstack.interfaces import ByteStream
from protocols.perf._wire import PROTOCOL_ID, PerfResult, RequestReader, encode_request

if TYPE_CHECKING:
    from p2pstack.host import Host, Stream
    from p2pstack.identity import PeerId

__all__ = ["DEFAULT_CHUNK_SIZE", "Perf", "run_perf_client", "serve_perf"]


#: Bytes per send and per receive. Large enough that per-call overhead is small next to the
#: muxer's own framing (yamux splits into frames of at most its window anyway).
DEFAULT_CHUNK_SIZE = 256 * 1024


async def _send_count(stream: ByteStream, count: int, buffer: bytes, idle_timeout: float) -> None:
    full, rest = divmod(count, len(buffer))
    with anyio.fail_after(idle_timeout) as scope:
        for _ in range(full):
            await stream.send(buffer)
            # One cancel scope for the whole loop, re-armed per chunk: cheaper than a new scope.
            scope.deadline = anyio.current_time() + idle_timeout
        if rest:
            await stream.send(buffer[:rest])


async def serve_perf(
    stream: ByteStream,
    *,
    buffer: bytes = bytes(DEFAULT_CHUNK_SIZE),
    idle_timeout: float = 60.0,
    max_download_bytes: int | None = None,
) -> tuple[int, int]:
    """Serve one perf request: read the 8-byte size, drain the upload to its end, send the size
    back, then half-close.

    Args:
        stream: the negotiated perf stream.
        buffer: the bytes sent repeatedly (its length is the chunk size).
        idle_timeout: most seconds any single read or send may wait.
        max_download_bytes: refuse requests for more than this many bytes (``None``: no cap).

    Returns:
        ``(uploaded, sent)`` byte counts.

    Raises:
        RemoteProtocolError: the request was truncated or asked for more than the cap.
        P2PTimeoutError: a read or send waited longer than ``idle_timeout``.
    """
    reader = RequestReader()
    chunk = len(buffer)
    try:
        with anyio.fail_after(idle_timeout) as scope:
            while True:
                try:
                    reader.feed(await stream.receive(reader.missing or chunk))
                except anyio.EndOfStream:
                    break
                scope.deadline = anyio.current_time() + idle_timeout
        download = reader.finish()
        if max_download_bytes is not None and download > max_download_bytes:
            raise RemoteProtocolError(
                f"perf request for {download} bytes exceeds the cap of {max_download_bytes}"
            )
        await _send_count(stream, download, buffer, idle_timeout)
    except TimeoutError:
        raise P2PTimeoutError(f"perf: stream idle for {idle_timeout} s") from None
    await stream.send_eof()
    return reader.uploaded, download


async def run_perf_client(
    stream: ByteStream,
    *,
    upload_bytes: int,
    download_bytes: int,
    buffer: bytes = bytes(DEFAULT_CHUNK_SIZE),
    clock: Callable[[], float] = anyio.current_time,
) -> tuple[float, float]:
    """Run the client side of one perf exchange on an open stream. The caller bounds the time.

    Args:
        stream: an open perf stream.
        upload_bytes: bytes to upload after the request.
        download_bytes: bytes to ask the server to send back.
        buffer: the bytes sent repeatedly (its length is the chunk size).
        clock: monotonic seconds.

    Returns:
        ``(upload_seconds, download_seconds)``.

    Raises:
        RemoteProtocolError: the server sent more or fewer bytes than requested.
        ValueError: a size is negative or ``download_bytes`` does not fit in 64 bits.
    """
    if upload_bytes < 0:
        raise ValueError("upload_bytes must not be negative")
    started = clock()
    await stream.send(encode_request(download_bytes))
    full, rest = divmod(upload_bytes, len(buffer))
    for _ in range(full):
        await stream.send(buffer)
    if rest:
        await stream.send(buffer[:rest])
    await stream.send_eof()
    uploaded = clock()
    received = 0
    chunk = len(buffer)
    while True:
        try:
            received += len(await stream.receive(chunk))
        except anyio.EndOfStream:
            break
        if received > download_bytes:
            raise RemoteProtocolError(f"perf server sent more than the {download_bytes} asked")
    if received != download_bytes:
        raise RemoteProtocolError(f"perf server sent {received} of {download_bytes} bytes")
    return uploaded - started, clock() - uploaded


class Perf:
    """The perf service (``host.service(Perf)``).

    Args:
        chunk_size: bytes per send/receive call (a buffer of this size is allocated once).
        idle_timeout: most seconds a served stream may stall on one read or send.
        max_download_bytes: largest request the server honours (``None``: no cap); the default
            is 10 GiB, so a stray client cannot keep the server sending for ever.
        max_inbound_streams: most perf requests served at once; more are reset.
    """

    def __init__(
        self,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        idle_timeout: float = 60.0,
        max_download_bytes: int | None = 10 * 1024**3,
        max_inbound_streams: int = 8,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self._buffer = bytes(chunk_size)
        self._idle_timeout = idle_timeout
        self._max_download = max_download_bytes
        self._max_inbound = max_inbound_streams
        self._host: Host | None = None

    async def start(self, host: Host) -> None:
        """Register the ``/perf/1.0.0`` handler."""
        self._host = host
        host.set_stream_handler(PROTOCOL_ID, self._handle, max_inbound=self._max_inbound)

    async def stop(self) -> None:
        """Nothing to leave gracefully: the host closes the streams."""

    async def _handle(self, stream: Stream) -> None:
        await serve_perf(
            stream,
            buffer=self._buffer,
            idle_timeout=self._idle_timeout,
            max_download_bytes=self._max_download,
        )

    async def measure(
        self,
        peer: PeerId,
        *,
        upload_bytes: int,
        download_bytes: int,
        timeout: float = 300.0,
    ) -> PerfResult:
        """Upload ``upload_bytes`` to ``peer`` and download ``download_bytes`` from it.

        Args:
            peer: the peer to measure (dialed if needed).
            upload_bytes: bytes to send.
            download_bytes: bytes to ask for.
            timeout: most seconds for the whole exchange, stream opening included.

        Returns:
            The byte counts and timings.

        Raises:
            RemoteProtocolError: the server sent the wrong number of bytes.
            P2PTimeoutError: the exchange did not finish within ``timeout``.
            P2PError: dialing or negotiating the stream failed.
        """
        if self._host is None:
            raise LocalProtocolError("Perf.measure() called before the service was started")
        started = anyio.current_time()
        try:
            with anyio.fail_after(timeout):
                stream = await self._host.new_stream(peer, [PROTOCOL_ID])
                try:
                    up, down = await run_perf_client(
                        stream,
                        upload_bytes=upload_bytes,
                        download_bytes=download_bytes,
                        buffer=self._buffer,
                    )
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await stream.reset()
                    raise
                await stream.aclose()
        except TimeoutError:
            raise P2PTimeoutError(f"perf: exchange did not finish within {timeout} s") from None
        return PerfResult(
            upload_bytes=upload_bytes,
            download_bytes=download_bytes,
            upload_seconds=up,
            download_seconds=down,
            total_seconds=anyio.current_time() - started,
        )
