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

An ``Upgrader`` runs the middle of that path (``DefaultUpgrader``: multistream-select, security,
muxer) and returns an ``UpgradedConnection``: a ``ConnectionInfo`` and the muxed connection. A
transport that secures and multiplexes by itself (QUIC) or that needs the host (a relay) is an
``UpgradedTransport`` and delivers ``UpgradedConnection``s directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, Protocol, TypeAlias, runtime_checkable

import attrs

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.host import Host
    from p2pstack.identity import Identity, PeerId, PublicKey

__all__ = [
    "Buffer",
    "ByteStream",
    "ConnectionInfo",
    "ConnectionLimits",
    "DatagramSender",
    "Direction",
    "Listener",
    "MemoryBudget",
    "MemoryBudgetedMuxer",
    "MuxedConnection",
    "MuxedStream",
    "Muxer",
    "RawConnection",
    "Role",
    "SecureConnection",
    "SecurityChannel",
    "Service",
    "StreamPushingConnection",
    "Transport",
    "UpgradedConnection",
    "UpgradedListener",
    "UpgradedTransport",
    "Upgrader",
]

#: What ``ByteStream.send`` accepts: any contiguous bytes-like buffer.
Buffer: TypeAlias = bytes | bytearray | memoryview
#: Who dialed: ``"outbound"`` we did, ``"inbound"`` the peer did.
Direction = Literal["inbound", "outbound"]
#: The side a handshake is run as. Normally the dialer initiates; in a simultaneous open (hole
#: punching) both sides dialed, and one of them must run the handshake as responder.
Role = Literal["initiator", "responder"]


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


@runtime_checkable
class StreamPushingConnection(MuxedConnection, Protocol):
    """A ``MuxedConnection`` that can hand each inbound stream to a callback as it opens,
    instead of queueing it for ``accept_stream``: its owner then needs no task of its own
    waiting in ``accept_stream`` (about 5 KiB per connection on asyncio, which a node holding
    thousands of connections feels). The host uses it when a muxer offers it.
    """

    def set_stream_handler(self, handler: Callable[[MuxedStream], object]) -> None:
        """From now on, call ``handler`` with each inbound stream as it opens instead of
        queueing it; streams already queued are handed over at once. ``accept_stream`` then
        only waits for the end of the connection (and raises ``ConnectionClosedError``).

        ``handler`` is called synchronously from the task running ``run()``: it must return
        at once (start a task for the stream) and not raise.
        """
        ...


class MemoryBudget(Protocol):
    """Memory accounting that a muxer reserves its receive buffers in. A connection's resource
    scope (``p2pstack.resources.ConnectionScope``) is one; ``p2pstack.resources.BufferReservation``
    does the per-stream bookkeeping. Both calls are synchronous and never block."""

    def reserve_memory(self, amount: int) -> None:
        """Reserve ``amount`` more bytes.

        Raises:
            ResourceLimitExceeded: over a memory limit; nothing was reserved.
            ValueError: ``amount`` is negative, or the budget is closed (its connection is gone).
        """
        ...

    def release_memory(self, amount: int) -> None:
        """Give back ``amount`` bytes reserved earlier (at most what is reserved). Never
        raises, also after the budget was closed."""
        ...


class Muxer(Protocol):
    """A stream multiplexer (``/yamux/1.0.0``, ``/mplex/6.7.0``): a factory of connections.

    A muxer that can account its buffers in the resource manager also accepts a keyword-only
    ``memory`` argument (``MemoryBudgetedMuxer``); ``DefaultUpgrader`` passes the connection's
    scope to those and calls the others without it.
    """

    @property
    def protocol_id(self) -> str: ...

    def new_connection(self, conn: SecureConnection, *, is_initiator: bool) -> MuxedConnection:
        """Wrap a secured connection. Does no I/O: the caller then runs ``run()``."""
        ...


class MemoryBudgetedMuxer(Muxer, Protocol):
    """A ``Muxer`` whose connections reserve their receive buffers in a ``MemoryBudget``."""

    def new_connection(
        self, conn: SecureConnection, *, is_initiator: bool, memory: MemoryBudget | None = None
    ) -> MuxedConnection:
        """Wrap a secured connection. Does no I/O: the caller then runs ``run()``.

        Args:
            conn: the secured connection.
            is_initiator: whether we dialed it.
            memory: where buffered inbound data is reserved (``None``: not accounted). When a
                reservation is refused the stream is reset (its reader sees ``StreamReset``);
                everything reserved is released as the application reads, when streams end
                and when the connection ends.
        """
        ...


@attrs.frozen(kw_only=True)
class ConnectionLimits:
    """The limits a relay put on a limited connection (circuit relay v2 ``Limit``).

    Attributes:
        duration: seconds the connection may last (``None``: no duration limit).
        data: bytes it may carry in each direction (``None``: no data limit).
    """

    duration: float | None = None
    data: int | None = None


