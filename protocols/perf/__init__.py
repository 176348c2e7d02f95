"""Perf (``/perf/1.0.0``): throughput measurement between two peers
(https://github.com/libp2p/specs/blob/master/perf/perf.md)."""

from protocols.perf._service import DEFAULT_CHUNK_SIZE, Perf, run_perf_client, serve_perf
from protocols.perf._wire import (
    PROTOCOL_ID,
    REQUEST_SIZE,
    PerfResult,
    RequestReader,
    encode_request,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "PROTOCOL_ID",
    "REQUEST_SIZE",
    "Perf",
    "PerfResult",
    "RequestReader",
    "encode_request",
    "run_perf_client",
    "serve_perf",
]
