"""Perf wire format: an 8-byte big-endian request for how many bytes to send back, then raw bytes
each way (https://github.com/libp2p/specs/blob/master/perf/perf.md).

No I/O here: the request codec, a byte counter for the server's read phase and the result record.
"""

from __future__ import annotations

import struct

import attrs

from p2pstack.errors import P2PError, RemoteProtocolError

__all__ = [
    "PROTOCOL_ID",
    "REQUEST_SIZE",
    "PerfRefused",
    "PerfResult",
    "RequestReader",
    "encode_request",
]

PROTOCOL_ID = "/perf/1.0.0"
#: "the client sends the number of bytes it wants back as an unsigned 64-bit big-endian integer"
REQUEST_SIZE = 8
_U64 = struct.Struct(">Q")


class PerfRefused(P2PError):
    """A perf server refused a request. ``reason`` says why:

    - ``"size"``: perf size over the server's cap. The server signals it by ending its side of
      the stream with no data right after reading an over-cap request (or as soon as the upload
      passes its cap), before the client's upload is done. An honest server never does that:
      it sends only after the client's end of stream.
    - ``"refused"``: the server reset the stream before sending anything: it is at its
      concurrency or per-peer rate limit, or stopping.
    - ``"busy"`` / ``"rate"``: server side only: this peer had too many requests running, or
      was over its per-minute rate (the client sees ``"refused"``).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def encode_request(download_bytes: int) -> bytes:
    """The 8-byte request asking the server to send ``download_bytes`` bytes back.

    Raises:
        ValueError: ``download_bytes`` is negative or does not fit in 64 bits.
    """
    if not 0 <= download_bytes < 1 << 64:
        raise ValueError(f"download size out of range: {download_bytes}")
    return _U64.pack(download_bytes)


class RequestReader:
    """Server-side read phase: the 8-byte request, then upload bytes counted and discarded.

    Holds at most 7 bytes (a partial request); upload bytes are only counted.
    """

    def __init__(self) -> None:
        self._head = b""
        self.download_bytes: int | None = None
        self.uploaded = 0

    @property
    def missing(self) -> int:
        """Bytes of the request still missing (0 once it is complete)."""
        return REQUEST_SIZE - len(self._head) if self.download_bytes is None else 0

    def feed(self, data: bytes) -> None:
        """Account for received bytes."""
        if self.download_bytes is None:
            take = REQUEST_SIZE - len(self._head)
            self._head += data[:take]
            if len(self._head) == REQUEST_SIZE:
                (self.download_bytes,) = _U64.unpack(self._head)
            self.uploaded += max(0, len(data) - take)
        else:
            self.uploaded += len(data)

    def finish(self) -> int:
        """Call at the end of the upload.

        Returns:
            The number of bytes to send back.

        Raises:
            RemoteProtocolError: the stream ended before the 8-byte request was complete.
        """
        if self.download_bytes is None:
            raise RemoteProtocolError(
                f"perf stream ended after {len(self._head)} of {REQUEST_SIZE} request bytes"
            )
        return self.download_bytes


@attrs.frozen(kw_only=True)
class PerfResult:
    """One perf measurement.

    Attributes:
        upload_bytes: bytes sent to the server (after the 8-byte request).
        download_bytes: bytes received back.
        upload_seconds: from opening the stream until the upload was half-closed.
        download_seconds: from the half-close until the server's end of stream.
        total_seconds: from before the stream was opened until the server's end of stream.
    """

    upload_bytes: int
    download_bytes: int
    upload_seconds: float
    download_seconds: float
    total_seconds: float
