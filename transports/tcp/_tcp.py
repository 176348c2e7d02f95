"""The TCP transport: ``/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>`` on anyio sockets
(https://github.com/libp2p/specs/blob/master/addressing/README.md#multiaddr-basics).

Connections are plain byte streams; security and multiplexing are added by the upgrader.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence

import anyio
import attrs
from anyio.abc import SocketAttribute, SocketListener, SocketStream
from multiaddr import Multiaddr
from multiaddr.protocols import P_DNS, P_DNS4, P_DNS6, P_IP4, P_IP6, P_P2P, P_TCP

from p2pstack.errors import TransportError
from p2pstack.interfaces import Buffer

__all__ = ["TcpConnection", "TcpListener", "TcpTransport"]

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


class TcpListener:
    """A ``Listener`` on one bound TCP socket."""

    def __init__(self, listener: SocketListener, nodelay: bool) -> None:
        self._listener = listener
        self._nodelay = nodelay
        self._addrs = (_to_multiaddr(listener.extra(SocketAttribute.local_address)),)
        # anyio allows one accept() at a time per socket; queue concurrent callers instead.
        self._accept_lock = anyio.Lock()
        self._closed = False

    @property
    def multiaddrs(self) -> Sequence[Multiaddr]:
        return self._addrs

    async def accept(self) -> TcpConnection:
        """Wait for the next inbound connection.

        Raises:
            anyio.ClosedResourceError: the listener was closed (also wakes a pending accept).
        """
        async with self._accept_lock:
            if self._closed:
                raise anyio.ClosedResourceError
            stream = await self._listener.accept()
        try:
            _set_nodelay(stream, self._nodelay)
            return TcpConnection(stream)
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise

    async def aclose(self) -> None:
        """Stop accepting; connections already accepted stay open. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._listener.aclose()


@attrs.frozen(kw_only=True)
class TcpTransport:
    """Dials and listens on TCP multiaddrs.

    Attributes:
        dial_timeout: seconds a dial (name resolution and connect) may take.
        nodelay: set ``TCP_NODELAY`` on every socket (libp2p frames are small and latency
            bound; Nagle's algorithm would delay them).
        backlog: the kernel's accept queue length for listeners.
    """

    dial_timeout: float = 10.0
    nodelay: bool = True
    backlog: int = 128

    def can_dial(self, addr: Multiaddr) -> bool:
        """Whether ``addr`` is ``/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>`` (``/p2p/<id>`` ok)."""
        return _parse(addr, listening=False) is not None

    def can_listen(self, addr: Multiaddr) -> bool:
        """Whether ``addr`` is ``/ip4|ip6/<ip>/tcp/<port>``."""
        return _parse(addr, listening=True) is not None

    async def dial(self, addr: Multiaddr) -> TcpConnection:
        """Connect to ``addr``.

        Raises:
            TransportError: the address is not a TCP address, cannot be resolved, refused the
                connection, is unreachable, or did not answer within ``dial_timeout``.
        """
        parsed = _parse(addr, listening=False)
        if parsed is None:
            raise TransportError(f"not a TCP address: {addr}")
        code, host, port = parsed
        try:
            with anyio.fail_after(self.dial_timeout):
                if code in _DNS_FAMILY:
                    host = await _resolve(host, port, _DNS_FAMILY[code])
                stream = await anyio.connect_tcp(host, port)
        except TimeoutError:
            raise TransportError(f"dial {addr} timed out after {self.dial_timeout} s") from None
        except (OSError, anyio.BrokenResourceError) as exc:
            raise TransportError(f"dial {addr} failed: {_os_reason(exc)}") from exc
        try:
            _set_nodelay(stream, self.nodelay)
            return TcpConnection(stream)
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise

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
            )
        except OSError as exc:
            raise TransportError(f"cannot listen on {addr}: {exc}") from exc
        # One literal IP address binds exactly one socket listener.
        (listener,) = multi.listeners
        if not isinstance(listener, SocketListener):  # anyio always returns one for TCP
            await multi.aclose()
            raise TransportError(f"cannot listen on {addr}: unexpected listener {listener!r}")
        return TcpListener(listener, self.nodelay)


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