@attrs.frozen(kw_only=True)
class ConnectionInfo:
    """What is known about an established (secured, multiplexed) connection.

    Attributes:
        remote_peer: the authenticated peer.
        remote_public_key: its public key, as proved in the security handshake.
        local_addr: our end's address.
        remote_addr: the peer's end's address.
        security: the security protocol ID (``/noise``, ``/tls/1.0.0``, ...).
        muxer: the muxer protocol ID (``/yamux/1.0.0``, ``/mplex/6.7.0``, ``quic``...).
        direction: ``"outbound"`` if we dialed.
        limited: the connection has limits on data or duration (a relayed connection); only
            handlers that opted in run on it.
        limits: its limits when the relay told them (``None``: not limited, or not told).
        transport: a short name of the transport (``"tcp"``, ``"memory"``, ``"quic-v1"``).
    """

    remote_peer: PeerId
    remote_public_key: PublicKey
    local_addr: Multiaddr
    remote_addr: Multiaddr
    security: str
    muxer: str
    direction: Direction
    limited: bool = False
    limits: ConnectionLimits | None = None
    transport: str = ""


@attrs.frozen(kw_only=True)
class UpgradedConnection:
    """An established connection handed to the host: its description and its muxer."""

    info: ConnectionInfo
    muxed: MuxedConnection


class Upgrader(Protocol):
    """Turns raw connections into secured, multiplexed ones (``DefaultUpgrader``).

    Both calls close the raw connection on failure and bound their own time.
    """

    async def upgrade_outbound(
        self,
        raw: RawConnection,
        *,
        remote_peer: PeerId | None,
        role: Role = "initiator",
        memory: MemoryBudget | None = None,
    ) -> UpgradedConnection:
        """Upgrade a connection we dialed (``direction="outbound"``).

        Args:
            raw: the dialed connection.
            remote_peer: the peer expected at the other end (``None``: whoever proves an ID).
            role: ``"responder"`` runs the negotiations and handshake as the responding side
                (simultaneous open); the connection stays outbound.
            memory: the connection's memory budget (its resource scope), handed to a muxer
                that accounts its buffers (``MemoryBudgetedMuxer``).

        Raises:
            NegotiationError: no common security channel or muxer.
            SecurityError: the handshake failed, or ``PeerIdMismatch``.
            P2PTimeoutError: a stage of the upgrade ran past its deadline.
            UpgradeError: the connection broke during the upgrade.
        """
        ...

    async def upgrade_inbound(
        self, raw: RawConnection, *, role: Role = "responder", memory: MemoryBudget | None = None
    ) -> UpgradedConnection:
        """Upgrade a connection we accepted. Arguments and errors as ``upgrade_outbound``."""
        ...


class UpgradedListener(Protocol):
    """A listener of an ``UpgradedTransport``: accepted connections are already upgraded."""

    @property
    def multiaddrs(self) -> Sequence[Multiaddr]: ...

    async def accept(self) -> UpgradedConnection:
        """Wait for the next upgraded inbound connection. Connections whose upgrade fails are
        closed and skipped.

        Raises:
            anyio.ClosedResourceError: the listener was closed.
        """
        ...

    async def aclose(self) -> None:
        """Stop listening. Idempotent."""
        ...


@runtime_checkable
class UpgradedTransport(Protocol):
    """A transport that delivers secured, multiplexed connections (QUIC, a relay). The host
    tells it apart from a ``Transport`` by ``delivers_upgraded``; if it is also a ``Service``,
    the host starts it before the services and stops it after them.
    """

    @property
    def delivers_upgraded(self) -> Literal[True]: ...

    def can_dial(self, addr: Multiaddr) -> bool: ...

    def can_listen(self, addr: Multiaddr) -> bool: ...

    async def dial(
        self, addr: Multiaddr, *, remote_peer: PeerId | None, upgrader: Upgrader
    ) -> UpgradedConnection:
        """Establish a connection to ``addr``; ``upgrader`` is the host's, for transports
        that carry raw streams. The caller bounds the time.

        Raises:
            TransportError: the address could not be reached.
            SecurityError, NegotiationError, UpgradeError, P2PTimeoutError: as the upgrader.
        """
        ...

    async def listen(self, addr: Multiaddr, *, upgrader: Upgrader) -> UpgradedListener:
        """Start listening on ``addr``.

        Raises:
            TransportError: the address could not be bound.
        """
        ...


class DatagramSender(Protocol):
    """A listener that can send raw datagrams from its shared UDP socket (hole punching sends
    a few random bytes to open a NAT mapping from the port peers know)."""

    async def send_datagram(self, data: bytes, addr: Multiaddr) -> None:
        """Send ``data`` as one datagram to ``addr`` (``/ip4|ip6/../udp/..``).

        Raises:
            TransportError: ``addr`` is not a UDP address this socket can reach.
            OSError: the send failed.
        """
        ...


@runtime_checkable
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
