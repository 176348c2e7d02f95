"""The perf service: measures upload/download throughput to a peer and, when asked to, serves
``/perf/1.0.0`` (https://github.com/libp2p/specs/blob/master/perf/perf.md).

Built for benchmarks: bytes are sent from one preallocated zero buffer and received bytes are
only counted, so the hot loops do no allocation beyond what the stream itself does.

Serving is opt-in (``Perf(serve=True)``): one 8-byte request can ask for gigabytes, so a node
serves perf only on purpose, and then with a size cap per request, a per-peer concurrency and
rate limit, and a total concurrency limit. How a refusal looks on the wire is described on
``PerfRefused``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from p2pstack.errors import LocalProtocolError, P2PTimeoutError, StreamReset
from p2pstack.interfaces import ByteStream
from protocols.perf._client import _RESET_MESSAGE, DEFAULT_CHUNK_SIZE, run_perf_client
from protocols.perf._limits import PeerAdmission
from protocols.perf._wire import PROTOCOL_ID, PerfRefused, PerfResult, RequestReader

if TYPE_CHECKING:
    from p2pstack.host import Host, Stream
    from p2pstack.identity import PeerId

__all__ = ["DEFAULT_CHUNK_SIZE", "DEFAULT_MAX_BYTES", "Perf", "serve_perf"]

_log = logging.getLogger(__name__)

#: Default cap on each direction of one served request (interop peers upload 64 MiB).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: After refusing an over-cap request, the server reads on for at most this long (or this many
#: bytes) so that its end of stream reaches the client before a reset could overtake it.
_REFUSAL_LINGER_SECONDS = 2.0
_REFUSAL_LINGER_BYTES = 4 * 1024 * 1024


async def _send_count(stream: ByteStream, count: int, buffer: bytes, idle_timeout: float) -> None:
    full, rest = divmod(count, len(buffer))
    with anyio.fail_after(idle_timeout) as scope:
        for _ in range(full):
            await stream.send(buffer)
            # One cancel scope for the whole loop, re-armed per chunk: cheaper than a new scope.
            scope.deadline = anyio.current_time() + idle_timeout
        if rest:
            await stream.send(buffer[:rest])


def _over_cap(reader: RequestReader, max_download: int | None, max_upload: int | None) -> str:
    """Why ``reader``'s request is over the caps so far ("" if it is not)."""
    download = reader.download_bytes
    if max_download is not None and download is not None and download > max_download:
        return f"perf request for {download} bytes is over the server's cap of {max_download}"
    if max_upload is not None and reader.uploaded > max_upload:
        return f"perf upload passed the server's cap of {max_upload} bytes"
    return ""


async def _refuse_size(stream: ByteStream, chunk: int) -> None:
    """End our side at once (the client's cue: "perf size over the server's cap"), then read
    on briefly, bounded in time and bytes, until the client stops."""
    await stream.send_eof()
    drained = 0
    with anyio.move_on_after(_REFUSAL_LINGER_SECONDS):
        while drained < _REFUSAL_LINGER_BYTES:
            try:
                drained += len(await stream.receive(chunk))
            except (anyio.EndOfStream, StreamReset):
                return


