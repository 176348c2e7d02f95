"""The QUIC-v1 transport (``/ip4|ip6/<addr>/udp/<port>/quic-v1``) on aioquic's sans-IO core,
driven by anyio: libp2p TLS identity, QUIC's own streams, one UDP socket per listen address.

The names below are loaded on first use (module ``__getattr__``, PEP 562), and
``QuicTransport`` imports aioquic only at its first listen or dial: a default host carries
the transport, and a command that never touches QUIC should not pay for loading the QUIC stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transports.quic._config import ALPN, QuicConfig
    from transports.quic._connection import QuicMuxedConnection
    from transports.quic._socket import (
        DatagramSocket,
        DatagramSocketFactory,
        UdpSocket,
        open_udp_socket,
    )
    from transports.quic._stream import QuicStream
    from transports.quic._transport import QuicListener, QuicTransport, parse_quic_multiaddr

#: Public name → the module that defines it.
_EXPORTS = {
    "ALPN": "_config",
    "DatagramSocket": "_socket",
    "DatagramSocketFactory": "_socket",
    "UdpSocket": "_socket",
    "open_udp_socket": "_socket",
    "QuicConfig": "_config",
    "QuicListener": "_transport",
    "QuicMuxedConnection": "_connection",
    "QuicStream": "_stream",
    "QuicTransport": "_transport",
    "parse_quic_multiaddr": "_transport",
}

__all__ = [
    "ALPN",
    "DatagramSocket",
    "DatagramSocketFactory",
    "QuicConfig",
    "QuicListener",
    "QuicMuxedConnection",
    "QuicStream",
    "QuicTransport",
    "UdpSocket",
    "open_udp_socket",
    "parse_quic_multiaddr",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
