"""The client side of one perf exchange
(https://github.com/libp2p/specs/blob/master/perf/perf.md#protocol).

The reply is read while the upload runs: a server that ends its side before our upload is done
refused the request as over its size cap (see ``PerfRefused``), and the upload stops at once
instead of pushing the rest of its bytes at a server that no longer reads them.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import attrs

from p2pstack.errors import P2PError, RemoteProtocolError, StreamReset
from p2pstack.interfaces import ByteStream
from protocols.perf._wire import PerfRefused, encode_request

__all__ = ["DEFAULT_CHUNK_SIZE", "run_perf_client"]

#: Bytes per send and per receive. Large enough that per-call overhead is small next to the
#: muxer's own framing (yamux splits into frames of at most its window anyway).
DEFAULT_CHUNK_SIZE = 256 * 1024

_RESET_MESSAGE = (
    "perf request reset by the server before any reply (it is busy, rate limiting this peer, "
    "or stopping)"
)

#: What a failing stream raises; recorded, then judged once both directions have stopped.
_STREAM_ERRORS = (P2PError, anyio.BrokenResourceError, anyio.ClosedResourceError)


@attrs.define
class _Reply:
    """What the reader task saw."""

    expected: int
    upload_scope: anyio.CancelScope
    upload_done: anyio.Event = attrs.field(factory=anyio.Event)
    received: int = 0
    ended_at: float | None = None
    ended_early: bool = False
    error: BaseException | None = None


async def _read_reply(
    stream: ByteStream,
    reply: _Reply,
    chunk: int,
    clock: Callable[[], float],
) -> None:
    try:
        while True:
            reply.received += len(await stream.receive(chunk))
            if reply.received > reply.expected:
                raise RemoteProtocolError(f"perf server sent more than the {reply.expected} asked")
    except anyio.EndOfStream:
        reply.ended_at = clock()
        reply.ended_early = not reply.upload_done.is_set()
    except _STREAM_ERRORS as exc:
        reply.error = exc
    if not reply.upload_done.is_set():
        reply.upload_scope.cancel()  # the server has answered or failed: stop pushing bytes at it


async def _upload(
    stream: ByteStream, download_bytes: int, upload_bytes: int, buffer: bytes
) -> None:
    await stream.send(encode_request(download_bytes))
    full, rest = divmod(upload_bytes, len(buffer))
    for _ in range(full):
        await stream.send(buffer)
    if rest:
        await stream.send(buffer[:rest])
    await stream.send_eof()


def _judge(reply: _Reply, upload_error: BaseException | None) -> None:
    """Raise the error that the exchange ended with, if any."""
    asked = reply.expected
    if reply.ended_early or (reply.ended_at is not None and reply.received == 0 < asked):
        raise PerfRefused(
            "size",
            f"perf size over the server's cap (it ended the stream at once; {asked} bytes asked)",
        )
    error = reply.error or upload_error
    if isinstance(error, StreamReset) and reply.received == 0:
        raise PerfRefused("refused", _RESET_MESSAGE)
    if error is not None:
        raise error
    if reply.received != asked:
        raise RemoteProtocolError(f"perf server sent {reply.received} of {asked} bytes")


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
        PerfRefused: the server refused the request (``reason`` "size" or "refused").
        RemoteProtocolError: the server sent more or fewer bytes than requested.
        P2PError: the stream failed otherwise (``StreamReset`` after the reply had begun).
        ValueError: a size is negative or ``download_bytes`` does not fit in 64 bits.
    """
    if upload_bytes < 0:
        raise ValueError("upload_bytes must not be negative")
    encode_request(download_bytes)  # validate before anything is sent
    reply = _Reply(expected=download_bytes, upload_scope=anyio.CancelScope())
    upload_error: BaseException | None = None
    started = uploaded = clock()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_read_reply, stream, reply, len(buffer), clock)
        with reply.upload_scope:
            try:
                await _upload(stream, download_bytes, upload_bytes, buffer)
            except _STREAM_ERRORS as exc:
                upload_error = exc
            uploaded = clock()
            reply.upload_done.set()
    _judge(reply, upload_error)
    assert reply.ended_at is not None
    return uploaded - started, reply.ended_at - uploaded