async def serve_perf(
    stream: ByteStream,
    *,
    buffer: bytes = bytes(DEFAULT_CHUNK_SIZE),
    idle_timeout: float = 60.0,
    max_download_bytes: int | None = None,
    max_upload_bytes: int | None = None,
) -> tuple[int, int]:
    """Serve one perf request: read the 8-byte size, drain the upload to its end, send the size
    back, then half-close.

    Args:
        stream: the negotiated perf stream.
        buffer: the bytes sent repeatedly (its length is the chunk size).
        idle_timeout: most seconds any single read or send may wait.
        max_download_bytes: refuse requests for more than this many bytes (``None``: no cap).
        max_upload_bytes: refuse uploads longer than this many bytes (``None``: no cap).

    Returns:
        ``(uploaded, sent)`` byte counts.

    Raises:
        PerfRefused: the request was over a cap (``reason`` "size"); the client was told by an
            early end of stream.
        RemoteProtocolError: the request was truncated.
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
                if why := _over_cap(reader, max_download_bytes, max_upload_bytes):
                    await _refuse_size(stream, chunk)
                    raise PerfRefused("size", why)
                scope.deadline = anyio.current_time() + idle_timeout
        download = reader.finish()
        await _send_count(stream, download, buffer, idle_timeout)
    except TimeoutError:
        raise P2PTimeoutError(f"perf: stream idle for {idle_timeout} s") from None
    await stream.send_eof()
    return reader.uploaded, download


class Perf:
    """The perf service (``host.service(Perf)``): ``measure`` always works; serving is opt-in.

    Args:
        serve: answer inbound ``/perf/1.0.0`` requests (default off: a served request costs
            the node as much bandwidth as the requester asks for).
        chunk_size: bytes per send/receive call (a buffer of this size is allocated once).
        idle_timeout: most seconds a served stream may stall on one read or send.
        max_download_bytes: largest download a request may ask for (``None``: no cap).
        max_upload_bytes: largest upload the server reads for one request (``None``: no cap).
        max_inbound_streams: most requests served at once, all peers together; more are reset.
        max_inbound_per_peer: most requests one peer may have served at once; more are reset.
        max_requests_per_minute: sustained requests per minute one peer may make, with bursts
            of ten seconds' worth (``None``: no rate limit); more are reset.

    Raises:
        ValueError: ``chunk_size`` or a limit is not positive.
    """

    def __init__(
        self,
        *,
        serve: bool = False,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        idle_timeout: float = 60.0,
        max_download_bytes: int | None = DEFAULT_MAX_BYTES,
        max_upload_bytes: int | None = DEFAULT_MAX_BYTES,
        max_inbound_streams: int = 8,
        max_inbound_per_peer: int = 2,
        max_requests_per_minute: float | None = 60.0,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self._serve = serve
        self._buffer = bytes(chunk_size)
        self._idle_timeout = idle_timeout
        self._max_download = max_download_bytes
        self._max_upload = max_upload_bytes
        self._max_inbound = max_inbound_streams
        self._max_per_peer = max_inbound_per_peer
        self._admission = PeerAdmission(
            per_peer=max_inbound_per_peer, per_minute=max_requests_per_minute
        )
        self._host: Host | None = None

    @property
    def serving(self) -> bool:
        """Whether this service answers inbound perf requests."""
        return self._serve

    async def start(self, host: Host) -> None:
        """Register the ``/perf/1.0.0`` handler if serving."""
        self._host = host
        if self._serve:
            # The host resets streams over the concurrency limits before the handler runs;
            # the admission check also keeps each peer's request rate.
            host.set_stream_handler(
                PROTOCOL_ID,
                self._handle,
                max_inbound=self._max_inbound,
                max_inbound_per_peer=self._max_per_peer,
            )

    async def stop(self) -> None:
        """Nothing to leave gracefully: the host closes the streams."""

    async def _handle(self, stream: Stream) -> None:
        peer = stream.remote_peer
        refused = self._admission.admit(peer, anyio.current_time())
        if refused is not None:
            _log.debug("perf: refusing %s (%s)", peer, refused)
            await stream.reset()
            return
        try:
            await serve_perf(
                stream,
                buffer=self._buffer,
                idle_timeout=self._idle_timeout,
                max_download_bytes=self._max_download,
                max_upload_bytes=self._max_upload,
            )
        finally:
            self._admission.done(peer)

    async def _open(self, peer: PeerId) -> Stream:
        assert self._host is not None
        try:
            return await self._host.new_stream(peer, [PROTOCOL_ID])
        except StreamReset:
            # A server at its limits resets right after agreeing on the protocol.
            raise PerfRefused("refused", _RESET_MESSAGE) from None

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
            PerfRefused: the server refused: ``reason`` "size" (perf size over the server's
                cap) or "refused" (reset before any reply: busy or rate limited).
            RemoteProtocolError: the server sent the wrong number of bytes.
            P2PTimeoutError: the exchange did not finish within ``timeout``.
            P2PError: dialing or negotiating the stream failed (``ProtocolNotSupported``: the
                peer does not serve perf).
        """
        if self._host is None:
            raise LocalProtocolError("Perf.measure() called before the service was started")
        started = anyio.current_time()
        try:
            with anyio.fail_after(timeout):
                stream = await self._open(peer)
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
