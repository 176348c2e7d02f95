"""What a QUIC connection's TLS handshake and end mean for libp2p: the peer's identity from its
certificate (https://github.com/libp2p/specs/blob/master/tls/tls.md), the CONNECTION_CLOSE codes
we send (RFC 9001 section 4.8), and the error a terminated connection reports. No I/O."""

from __future__ import annotations

import attrs
from aioquic.quic import events

from p2pstack.errors import (
    CertificateError,
    ConnectionClosedError,
    HandshakeError,
    P2PError,
    PeerIdMismatch,
)
from p2pstack.identity import PeerId, PublicKey, verify_certificate

__all__ = [
    "CLOSE_BAD_CERTIFICATE",
    "CLOSE_CERTIFICATE_REQUIRED",
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_NO_ERROR",
    "Rejection",
    "authenticate",
    "termination_error",
]

#: CONNECTION_CLOSE codes (RFC 9001 section 4.8: 0x100 + the TLS alert).
CLOSE_NO_ERROR = 0x0
CLOSE_INTERNAL_ERROR = 0x1
CLOSE_BAD_CERTIFICATE = 0x100 + 42
CLOSE_CERTIFICATE_REQUIRED = 0x100 + 116


@attrs.frozen
class Rejection:
    """Why the peer is refused: the CONNECTION_CLOSE code and reason to send, the local error."""

    code: int
    reason: str
    error: P2PError


def authenticate(
    certificate: bytes | None, expected: PeerId | None
) -> tuple[PublicKey, PeerId] | Rejection:
    """Check the peer's certificate once the TLS handshake completed.

    Args:
        certificate: the peer's certificate (DER), ``None`` if it sent none.
        expected: the peer we dialed, if known.

    Returns:
        The peer's host key and peer ID, or why it is refused (no certificate: libp2p requires
        one; an invalid certificate; another peer than ``expected``).
    """
    if certificate is None:
        error = HandshakeError("the peer sent no certificate (libp2p requires one)")
        return Rejection(CLOSE_CERTIFICATE_REQUIRED, str(error), error)
    try:
        key = verify_certificate(certificate)
    except CertificateError as exc:
        return Rejection(CLOSE_BAD_CERTIFICATE, str(exc), exc)
    peer = PeerId.from_public_key(key)
    if expected is not None and peer != expected:
        return Rejection(
            CLOSE_BAD_CERTIFICATE, "unexpected peer", PeerIdMismatch(str(expected), str(peer))
        )
    return key, peer


def termination_error(
    event: events.ConnectionTerminated, *, authenticated: bool
) -> BaseException | None:
    """The ``close_reason`` of a connection aioquic reports terminated: ``HandshakeError``
    during the handshake, ``ConnectionClosedError`` for an error code or an idle timeout,
    ``None`` for a clean close."""
    text = f"code {event.error_code:#x}: {event.reason_phrase}"
    if not authenticated:
        return HandshakeError(f"QUIC connection closed during the handshake ({text})")
    if event.error_code != CLOSE_NO_ERROR or event.reason_phrase == "Idle timeout":
        return ConnectionClosedError(f"QUIC connection closed ({text})")
    return None
