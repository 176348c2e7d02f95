"""The small ``typing.Protocol`` seams that transports, security channels, muxers and services plug
into. A third party implements these outside this repository with nothing but p2pstack's public
names; ``p2pstack.testing`` has conformance checks for them.

Connection layers (https://github.com/libp2p/specs/tree/master/connections)::

    Transport.dial/accept ─► RawConnection ─► SecurityChannel ─► SecureConnection
                                                                  │
                                         Muxer.new_connection ◄───┘
                                                 │
                                                 ▼
                              MuxedConnection ─► MuxedStream (one per protocol exchange)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.host import Host
    from p2pstack.identity import Identity, PeerId, PublicKey

__all__ = [
    "Buffer",
    "ByteStream",
    "Listener",
    "MuxedConnection",
    "MuxedStream",
    "Muxer",
    "RawConnection",
    "SecureConnection",
    "SecurityChannel",
    "Service",
    "Transport",
]

#: What ``ByteStream.send`` accepts: any contiguous bytes-like buffer.
Buffer: TypeAlias = bytes | bytearray | memoryview


@runtime_checkable
class ByteStream(Protocol):
    """A reliable, ordered byte stream with half-close, shaped like ``anyio.abc.ByteStream``.

    Contract:
        * ``receive`` blocks until at least one byte is available and returns between 1 and
          ``max_bytes`` bytes; it never returns ``b""``. At the peer's end of stream it raises
          ``anyio.EndOfStream``. It is cancel-safe: a cancelled ``receive`` loses no data.
        * ``send`` takes any ``Buffer`` and blocks while the peer's buffer or window is full
          (backpressure). Once it returns the caller may reuse the buffer: an implementation
          that keeps a reference to a mutable one copies it. After ``send_eof`` or ``aclose``
          it raises ``anyio.ClosedResourceError``.
        * ``send_eof`` half-closes: the peer sees end of stream, we may still receive.
        * ``aclose`` closes both directions and releases the stream; it never raises for a
          stream that is already closed or broken.
        * A broken underlying transport raises ``anyio.BrokenResourceError`` (raw connections) or
          ``p2pstack.errors.StreamReset`` (muxed streams).
    """

    async def receive(self, max_bytes: int = 65536) -> bytes: ...

    async def send(self, item: Buffer) -> None: ...

    async def send_eof(self) -> None: ...

    async def aclose(self) -> None: ...


class RawConnection(ByteStream, Protocol):
    """A transport-level connection: a byte stream that knows both ends' addresses."""

    @property
    def local_multiaddr(self) -> Multiaddr: ...

    @property
    def remote_multiaddr(self) -> Multiaddr: ...


class SecureConnection(RawConnection, Protocol):
    """An authenticated, encrypted (or, for tests only, plaintext) connection.

    ``early_muxer`` is the muxer protocol ID agreed inside the security handshake (Noise
    extensions, TLS ALPN), or ``None`` when the muxer must be negotiated with multistream-select.
    """

    @property
    def local_peer(self) -> PeerId: ...

    @property
    def remote_peer(self) -> PeerId: ...

    @property
    def remote_public_key(self) -> PublicKey: ...

    @property
    def security_protocol(self) -> str: ...

    @property
    def early_muxer(self) -> str | None: ...


class Listener(Protocol):
    """A listening endpoint of a transport."""

    @property
    def multiaddrs(self) -> Sequence[Multiaddr]:
        """The addresses actually bound (port 0 replaced by the real port)."""
        ...

    async def accept(self) -> RawConnection:
        """Wait for the next inbound connection.

        Raises:
            anyio.ClosedResourceError: the listener was closed.
        """
        ...

    async def aclose(self) -> None:
        """Stop listening. Connections already accepted stay open. Idempotent."""
        ...


class Transport(Protocol):
    """Dials and listens on one family of multiaddrs (``/ip4/../tcp/..``, ``/memory/..``)."""

    def can_dial(self, addr: Multiaddr) -> bool:
        """Whether ``addr`` (without any trailing ``/p2p/<id>``) is one this transport dials."""
        ...

    def can_listen(self, addr: Multiaddr) -> bool:
        """Whether this transport can listen on ``addr``."""
        ...

    async def dial(self, addr: Multiaddr) -> RawConnection:
        """Open a raw connection to ``addr`` (no ``/p2p/`` component).

        Not cancel-safe in the sense that a cancelled dial leaves nothing open. The caller
        bounds the time (``anyio.fail_after``).

        Raises:
            TransportError: the address could not be reached.
        """
        ...

    async def listen(self, addr: Multiaddr) -> Listener:
        """Start listening on ``addr``.

        Raises:
            TransportError: the address could not be bound.
        """
        ...


