"""The TCP transport (``/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>``)."""

from transports.tcp._tcp import (
    TcpConnection,
    TcpListener,
    TcpListenerStatistics,
    TcpTransport,
)

__all__ = ["TcpConnection", "TcpListener", "TcpListenerStatistics", "TcpTransport"]
