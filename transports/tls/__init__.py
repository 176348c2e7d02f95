"""The ``/tls/1.0.0`` security channel: TLS 1.3 with the libp2p certificate over a byte stream
(https://github.com/libp2p/specs/blob/master/tls/tls.md).

Both sides present a self-signed certificate carrying their host key in the libp2p Public Key
Extension (``p2pstack.identity.make_certificate``); each checks the other's with
``verify_certificate`` from OpenSSL's verification callback, so a bad certificate aborts the
handshake with an alert. The server requires the client's certificate. No SNI is sent.

Inlined muxer negotiation: the client offers its muxer ids in ALPN, then ``libp2p``; the server
picks the client's first one it supports. A selected muxer is reported as ``early_muxer`` and the
upgrader skips the multistream-select round for the muxer; ``libp2p`` means "negotiate it".

Parts:
    * ``alpn_offer`` / ``select_alpn`` / ``early_muxer_of``: ALPN lists, pure functions.
    * ``TlsSession``: sans-IO TLS endpoint (pyOpenSSL memory BIOs), ``make_context``.
    * ``Tls`` / ``TlsSecureConnection``: the anyio driver.
"""

from transports.tls._alpn import MAX_ALPN_PROTOCOLS, alpn_offer, early_muxer_of, select_alpn
from transports.tls._channel import Tls
from transports.tls._connection import PROTOCOL_ID, TlsSecureConnection
from transports.tls._tls import TlsSession, make_context

__all__ = [
    "MAX_ALPN_PROTOCOLS",
    "PROTOCOL_ID",
    "Tls",
    "TlsSecureConnection",
    "TlsSession",
    "alpn_offer",
    "early_muxer_of",
    "make_context",
    "select_alpn",
]
