"""Shared pieces of the py-libp2p interop peer: constants, output, config, stream helpers.

See peer.py (the entry point) and ../README.md (the contract).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from libp2p.abc import INetConn, INetStream
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF, StreamReset

ECHO_PROTOCOL = TProtocol("/p2pstack/echo/1.0.0")
PERF_PROTOCOL = TProtocol("/perf/1.0.0")
PING_PROTOCOL = TProtocol("/ipfs/ping/1.0.0")
BLOCK = 64 * 1024  # write/read size for echo and perf payloads
MAX_IDENTIFY_BYTES = 1 << 20  # bound on an identify response we will buffer
# Echo block size over mplex: py-libp2p mplex hands each stream one 4 KiB chunk at a time and
# its reader loop blocks until that chunk is read, so bigger in-flight blocks per stream let
# many concurrent streams deadlock the connection (and get reset after 5 s).
MPLEX_LOCKSTEP_BLOCK = 4096


class PeerError(Exception):
    """An action failed; reported as an error event."""


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


# ------------------------------------------------------------------ configuration


@dataclass
class Action:
    name: str
    args: list[int]


@dataclass
class Config:
    listen: str | None
    dial: str | None
    muxers: list[str]
    actions: list[Action] = field(default_factory=list)
    seed: str | None = None
    timeout: float = 120.0
    dht: str | None = None  # "server" or "client": run py-libp2p's KadDHT (peer_kad.py)
    dht_namespaces: list[str] = field(default_factory=list)
    bootstrap: list[str] = field(default_factory=list)
    pubsub: str | None = None  # "gossipsub" or "floodsub": run py-libp2p's Pubsub (peer_pubsub.py)
    security: list[str] = field(default_factory=lambda: ["noise"])  # order = preference
    rendezvous: str | None = None  # "point" or "client": py-libp2p rendezvous (peer_rendezvous.py)
    mdns: bool = False  # run py-libp2p's mDNS discovery (zeroconf) and print what it finds


# ------------------------------------------------------------------ stream helpers


async def read_chunk(stream: INetStream) -> bytes | None:
    """One read; None at end of stream (py-libp2p raises StreamEOF, or returns b"")."""
    try:
        data = await stream.read(BLOCK)
    except StreamEOF:
        return None
    except StreamReset:
        # py-libp2p's QUIC stream, once FIN went both ways and its buffer is empty, calls itself
        # closed and read() raises (seen as a reset) instead of signalling EOF: the remote's FIN
        # did arrive and nothing reset the stream, so that is the end of the stream.
        muxed = stream.muxed_stream
        quic = is_quic(muxed.muxed_conn)
        if quic and getattr(muxed, "_read_closed", False) and not muxed.is_reset():
            return None
        raise
    return data or None


async def write_zeros(stream: INetStream, count: int) -> None:
    block = bytes(BLOCK)
    while count > 0:
        n = min(BLOCK, count)
        await stream.write(block[:n])
        count -= n


def is_quic(muxed_conn: Any) -> bool:
    """Whether a py-libp2p muxed connection is a QUIC connection (its streams are QUIC's own)."""
    return type(muxed_conn).__name__ == "QUICConnection"


def muxer_of(conn: INetConn) -> str | None:
    """The negotiated muxer protocol id, or "quic" for QUIC (as js reports it)."""
    if is_quic(conn.muxed_conn):
        return "quic"
    get = getattr(conn, "get_negotiated_muxer_protocol", None)
    if get is not None:
        return get()
    return getattr(conn.muxed_conn, "negotiated_muxer_protocol", None)
