"""One UDP socket shared by every QUIC connection on a local address: the receive task reads
datagrams in batches and routes them by destination connection ID (RFC 9000 section 5.2);
Initial packets for unknown IDs go through ``InitialGate`` (Version Negotiation, Retry under
load, a bound on half-open handshakes).
Dials from the listening port reuse the same socket, so peers see the address they can dial
back (the basis of hole punching).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from p2pstack.sync import FastLock, loop_clock
from transports.quic._admission import InitialGate, Reply
from transports.quic._connection import QuicMuxedConnection
from transports.quic._engine import CID_LENGTH

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

__all__ = ["QuicEndpoint"]

log = logging.getLogger("transports.quic")

#: Datagrams read per wake-up before the connections they touched send their answers.
_BATCH = 64
#: Largest datagram read (UDP's limit; QUIC peers send at most their max_udp_payload_size).
_RECV_SIZE = 65535
#: Socket buffers asked for (the kernel may cap them at net.core.[rw]mem_max).
_SOCKET_BUFFER = 4 * 1024 * 1024

Address = tuple[str, int]
#: Makes the server connection for an admitted Initial: (original destination CID, Retry
#: source CID or None, peer address).
InboundFactory = Callable[[bytes, bytes | None, Address], QuicMuxedConnection]


def open_udp_socket(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``(host, port)`` (IPv6 sockets are IPv6-only).

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
    return sock


class QuicEndpoint:
    """A bound UDP socket and the connections on it.

    Args:
        sock: from ``open_udp_socket``.
        max_half_open: server handshakes in progress at once (``InitialGate``).
    """

    def __init__(self, sock: socket.socket, *, max_half_open: int) -> None:
        self.sock = sock
        self.family = sock.family
        self.host, self.port = sock.getsockname()[:2]
        self.gate = InitialGate(max_half_open=max_half_open)
        self._conns: dict[bytes, QuicMuxedConnection] = {}
        self._send_lock = FastLock()
        self.half_open = 0
        self.accept_inbound: InboundFactory | None = None
        self.closed = False
        self.dropped = 0  # datagrams that matched no connection

    @property
    def connections(self) -> set[QuicMuxedConnection]:
        """The live connections on this socket."""
        return set(self._conns.values())

    # -- DatagramSink ------------------------------------------------------------------------

    def register(self, cid: bytes, conn: QuicMuxedConnection) -> None:
        """Route datagrams addressed to ``cid`` to ``conn``."""
        self._conns[cid] = conn

    def unregister(self, cid: bytes) -> None:
        """Stop routing ``cid``. Idempotent."""
        self._conns.pop(cid, None)

    async def send(self, datagrams: list[tuple[bytes, Address]]) -> None:
        """Send datagrams, waiting for room in the socket buffer when it is full."""
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

    def send_nowait(self, datagrams: list[tuple[bytes, Address]]) -> None:
        """Send what fits now (a closing connection's last datagrams); drop the rest."""
        if self.closed:
            return
        for data, addr in datagrams:
            try:
                self.sock.sendto(data, addr)
            except OSError:
                return

    # -- receiving ----------------------------------------------------------------------------

    async def serve(self, tg: TaskGroup) -> None:
        """Read and route datagrams until the socket is closed."""
        sock = self.sock
        clock = loop_clock()
        ipv6 = self.family == socket.AF_INET6
        touched: dict[QuicMuxedConnection, None] = {}
        while not self.closed:
            try:
                await anyio.wait_readable(sock)
            except (anyio.ClosedResourceError, OSError):
                return
            now = clock()
            for _ in range(_BATCH):
                try:
                    data, addr = sock.recvfrom(_RECV_SIZE)
                except BlockingIOError:
                    break
                except OSError:  # an ICMP error from an earlier send, or the socket closed
                    if self.closed:
                        return
                    continue
                if ipv6:  # (host, port, flowinfo, scope): aioquic compares paths by equality
                    addr = addr[:2]
                conn = self._route(data, addr, now)
                if conn is not None:
                    touched[conn] = None
            for conn in touched:
                await conn.after_receive()
            touched.clear()

    def _route(self, data: bytes, addr: Address, now: float) -> QuicMuxedConnection | None:
        if not data:
            return None
        first = data[0]
        if first & 0x80:  # long header: version, then a length-prefixed destination CID
            if len(data) < 7:
                return None
            dcid = data[6 : 6 + data[5]]
        else:
            dcid = data[1 : 1 + CID_LENGTH]
        conn = self._conns.get(dcid)
        if conn is not None:
            conn.datagram_received(data, addr, now)
            return conn
        conn = self._new_inbound(data, addr, now)
        if conn is None:
            self.dropped += 1
            return None
        conn.datagram_received(data, addr, now)
        if not conn.quic.initial_decrypted:
            # Nothing in it decrypted (a forged or corrupted Initial): keep no state for it.
            conn.close_now(0, "", None, silent=True)
            self.dropped += 1
            return None
        return conn

    def _new_inbound(self, data: bytes, addr: Address, now: float) -> QuicMuxedConnection | None:
        factory = self.accept_inbound
        if factory is None or not data[0] & 0x80:  # not listening, or a short header
            return None
        decision = self.gate.admit(data, addr, self.half_open, now)
        if isinstance(decision, Reply):
            self.send_nowait([(decision.data, addr)])
            return None
        if decision is None:
            return None
        conn = factory(decision.original_dcid, decision.retry_scid, addr)
        conn.add_cid(decision.cid)
        conn.add_cid(conn.quic.host_cid)
        return conn

    def close(self) -> None:
        """Close every connection (CONNECTION_CLOSE, best effort) and the socket. Idempotent."""
        if self.closed:
            return
        for conn in self.connections:
            conn.close_now(0, "endpoint closed", None)
        self.closed = True
        self.accept_inbound = None
        anyio.notify_closing(self.sock)
        self.sock.close()
