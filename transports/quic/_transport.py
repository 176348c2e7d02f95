"""The QUIC-v1 transport (``/ip4|ip6/<addr>/udp/<port>/quic-v1``,
https://github.com/libp2p/specs/blob/master/quic/README.md): an ``UpgradedTransport`` whose
connections are authenticated by the libp2p TLS certificate inside QUIC's handshake and whose
streams are QUIC's own (no security or muxer negotiation on top).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Literal

import anyio
from anyio.abc import TaskGroup
from multiaddr import Multiaddr
from multiaddr.protocols import P_IP4, P_IP6, P_P2P, P_QUIC1, P_UDP

from p2pstack.errors import P2PError, P2PTimeoutError, TransportError
from p2pstack.interfaces import ConnectionInfo, Direction, UpgradedConnection
from transports.quic._config import QuicConfig

if TYPE_CHECKING:
    from p2pstack.host import Host
    from p2pstack.identity import CertifiedKey, Identity, PeerId
    from p2pstack.interfaces import Upgrader
    from transports.quic._connection import QuicMuxedConnection
    from transports.quic._endpoint import QuicEndpoint
    from transports.quic._socket import Address, DatagramSocket, DatagramSocketFactory

# The modules below import aioquic (a few hundred milliseconds): they are loaded when a
# transport starts, not when this module is imported.

__all__ = ["QuicListener", "QuicTransport", "parse_quic_multiaddr"]

log = logging.getLogger("transports.quic")

#: What ``ConnectionInfo`` reports: the libp2p TLS handshake inside QUIC, QUIC's own streams.
SECURITY = "/tls/1.0.0"
MUXER = "quic"
TRANSPORT = "quic-v1"


def parse_quic_multiaddr(addr: Multiaddr) -> Address | None:
    """``(host, port)`` of ``/ip4|ip6/<host>/udp/<port>/quic-v1[/p2p/<id>]``, else ``None``."""
    items = addr.items()
    if len(items) == 4 and items[3][0].code == P_P2P:
        items = items[:3]
    if len(items) != 3:
        return None
    (host_proto, host), (udp, port), (quic, _) = items
    if host_proto.code not in (P_IP4, P_IP6) or udp.code != P_UDP or quic.code != P_QUIC1:
        return None
    if host is None or port is None:
        return None
    return str(host), int(port)


def _multiaddr(host: str, port: int) -> Multiaddr:
    host = host.split("%", 1)[0]
    family = "ip6" if ":" in host else "ip4"
    return Multiaddr(f"/{family}/{host}/udp/{port}/quic-v1")


def _certificate(identity: Identity, random_bytes: Callable[[int], bytes] | None) -> CertifiedKey:
    """Our certificate (aioquic itself is loaded at the first listen or dial)."""
    from p2pstack.identity import make_certificate

    return make_certificate(identity.private_key, random_bytes=random_bytes)


def _upgraded(
    conn: QuicMuxedConnection, endpoint: QuicEndpoint, direction: Direction
) -> UpgradedConnection:
    assert conn.remote_peer is not None and conn.remote_public_key is not None
    info = ConnectionInfo(
        remote_peer=conn.remote_peer,
        remote_public_key=conn.remote_public_key,
        local_addr=_multiaddr(endpoint.host, endpoint.port),
        remote_addr=_multiaddr(*conn.remote_addr[:2]),
        security=SECURITY,
        muxer=MUXER,
        direction=direction,
        transport=TRANSPORT,
    )
    return UpgradedConnection(info=info, muxed=conn)


class QuicListener:
    """An ``UpgradedListener`` on one UDP socket: yields connections whose handshake and
    certificate check succeeded; at most ``QuicConfig.accept_backlog`` wait for ``accept``."""

    def __init__(
        self, endpoint: QuicEndpoint, backlog: int, on_close: Callable[[QuicEndpoint], None]
    ) -> None:
        self.endpoint = endpoint
        self._on_close = on_close
        self._closed = False
        self._send, self._receive = anyio.create_memory_object_stream["QuicMuxedConnection"](
            backlog
        )

    @property
    def multiaddrs(self) -> Sequence[Multiaddr]:
        """The bound address (port 0 replaced by the real port)."""
        return [_multiaddr(self.endpoint.host, self.endpoint.port)]

    def deliver(self, conn: QuicMuxedConnection) -> None:
        """Queue an authenticated inbound connection; close it if the backlog is full."""
        try:
            self._send.send_nowait(conn)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            conn.close_now(0x2, "accept backlog full", None)  # RFC 9000 CONNECTION_REFUSED

    async def accept(self) -> UpgradedConnection:
        """Wait for the next authenticated inbound connection.

        Raises:
            anyio.ClosedResourceError: the listener was closed.
        """
        while True:
            try:
                conn = await self._receive.receive()
            except anyio.EndOfStream:
                raise anyio.ClosedResourceError from None
            if not conn.is_closed:
                return _upgraded(conn, self.endpoint, "inbound")

    async def aclose(self) -> None:
        """Stop accepting new connections. The socket stays open while connections made on it
        (accepted, or dialed from this port) live. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.endpoint.accept_inbound = None
        self._send.close()
        with contextlib.suppress(anyio.WouldBlock, anyio.EndOfStream):
            while True:
                self._receive.receive_nowait().close_now(0, "listener closed", None)
        self._receive.close()
        self._on_close(self.endpoint)


