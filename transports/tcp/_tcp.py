"""The TCP transport: ``/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>`` on anyio sockets
(https://github.com/libp2p/specs/blob/master/addressing/README.md#multiaddr-basics).

Connections are plain byte streams; security and multiplexing are added by the upgrader.

Hostile input: a socket that dies between the kernel's accept and our first look at it (a port
scanner's connect + RST) is closed and counted, never raised out of ``accept``. With
``port_reuse`` dials leave from the listen port (``SO_REUSEADDR`` + ``SO_REUSEPORT``), so the
peer observes the address it could dial back, as TCP hole punching needs.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Callable, Sequence

import anyio
import attrs
from anyio import TypedAttributeLookupError
from anyio.abc import SocketAttribute, SocketListener, SocketStream
from multiaddr import Multiaddr
from multiaddr.protocols import P_DNS, P_DNS4, P_DNS6, P_IP4, P_IP6, P_P2P, P_TCP

from p2pstack.errors import TransportError
from p2pstack.interfaces import Buffer

__all__ = ["TcpConnection", "TcpListener", "TcpListenerStatistics", "TcpTransport"]

#: accept() errors that mean "out of descriptors or kernel memory": back off, then retry.
_RESOURCE_ERRNOS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))
#: Seconds to wait before accepting again after a resource error.
_ACCEPT_BACKOFF = 0.1
#: What looking at a socket that the peer already reset can raise.
_DEAD_SOCKET_ERRORS = (OSError, TypedAttributeLookupError)

_log = logging.getLogger(__name__)

_HOST_CODES = frozenset((P_IP4, P_IP6, P_DNS, P_DNS4, P_DNS6))
_DNS_FAMILY = {P_DNS4: socket.AF_INET, P_DNS6: socket.AF_INET6}


def _parse(addr: Multiaddr, *, listening: bool) -> tuple[int, str, int] | None:
    """``(host protocol code, host, port)`` of a TCP multiaddr, or ``None`` if it is not one.

    A trailing ``/p2p/<id>`` is ignored; any other extra component (``/ws``, ``/tls``...) means
    another transport. Only IP addresses can be listened on.
    """
    items = addr.items()
    if len(items) == 3 and items[2][0].code == P_P2P:
        items = items[:2]
    if len(items) != 2:
        return None
    (host_proto, host), (port_proto, port) = items
    if host_proto.code not in _HOST_CODES or port_proto.code != P_TCP:
        return None
    if host is None or port is None:
        return None
    if listening and host_proto.code not in (P_IP4, P_IP6):
        return None
    return host_proto.code, host, int(port)


def _to_multiaddr(sockaddr: object) -> Multiaddr:
    """The multiaddr of an address as anyio reports it (``(host, port, ...)``)."""
    if not isinstance(sockaddr, tuple) or len(sockaddr) < 2:
        raise TransportError(f"not an IP socket address: {sockaddr!r}")
    # Link-local IPv6 addresses come back as "fe80::1%eth0"; /ip6 has no room for the zone.
    host = str(sockaddr[0]).split("%", 1)[0]
    family = "ip6" if ":" in host else "ip4"
    return Multiaddr(f"/{family}/{host}/tcp/{int(sockaddr[1])}")


def _set_nodelay(stream: SocketStream, nodelay: bool) -> None:
    sock = stream.extra(SocketAttribute.raw_socket)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if nodelay else 0)


class TcpConnection:
    """A ``RawConnection`` over one TCP socket."""

    def __init__(self, stream: SocketStream) -> None:
        """Args:
        stream: a connected anyio socket stream; the connection owns it from now on.
        """
        self._stream = stream
        self._local = _to_multiaddr(stream.extra(SocketAttribute.local_address))
        self._remote = _to_multiaddr(stream.extra(SocketAttribute.remote_address))
        self._eof_sent = False

    @property
    def local_multiaddr(self) -> Multiaddr:
        return self._local

    @property
    def remote_multiaddr(self) -> Multiaddr:
        return self._remote

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Receive 1 to ``max_bytes`` bytes.

        Raises:
            anyio.EndOfStream: the peer half-closed or closed.
            anyio.BrokenResourceError: the socket failed.
            anyio.ClosedResourceError: we closed the connection.
        """
        try:
            return await self._stream.receive(max_bytes)
        except OSError as exc:
            raise anyio.BrokenResourceError from exc

    async def send(self, item: Buffer) -> None:
        """Send all of ``item``, waiting while the kernel's send buffer is full.

        Raises:
            anyio.ClosedResourceError: after ``send_eof`` or ``aclose``.
            anyio.BrokenResourceError: the socket failed.
        """
        if self._eof_sent:
            raise anyio.ClosedResourceError
        try:
            # anyio types ``send`` as taking ``bytes``, but its socket streams write any buffer
            # (asyncio's transport copies what it cannot send at once, trio sends it all).
            await self._stream.send(item)  # type: ignore[arg-type]
        except OSError as exc:
            raise anyio.BrokenResourceError from exc

    async def send_eof(self) -> None:
        """Half-close: the peer reads end of stream; we may still receive."""
        if self._eof_sent:
            return
        self._eof_sent = True
        try:
            await self._stream.send_eof()
        except OSError as exc:
            raise anyio.BrokenResourceError from exc

    async def aclose(self) -> None:
        """Close both directions. Never raises for a closed or broken socket."""
        self._eof_sent = True
        try:
            await self._stream.aclose()
        except (OSError, anyio.BrokenResourceError):
            pass