class SecurityChannel(Protocol):
    """A security handshake (``/noise``, ``/tls/1.0.0``, ``/plaintext/2.0.0``) over a raw
    connection, after multistream-select chose ``protocol_id``.

    ``muxers`` is the local muxer preference list for inlined muxer negotiation; a channel that
    does not support it ignores it and reports ``early_muxer = None``. The caller bounds the time.
    """

    @property
    def protocol_id(self) -> str: ...

    async def secure_outbound(
        self,
        conn: RawConnection,
        identity: Identity,
        *,
        remote_peer: PeerId | None,
        muxers: Sequence[str] = (),
    ) -> SecureConnection:
        """Run the handshake as initiator.

        Raises:
            HandshakeError: the handshake failed.
            PeerIdMismatch: ``remote_peer`` was given and the remote proved another identity.
        """
        ...

    async def secure_inbound(
        self, conn: RawConnection, identity: Identity, *, muxers: Sequence[str] = ()
    ) -> SecureConnection:
        """Run the handshake as responder.

        Raises:
            HandshakeError: the handshake failed.
        """
        ...


class MuxedStream(ByteStream, Protocol):
    """One stream of a multiplexed connection; a ``ByteStream`` that can also be reset."""

    @property
    def stream_id(self) -> int: ...

    async def reset(self) -> None:
        """Abort both directions; the peer sees ``StreamReset``. Idempotent, never raises."""
        ...


class MuxedConnection(Protocol):
    """A secured connection carrying many streams.

    The owner must run ``run()`` in a task group for as long as the connection is in use: it
    reads frames and dispatches them. ``run()`` returns when the connection has ended, for any
    reason (local close, remote close, I/O failure, remote protocol violation); it does not raise
    for those causes, it records them in ``close_reason`` and resets every open stream.
    """

    @property
    def is_closed(self) -> bool: ...

    @property
    def close_reason(self) -> BaseException | None:
        """Why the connection ended, or ``None`` for a clean close (or while it is open)."""
        ...

    async def run(self) -> None: ...

    async def open_stream(self) -> MuxedStream:
        """Open a new outbound stream.

        Raises:
            ConnectionClosedError: the connection is closed or going away.
        """
        ...

    async def accept_stream(self) -> MuxedStream:
        """Wait for the next inbound stream.

        Raises:
            ConnectionClosedError: the connection ended.
        """
        ...

    async def aclose(self) -> None:
        """Close gracefully (yamux GoAway, mplex resets), close the secure connection, and make
        ``run()`` return. Idempotent, never raises."""
        ...


class Muxer(Protocol):
    """A stream multiplexer (``/yamux/1.0.0``, ``/mplex/6.7.0``): a factory of connections."""

    @property
    def protocol_id(self) -> str: ...

    def new_connection(self, conn: SecureConnection, *, is_initiator: bool) -> MuxedConnection:
        """Wrap a secured connection. Does no I/O: the caller then runs ``run()``."""
        ...


class Service(Protocol):
    """A protocol service run by a host (ping, identify, kad, ...).

    Lifecycle:
        * ``start(host)`` is called once while the host starts, in the order services were
          given, before the host listens. Register stream handlers
          (``host.set_stream_handler``), event callbacks and topologies here, and start
          background work with ``host.start_soon``; do no slow network work in ``start``
          itself (do it in a task), so that it does not delay listening.
        * ``stop()`` is called once when the host closes, in reverse order, after the host
          stopped listening but while connections are still open: the place for a graceful
          leave (announcements, flushing state). Each ``stop`` is bounded by
          ``HostConfig.service_stop_timeout``. Then the host cancels the tasks started with
          ``host.start_soon`` and closes the connections. ``stop`` is called only if ``start``
          returned.
    """

    async def start(self, host: Host) -> None: ...

    async def stop(self) -> None: ...
