"""The datagram socket a QUIC endpoint sends and receives through: the ``DatagramSocket`` seam,
and ``UdpSocket``, the real one (a non-blocking UDP socket read in batches).

Another implementation (the simulator's datagram network, a socket shared with another UDP
protocol) is given to ``QuicTransport(socket_factory=...)``.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import anyio

from p2pstack.sync import FastLock

__all__ = [
    "Address",
    "DatagramSocket",
    "DatagramSocketFactory",
    "UdpSocket",
    "open_udp_socket",
]

log = logging.getLogger("transports.quic")

#: ``(host, port)``: what aioquic compares network paths by (IPv6 without flow info and scope).
Address = tuple[str, int]

#: Largest datagram read (UDP's limit; QUIC peers send at most their max_udp_payload_size).
_RECV_SIZE = 65535
#: Socket buffers asked for (the kernel may cap them at net.core.[rw]mem_max).
_SOCKET_BUFFER = 4 * 1024 * 1024


class DatagramSocket(Protocol):
    """A bound datagram socket (UDP-like: unreliable, unordered) as the QUIC endpoint uses it.

    Sending and receiving take batches: a receive wake-up reads every datagram already there
    (up to a limit) so that the connections they touch answer once per batch.
    """

    @property
    def local_address(self) -> Address:
        """The bound ``(host, port)`` (the real port when bound to port 0)."""
        ...

    async def send(self, datagrams: Sequence[tuple[bytes, Address]]) -> None:
        """Send datagrams in order, waiting for room in the socket buffer when it is full.
        Never raises for the network (a datagram that cannot be sent is dropped: QUIC's loss
        recovery copes) nor once the socket is closed."""
        ...

    def send_nowait(self, datagrams: Sequence[tuple[bytes, Address]]) -> None:
        """Send what fits now without waiting; drop the rest. Never raises."""
        ...

    async def receive(self, limit: int) -> list[tuple[bytes, Address]]:
        """Wait for datagrams and return between 1 and ``limit`` of them, with their sources.
        Cancel-safe: a cancelled wait loses nothing.

        Raises:
            anyio.ClosedResourceError: the socket was closed.
        """
        ...

    def close(self) -> None:
        """Close the socket: a waiting ``receive`` raises ``ClosedResourceError``. Idempotent."""
        ...


#: Binds a ``DatagramSocket`` on ``(host, port)`` (port 0: any free port); raises ``OSError``
#: or ``p2pstack.errors.TransportError`` when it cannot.
DatagramSocketFactory = Callable[[str, int], Awaitable[DatagramSocket]]


class UdpSocket:
    """A ``DatagramSocket`` on a real non-blocking UDP socket.

    Args:
        sock: a bound, non-blocking ``SOCK_DGRAM`` socket (from ``open_udp_socket``).
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._ipv6 = sock.family == socket.AF_INET6
        host, port = sock.getsockname()[:2]
        self.local_address: Address = (host, port)
        self._send_lock = FastLock()
        self.closed = False

    async def send(self, datagrams: Sequence[tuple[bytes, Address]]) -> None:
        sock = self.sock
        for data, addr in datagrams:
            while True:
                try:
                    sock.sendto(data, addr)
                    break
                except BlockingIOError:
                    async with self._send_lock:
                        await anyio.wait_writable(sock)
                except OSError as exc:  # unreachable, closed: QUIC's loss recovery copes
                    log.debug("sendto %s failed: %s", addr, exc)
                    if self.closed:
                        return
                    break

    def send_nowait(self, datagrams: Sequence[tuple[bytes, Address]]) -> None:
        if self.closed:
            return
        for data, addr in datagrams:
            try:
                self.sock.sendto(data, addr)
            except OSError:
                return

    async def receive(self, limit: int) -> list[tuple[bytes, Address]]:
        sock = self.sock
        batch: list[tuple[bytes, Address]] = []
        while not batch:
            if self.closed:
                raise anyio.ClosedResourceError
            try:
                await anyio.wait_readable(sock)
            except (anyio.ClosedResourceError, OSError):
                raise anyio.ClosedResourceError from None
            for _ in range(limit):
                try:
                    data, addr = sock.recvfrom(_RECV_SIZE)
                except BlockingIOError:
                    break
                except OSError:  # an ICMP error from an earlier send, or the socket closed
                    if self.closed:
                        raise anyio.ClosedResourceError from None
                    continue
                if self._ipv6:  # (host, port, flowinfo, scope): aioquic compares paths by equality
                    addr = addr[:2]
                batch.append((data, addr))
        return batch

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        anyio.notify_closing(self.sock)
        self.sock.close()


async def open_udp_socket(host: str, port: int) -> UdpSocket:
    """A non-blocking UDP socket bound to ``(host, port)`` (IPv6 sockets are IPv6-only); the
    default ``DatagramSocketFactory``.

    Raises:
        OSError: the address could not be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
        sock.setblocking(False)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return UdpSocket(sock)