@attrs.frozen(kw_only=True)
class TcpListenerStatistics:
    """A snapshot of one listener's counters.

    Attributes:
        accepted: connections handed to the caller of ``accept``.
        dropped: sockets closed inside ``accept`` because they died before they could be used
            (reset right after connecting, or an accept error such as ``ECONNABORTED``).
        resource_errors: accept attempts that failed for lack of descriptors or memory.
    """

    accepted: int
    dropped: int
    resource_errors: int


class TcpListener:
    """A ``Listener`` on one bound TCP socket."""

    def __init__(
        self,
        listener: SocketListener,
        nodelay: bool,
        on_close: Callable[[TcpListener], None] | None = None,
    ) -> None:
        """Args:
        listener: the bound anyio socket listener; the ``TcpListener`` owns it.
        nodelay: set ``TCP_NODELAY`` on accepted sockets.
        on_close: called once when the listener closes (the transport forgets its port).
        """
        self._listener = listener
        self._nodelay = nodelay
        self._on_close = on_close
        self._addrs = (_to_multiaddr(listener.extra(SocketAttribute.local_address)),)
        # anyio allows one accept() at a time per socket; queue concurrent callers instead.
        self._accept_lock = anyio.Lock()
        self._closed = False
        self._accepted = 0
        self._dropped = 0
        self._resource_errors = 0

    @property
    def multiaddrs(self) -> Sequence[Multiaddr]:
        return self._addrs

    @property
    def bound(self) -> tuple[str, int]:
        """The (host, port) the socket is bound to."""
        sockaddr = self._listener.extra(SocketAttribute.local_address)
        return str(sockaddr[0]), int(sockaddr[1])

    def statistics(self) -> TcpListenerStatistics:
        """Counters of accepted, dropped and failed connection attempts."""
        return TcpListenerStatistics(
            accepted=self._accepted, dropped=self._dropped, resource_errors=self._resource_errors
        )

    async def accept(self) -> TcpConnection:
        """Wait for the next usable inbound connection.

        Sockets that are dead on arrival are closed and counted (``statistics().dropped``);
        when the process is out of descriptors or memory, accept backs off and retries. So no
        ``OSError`` escapes: one peer's reset cannot stop the listener.

        Raises:
            anyio.ClosedResourceError: the listener was closed (also wakes a pending accept).
        """
        async with self._accept_lock:
            while True:
                if self._closed:
                    raise anyio.ClosedResourceError
                try:
                    stream = await self._listener.accept()
                except OSError as exc:
                    await self._accept_failed(exc)
                    continue
                conn = await self._wrap(stream)
                if conn is not None:
                    self._accepted += 1
                    return conn

    async def _accept_failed(self, exc: OSError) -> None:
        if exc.errno in _RESOURCE_ERRNOS:
            self._resource_errors += 1
            _log.warning("accept on %s failed: %s; retrying", self._addrs[0], exc)
            await anyio.sleep(_ACCEPT_BACKOFF)
        else:  # ECONNABORTED, EPROTO...: that one connection is gone, the listener is fine
            self._dropped += 1

    async def _wrap(self, stream: SocketStream) -> TcpConnection | None:
        """The connection over an accepted socket, or ``None`` (socket closed) if it died."""
        try:
            _set_nodelay(stream, self._nodelay)
            return TcpConnection(stream)
        except _DEAD_SOCKET_ERRORS as exc:
            self._dropped += 1
            _log.debug("dropping inbound socket on %s: %r", self._addrs[0], exc)
            await anyio.aclose_forcefully(stream)
            return None
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise

    async def aclose(self) -> None:
        """Stop accepting; connections already accepted stay open. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._on_close is not None:
            self._on_close(self)
        await self._listener.aclose()


@attrs.frozen(kw_only=True)
class TcpTransport:
    """Dials and listens on TCP multiaddrs.

    Attributes:
        dial_timeout: seconds a dial (name resolution and connect) may take.
        nodelay: set ``TCP_NODELAY`` on every socket (libp2p frames are small and latency
            bound; Nagle's algorithm would delay them).
        backlog: the kernel's accept queue length for listeners.
        port_reuse: listeners set ``SO_REUSEADDR`` and ``SO_REUSEPORT``, and dials bind the
            port of a listener of the same address family, so that the peer sees (and can
            dial back) our listen address: the prerequisite of TCP hole punching. A dial whose
            bind fails (that 4-tuple is already in use) falls back to an ephemeral port.
    """

    dial_timeout: float = 10.0
    nodelay: bool = True
    backlog: int = 128
    port_reuse: bool = False
    #: Listeners opened with ``port_reuse``, whose (host, port) dials may bind.
    _reuse_listeners: list[TcpListener] = attrs.field(
        factory=list, init=False, eq=False, repr=False
    )

    def can_dial(self, addr: Multiaddr) -> bool:
        """Whether ``addr`` is ``/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>`` (``/p2p/<id>`` ok)."""
        return _parse(addr, listening=False) is not None

    def can_listen(self, addr: Multiaddr) -> bool:
        """Whether ``addr`` is ``/ip4|ip6/<ip>/tcp/<port>``."""
        return _parse(addr, listening=True) is not None

    async def dial(self, addr: Multiaddr) -> TcpConnection:
        """Connect to ``addr`` (from a listen port if ``port_reuse`` and one is open).

        Raises:
            TransportError: the address is not a TCP address, cannot be resolved, refused the
                connection, is unreachable, reset it at once, or did not answer within
                ``dial_timeout``.
        """
        parsed = _parse(addr, listening=False)
        if parsed is None:
            raise TransportError(f"not a TCP address: {addr}")
        code, host, port = parsed
        try:
            with anyio.fail_after(self.dial_timeout):
                if code in _DNS_FAMILY:
                    host = await _resolve(host, port, _DNS_FAMILY[code])
                stream = await self._connect(host, port)
        except TimeoutError:
            raise TransportError(f"dial {addr} timed out after {self.dial_timeout} s") from None
        except (OSError, anyio.BrokenResourceError) as exc:
            raise TransportError(f"dial {addr} failed: {_os_reason(exc)}") from exc
        try:
            _set_nodelay(stream, self.nodelay)
            return TcpConnection(stream)
        except _DEAD_SOCKET_ERRORS as exc:
            await anyio.aclose_forcefully(stream)
            raise TransportError(f"dial {addr} failed: the connection died at once") from exc
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise

    async def _connect(self, host: str, port: int) -> SocketStream:
        local = self._reuse_address(host)
        if local is not None:
            try:
                return await _connect_from(local, host, port)
            except OSError as exc:
                if exc.errno not in (errno.EADDRNOTAVAIL, errno.EADDRINUSE):
                    raise
                _log.debug("dial from %s to %s:%s: %s; using a fresh port", local, host, port, exc)
        return await anyio.connect_tcp(host, port)

    def _reuse_address(self, remote_host: str) -> tuple[str, int] | None:
        """The (host, port) of a listener a dial to ``remote_host`` can leave from."""
        remote_v6 = ":" in remote_host
        for listener in self._reuse_listeners:
            host, port = listener.bound
            if (":" in host) == remote_v6:
                return host, port
        return None

    async def listen(self, addr: Multiaddr) -> TcpListener:
        """Listen on ``addr``; port 0 picks a free port (see ``Listener.multiaddrs``).

        Raises:
            TransportError: the address is not an IP TCP address or cannot be bound.
        """
        parsed = _parse(addr, listening=True)
        if parsed is None:
            raise TransportError(f"cannot listen on {addr}: not an /ip4 or /ip6 TCP address")
        code, host, port = parsed
        try:
            multi = await anyio.create_tcp_listener(
                local_host=host,
                local_port=port,
                family=socket.AF_INET if code == P_IP4 else socket.AF_INET6,
                backlog=self.backlog,
                reuse_port=self.port_reuse,
            )
        except OSError as exc:
            raise TransportError(f"cannot listen on {addr}: {exc}") from exc
        # One literal IP address binds exactly one socket listener.
        (listener,) = multi.listeners
        if not isinstance(listener, SocketListener):  # anyio always returns one for TCP
            await multi.aclose()
            raise TransportError(f"cannot listen on {addr}: unexpected listener {listener!r}")
        if not self.port_reuse:
            return TcpListener(listener, self.nodelay)
        tcp = TcpListener(listener, self.nodelay, on_close=self._reuse_listeners.remove)
        self._reuse_listeners.append(tcp)
        return tcp


async def _connect_from(local: tuple[str, int], host: str, port: int) -> SocketStream:
    """Connect to ``(host, port)`` from a socket bound to ``local`` with address reuse."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(local)
        sock.setblocking(False)
        err = sock.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            raise OSError(err, os.strerror(err))
        await anyio.wait_writable(sock)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
        if sock.getsockname()[:2] == sock.getpeername()[:2]:
            # Dialing our own listen address from its port connects the socket to itself.
            raise OSError(errno.EADDRINUSE, "the dial connected to itself")
        return await SocketStream.from_socket(sock)
    except BaseException:
        sock.close()
        raise


async def _resolve(name: str, port: int, family: socket.AddressFamily) -> str:
    """The first address of ``family`` that ``name`` resolves to."""
    try:
        infos = await anyio.getaddrinfo(name, port, family=family, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TransportError(f"cannot resolve {name}: {exc}") from exc
    if not infos:
        raise TransportError(f"{name} has no address of the requested family")
    return str(infos[0][4][0])


def _os_reason(exc: BaseException) -> str:
    """The most specific reason in an OSError chain: anyio wraps each attempt's error (such as
    "connection refused") in a generic "All connection attempts failed"."""
    while isinstance(exc.__cause__, OSError):
        exc = exc.__cause__
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__
