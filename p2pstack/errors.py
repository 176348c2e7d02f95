"""The p2pstack error tree: every error the stack raises on purpose derives from ``P2PError``.

::

    P2PError
    ├── ProtocolError                 a wire protocol was broken
    │   ├── LocalProtocolError        we misused a sans-IO core (a bug on our side)
    │   └── RemoteProtocolError       the peer sent bytes the spec forbids
    ├── NegotiationError              multistream-select failed
    │   └── ProtocolNotSupported      the peer answered ``na`` to every proposal
    ├── SecurityError                 a secure channel could not be established
    │   ├── HandshakeError            the handshake failed (bad payload, bad signature, ...)
    │   ├── CertificateError          a libp2p TLS certificate is invalid (expired, forged, ...)
    │   └── PeerIdMismatch            the peer proved an identity other than the one we dialed
    ├── MuxerError                    the multiplexed connection failed
    │   ├── StreamReset               the stream was reset (by the peer, or the connection died)
    │   └── ConnectionClosedError     the connection is closed; no new streams
    ├── TransportError                a transport could not listen or dial one address
    ├── DialError                     dialing a peer failed on every address; ``errors`` has each
    ├── UpgradeError                  a raw connection could not be upgraded
    ├── IdentityError                 keys, peer IDs, key files, envelopes
    │   ├── InvalidKeyError
    │   ├── InvalidPeerIdError
    │   └── InvalidSignatureError
    ├── ServiceNotFound               ``host.service(T)`` with no such service
    ├── P2PTimeoutError               a network wait ran past its deadline
    ├── ProtocolAlreadyRegistered     a second handler for one protocol, without ``replace``
    ├── EventOverflow                 an event subscription fell behind its buffer
    ├── LimitedConnectionError        only a limited (relayed) connection, not allowed here
    └── ResourceLimitExceeded         a resource manager limit refused a connection/stream/memory
        └── ConnectionDenied          the connection gater denies the peer or address (a limit of 0)

Byte streams follow anyio's conventions on top of this tree: the end of a stream raises
``anyio.EndOfStream``; using a stream after closing it locally raises
``anyio.ClosedResourceError``.

``NETWORK_ERRORS`` groups what "the network or the peer went away" can raise from a stream or
connection: ``P2PError``, ``anyio.EndOfStream``, ``anyio.BrokenResourceError``,
``anyio.ClosedResourceError`` and ``OSError`` (built on first use so that importing this
module stays cheap).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

__all__ = [
    "NETWORK_ERRORS",
    "CertificateError",
    "ConnectionClosedError",
    "ConnectionDenied",
    "DialError",
    "EventOverflow",
    "HandshakeError",
    "IdentityError",
    "InvalidKeyError",
    "InvalidPeerIdError",
    "InvalidSignatureError",
    "LimitedConnectionError",
    "LocalProtocolError",
    "MuxerError",
    "NegotiationError",
    "P2PError",
    "P2PTimeoutError",
    "PeerIdMismatch",
    "ProtocolAlreadyRegistered",
    "ProtocolError",
    "ProtocolNotSupported",
    "RemoteProtocolError",
    "ResourceLimitExceeded",
    "SecurityError",
    "ServiceNotFound",
    "StreamReset",
    "TransportError",
    "UpgradeError",
]

if TYPE_CHECKING:
    #: Errors a stream or connection can end with because of the network or the peer.
    NETWORK_ERRORS: tuple[type[BaseException], ...]


def __getattr__(name: str) -> object:
    # ``NETWORK_ERRORS`` needs anyio's exception classes; importing anyio is deferred to the
    # first use so that ``import p2pstack.errors`` stays cheap.
    if name == "NETWORK_ERRORS":
        import anyio

        value = (
            P2PError,
            anyio.EndOfStream,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            OSError,
        )
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class P2PError(Exception):
    """Base class of every error p2pstack raises on purpose."""


class ProtocolError(P2PError):
    """A wire protocol was broken."""


class LocalProtocolError(ProtocolError):
    """We tried to do something a protocol state machine does not allow (a bug on our side)."""


class RemoteProtocolError(ProtocolError):
    """The remote peer sent something the protocol forbids; the stream or connection is closed."""


class NegotiationError(P2PError):
    """multistream-select could not agree on a protocol."""


class ProtocolNotSupported(NegotiationError):
    """The peer answered ``na`` to every protocol we proposed.

    Attributes:
        protocols: the protocol IDs that were proposed, in order.
    """

    def __init__(self, protocols: Sequence[str]) -> None:
        self.protocols = tuple(protocols)
        super().__init__(f"protocol not supported by peer: {', '.join(self.protocols)}")


class SecurityError(P2PError):
    """A secure channel could not be established."""


class HandshakeError(SecurityError):
    """The security handshake failed."""


class CertificateError(SecurityError):
    """A libp2p TLS certificate was rejected: malformed, expired or not yet valid, wrongly
    signed, with an unknown critical extension, or without a valid libp2p public key extension
    (https://github.com/libp2p/specs/blob/master/tls/tls.md#peer-authentication)."""


class PeerIdMismatch(SecurityError):
    """The remote proved a peer ID other than the one we dialed.

    Attributes:
        expected: the peer ID we dialed (text form).
        actual: the peer ID the remote proved (text form).
    """

    def __init__(self, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"peer ID mismatch: dialed {expected}, remote is {actual}")


class MuxerError(P2PError):
    """The multiplexed connection failed."""


class StreamReset(MuxerError):
    """The stream was reset: by the peer, by us, or because its connection died."""


class ConnectionClosedError(MuxerError):
    """The connection is closed (or closing) and can open no new streams."""


class TransportError(P2PError):
    """A transport failed to listen on or dial one address."""


class DialError(P2PError):
    """Dialing a peer failed on every address tried.

    Attributes:
        errors: each (address, error) tried, in the order they were tried.
    """

    def __init__(self, message: str, errors: Sequence[tuple[str, BaseException]] = ()) -> None:
        self.errors = tuple(errors)
        detail = "; ".join(f"{addr}: {err}" for addr, err in self.errors)
        super().__init__(f"{message}: {detail}" if detail else message)


class UpgradeError(P2PError):
    """A raw connection could not be upgraded to a secured, multiplexed one."""


class IdentityError(P2PError):
    """A key, peer ID, key file or signed envelope is invalid."""


class InvalidKeyError(IdentityError):
    """A key could not be decoded, or is of an unsupported type."""


class InvalidPeerIdError(IdentityError):
    """A peer ID could not be parsed."""


class InvalidSignatureError(IdentityError):
    """A signature did not verify."""


class ServiceNotFound(P2PError):
    """``host.service(T)`` was asked for a service type the host does not run."""


class P2PTimeoutError(P2PError, TimeoutError):
    """A network wait ran past its deadline."""


class ProtocolAlreadyRegistered(P2PError):
    """A stream handler is already registered for this protocol (pass ``replace=True`` to
    replace it on purpose)."""


class EventOverflow(P2PError):
    """An event subscription fell further behind than its buffer; it receives nothing more.

    Subscribe with a larger ``max_buffer``, read faster, or opt into ``lossy=True``.
    """


class LimitedConnectionError(P2PError):
    """The connection to the peer is limited (relayed) and the caller did not allow it
    (``new_stream(..., allow_limited=True)``)."""


class ResourceLimitExceeded(P2PError):
    """A resource manager limit refused a connection, a stream or a memory reservation.

    Attributes:
        scope: the kind of scope whose limit was hit: ``"system"``, ``"transient"``, ``"peer"``,
            ``"ip"``, ``"protocol"``, ``"protocol-peer"``, ``"service"``, ``"service-peer"``,
            ``"connection"``, ``"stream"`` or ``"gater"``.
        resource: what ran out: ``"connections"``, ``"connections_inbound"``,
            ``"connections_outbound"``, ``"streams"``, ``"streams_inbound"``,
            ``"streams_outbound"`` or ``"memory"``.
        limit: the limit that was reached.
    """

    def __init__(self, message: str, *, scope: str, resource: str, limit: int) -> None:
        self.scope = scope
        self.resource = resource
        self.limit = limit
        super().__init__(message)


class ConnectionDenied(ResourceLimitExceeded):
    """The connection gater denies this peer or address (banned, or in a denied range).

    A denial is a limit of zero, so ``except ResourceLimitExceeded`` catches it too.
    ``resource`` is ``"peer"`` or ``"address"``.
    """

    def __init__(self, message: str, *, resource: str) -> None:
        super().__init__(message, scope="gater", resource=resource, limit=0)
