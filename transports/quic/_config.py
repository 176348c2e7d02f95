"""Settings of the QUIC-v1 transport (https://github.com/libp2p/specs/tree/master/quic):
timeouts, stream and flow-control limits, datagram size and the bound on half-open handshakes."""

from __future__ import annotations

import attrs

__all__ = ["ALPN", "QuicConfig"]

#: The ALPN protocol libp2p negotiates inside QUIC's TLS handshake ("libp2p", tls.md).
ALPN = "libp2p"


@attrs.frozen(kw_only=True)
class QuicConfig:
    """How a ``QuicTransport`` runs its connections. Every buffer below is a hard bound.

    Attributes:
        idle_timeout: seconds without any packet after which a connection is dropped (the
            smaller of both peers' values applies; js-libp2p uses 10 s).
        keep_alive: seconds of silence after which we send a PING so that an otherwise idle
            connection stays open; ``None`` sends none (the connection then idles out).
        handshake_timeout: seconds a dial or an inbound handshake may take.
        max_streams: bidirectional streams the peer may have open at once (and the size of
            the queue of streams not yet accepted).
        stream_window: receive window per stream: bytes the peer may send beyond what the
            application has read; the bound of one stream's receive buffer.
        connection_window: receive window of the whole connection (all streams together).
        send_buffer: bytes a stream may have queued but not yet acknowledged before ``send``
            blocks (aioquic drops acknowledged bytes from the front of this buffer, so a
            larger one costs a bigger copy per ACK).
        max_datagram_size: the largest UDP payload we send (1200 is QUIC's minimum; 1452 fits
            a 1500-byte Ethernet MTU for IPv4 and IPv6).
        max_half_open: inbound handshakes in progress per listening socket; further Initial
            packets are dropped until one finishes.
        accept_backlog: established inbound connections waiting for ``accept``; more are closed.
        linger: seconds ``aclose`` waits for the peer to acknowledge data already written
            before CONNECTION_CLOSE (which discards anything in flight).
    """

    idle_timeout: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    keep_alive: float | None = 5.0
    handshake_timeout: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    max_streams: int = attrs.field(default=256, validator=attrs.validators.gt(0))
    stream_window: int = attrs.field(default=4 * 1024 * 1024, validator=attrs.validators.gt(0))
    connection_window: int = attrs.field(default=16 * 1024 * 1024, validator=attrs.validators.gt(0))
    send_buffer: int = attrs.field(default=256 * 1024, validator=attrs.validators.gt(0))
    max_datagram_size: int = attrs.field(default=1452, validator=attrs.validators.ge(1200))
    max_half_open: int = attrs.field(default=128, validator=attrs.validators.gt(0))
    accept_backlog: int = attrs.field(default=64, validator=attrs.validators.gt(0))
    linger: float = attrs.field(default=2.0, validator=attrs.validators.ge(0))
