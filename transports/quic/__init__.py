"""The QUIC-v1 transport (``/ip4|ip6/<addr>/udp/<port>/quic-v1``) on aioquic's sans-IO core,
driven by anyio: libp2p TLS identity, QUIC's own streams, one UDP socket per listen address."""

from transports.quic._config import ALPN, QuicConfig
from transports.quic._connection import QuicMuxedConnection
from transports.quic._stream import QuicStream
from transports.quic._transport import QuicListener, QuicTransport, parse_quic_multiaddr

__all__ = [
    "ALPN",
    "QuicConfig",
    "QuicListener",
    "QuicMuxedConnection",
    "QuicStream",
    "QuicTransport",
    "parse_quic_multiaddr",
]
