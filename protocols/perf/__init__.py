"""Perf (``/perf/1.0.0``): throughput measurement between two peers
(https://github.com/libp2p/specs/blob/master/perf/perf.md).

Serving is opt-in: ``Perf(serve=True)``; ``PerfRefused`` describes how a server's refusal
reaches the client."""

from protocols.perf._client import run_perf_client
from protocols.perf._service import DEFAULT_CHUNK_SIZE, DEFAULT_MAX_BYTES, Perf, serve_perf
from protocols.perf._wire import (
    PROTOCOL_ID,
    REQUEST_SIZE,
    PerfRefused,
    PerfResult,
    RequestReader,
    encode_request,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_BYTES",
    "PROTOCOL_ID",
    "REQUEST_SIZE",
    "Perf",
    "PerfRefused",
    "PerfResult",
    "RequestReader",
    "encode_request",
    "run_perf_client",
    "serve_perf",
]