class QuicTransport:
    """QUIC-v1 over UDP with the libp2p TLS identity; an ``UpgradedTransport`` and a
    ``Service`` (the host starts it and gives it its identity).

    Outside a host, use it as ``async with QuicTransport(identity=...) as transport``.

    Args:
        identity: the host identity the certificate is made for (default: the host's).
        config: timeouts, windows and limits.
        socket_factory: binds the datagram sockets the connections run on; the default opens
            real UDP sockets (``open_udp_socket``). The simulator passes its own.
        random_bytes: for simulations only: makes the certificate key (Ed25519) from these
            bytes, so that handshakes have the same size in every run of a seed
            (``make_certificate``); the default is a fresh ECDSA P-256 key.
    """

    delivers_upgraded: Literal[True] = True

    def __init__(
        self,
        *,
        identity: Identity | None = None,
        config: QuicConfig | None = None,
        socket_factory: DatagramSocketFactory | None = None,
        random_bytes: Callable[[int], bytes] | None = None,
    ) -> None:
        self.config = config or QuicConfig()
        self._socket_factory = socket_factory
        self._random_bytes = random_bytes
        self._identity = identity
        self._key: CertifiedKey | None = None
        self._tg: TaskGroup | None = None
        self._endpoints: list[QuicEndpoint] = []
        self._dial_endpoints: dict[int, QuicEndpoint] = {}
        self._stack: contextlib.AsyncExitStack | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> QuicTransport:
        if self._identity is None:
            raise TransportError("QuicTransport needs an identity outside a host")
        stack = contextlib.AsyncExitStack()
        self._tg = await stack.enter_async_context(anyio.create_task_group())
        self._stack = stack
        self._key = _certificate(self._identity, self._random_bytes)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._shutdown()
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)

    async def start(self, host: Host) -> None:
        """Start as the host's transport: take its identity, run sockets in its task group."""
        if self._identity is None:
            self._identity = host.identity
        self._key = _certificate(self._identity, self._random_bytes)
        ready = anyio.Event()
        host.start_soon(self._serve, ready, name="quic transport")
        await ready.wait()

    async def stop(self) -> None:
        """Close every connection and socket."""
        self._shutdown()

    async def _serve(self, ready: anyio.Event) -> None:
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                ready.set()
                await anyio.sleep_forever()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        for endpoint in self._endpoints:
            endpoint.close()
        self._endpoints.clear()
        self._dial_endpoints.clear()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
            self._tg = None

    # -- Transport ------------------------------------------------------------------------------

    def can_dial(self, addr: Multiaddr) -> bool:
        """Whether ``addr`` is ``/ip4|ip6/../udp/../quic-v1``."""
        return parse_quic_multiaddr(addr) is not None

    def can_listen(self, addr: Multiaddr) -> bool:
        """Whether ``addr`` is ``/ip4|ip6/../udp/../quic-v1``; port 0 picks a free port."""
        return parse_quic_multiaddr(addr) is not None

    async def listen(self, addr: Multiaddr, *, upgrader: Upgrader | None = None) -> QuicListener:
        """Bind a UDP socket on ``addr`` and accept QUIC connections on it.

        Raises:
            TransportError: not a quic-v1 address, the transport is not started, or binding
                failed.
        """
        target = parse_quic_multiaddr(addr)
        if target is None:
            raise TransportError(f"not a quic-v1 address: {addr}")
        sock = await self._open_socket(*target, what=f"listen on {addr}")
        endpoint = self._add_endpoint(sock)
        listener = QuicListener(endpoint, self.config.accept_backlog, self._listener_closed)
        endpoint.accept_inbound = lambda dcid, retry_scid, peer: self._inbound(
            endpoint, listener, dcid, retry_scid, peer
        )
        return listener

    async def dial(
        self, addr: Multiaddr, *, remote_peer: PeerId | None, upgrader: Upgrader | None = None
    ) -> UpgradedConnection:
        """Connect to ``addr`` and authenticate the peer (``remote_peer`` if given).

        Raises:
            TransportError: not a quic-v1 address, or no socket to send from.
            HandshakeError, CertificateError, PeerIdMismatch: the handshake failed.
            P2PTimeoutError: it took longer than ``QuicConfig.handshake_timeout``.
        """
        target = parse_quic_multiaddr(addr)
        if target is None:
            raise TransportError(f"not a quic-v1 address: {addr}")
        from p2pstack.sync import loop_clock
        from transports.quic._connection import QuicMuxedConnection
        from transports.quic._engine import Libp2pQuic, make_configuration

        endpoint = await self._dial_endpoint(target[0])
        quic = Libp2pQuic(
            configuration=make_configuration(self.config, self._certified(), is_client=True),
            config=self.config,
        )
        conn = QuicMuxedConnection(quic, endpoint, self.config, is_client=True)
        conn.expected_peer = remote_peer
        conn.remote_addr = target
        conn.add_cid(quic.host_cid)
        quic.connect(target, now=loop_clock()())
        try:
            with anyio.fail_after(self.config.handshake_timeout):
                await conn.handshake()
        except TimeoutError:
            conn.close_now(0, "handshake timeout", None)
            raise P2PTimeoutError(f"QUIC handshake with {addr} timed out") from None
        except BaseException:
            conn.close_now(0, "dial failed", None)
            raise
        return _upgraded(conn, endpoint, "outbound")

    # -- internals ------------------------------------------------------------------------------

    def _listener_closed(self, endpoint: QuicEndpoint) -> None:
        if not endpoint.connections and endpoint in self._endpoints:
            self._endpoints.remove(endpoint)
            endpoint.close()

    def _certified(self) -> CertifiedKey:
        if self._key is None or self._tg is None or self._identity is None:
            raise TransportError("QuicTransport is not started (use it in a host or `async with`)")
        # One certificate serves every connection for half its lifetime, then a new one.
        certificate = self._key.certificate
        lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
        if datetime.datetime.now(datetime.UTC) > certificate.not_valid_before_utc + lifetime / 2:
            self._key = _certificate(self._identity, self._random_bytes)
        return self._key

    async def _open_socket(self, host: str, port: int, *, what: str) -> DatagramSocket:
        factory = self._socket_factory
        if factory is None:
            from transports.quic._socket import open_udp_socket

            factory = open_udp_socket
        try:
            return await factory(host, port)
        except (OSError, TransportError) as exc:
            raise TransportError(f"cannot {what}: {exc}") from exc

    def _add_endpoint(self, sock: DatagramSocket) -> QuicEndpoint:
        from transports.quic._endpoint import QuicEndpoint

        if self._tg is None:
            sock.close()
            raise TransportError("QuicTransport is not started (use it in a host or `async with`)")
        endpoint = QuicEndpoint(sock, max_half_open=self.config.max_half_open)
        self._endpoints.append(endpoint)
        self._tg.start_soon(endpoint.serve, self._tg, name=f"quic socket {endpoint.port}")
        return endpoint

    async def _dial_endpoint(self, host: str) -> QuicEndpoint:
        """A listening socket of the target's family (so the peer sees our listen port), else
        one ephemeral socket per family."""
        ipv6 = ":" in host
        loopback = host == "::1" or host.startswith("127.")
        for endpoint in self._endpoints:
            if endpoint.accept_inbound is None or (":" in endpoint.host) != ipv6:
                continue
            bound_loopback = endpoint.host == "::1" or endpoint.host.startswith("127.")
            if endpoint.host in ("0.0.0.0", "::") or bound_loopback == loopback:
                return endpoint
        key = 6 if ipv6 else 4
        existing = self._dial_endpoints.get(key)
        if existing is not None and not existing.closed:
            return existing
        sock = await self._open_socket("::" if ipv6 else "0.0.0.0", 0, what="open a UDP socket")
        endpoint = self._dial_endpoints[key] = self._add_endpoint(sock)
        return endpoint

    def _inbound(
        self,
        endpoint: QuicEndpoint,
        listener: QuicListener,
        dcid: bytes,
        retry_scid: bytes | None,
        peer: Address,
    ) -> QuicMuxedConnection:
        from transports.quic._connection import QuicMuxedConnection
        from transports.quic._engine import Libp2pQuic, make_configuration

        quic = Libp2pQuic(
            configuration=make_configuration(self.config, self._certified(), is_client=False),
            config=self.config,
            original_destination_connection_id=dcid,
            retry_source_connection_id=retry_scid,
        )
        conn = QuicMuxedConnection(quic, endpoint, self.config, is_client=False)
        conn.remote_addr = peer
        endpoint.half_open += 1
        assert self._tg is not None
        self._tg.start_soon(self._handshake_inbound, endpoint, listener, conn)
        return conn

    async def _handshake_inbound(
        self, endpoint: QuicEndpoint, listener: QuicListener, conn: QuicMuxedConnection
    ) -> None:
        try:
            with anyio.move_on_after(self.config.handshake_timeout):
                await conn.handshake()
        except P2PError as exc:
            log.debug("inbound QUIC handshake from %s failed: %s", conn.remote_addr, exc)
        finally:
            endpoint.half_open -= 1
        if conn.authenticated and not conn.is_closed:
            listener.deliver(conn)
        else:
            conn.close_now(0, "handshake failed", None)
