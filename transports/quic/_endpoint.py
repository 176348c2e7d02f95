"""One datagram socket (``DatagramSocket``: a real UDP socket, or the simulator's) shared by
every QUIC connection on a local address: the receive task reads
datagrams in batches and routes them by destination connection ID (RFC 9000 section 5.2);
Initial packets for unknown IDs go through ``InitialGate`` (Version Negotiation, Retry under
load, a bound on half-open handshakes).
Dials from the listening port reuse the same socket, so peers see the address they can dial
back (the basis of hole punching).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from p2pstack.sync import loop_clock
from transports.quic._admission import InitialGate, Reply
from transports.quic._connection import QuicMuxedConnection
from transports.quic._engine import CID_LENGTH
from transports.quic._socket import Address, DatagramSocket

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

__all__ = ["QuicEndpoint"]

log = logging.getLogger("transports.quic")

#: Datagrams read per wake-up before the connections they touched send their answers.
_BATCH = 64

#: Makes the server connection for an admitted Initial: (original destination CID, Retry
#: source CID or None, peer address).
InboundFactory = Callable[[bytes, bytes | None, Address], QuicMuxedConnection]


class QuicEndpoint:
    """A bound datagram socket and the connections on it.

    Args:
        sock: a real UDP socket (``open_udp_socket``) or another ``DatagramSocket``.
        max_half_open: server handshakes in progress at once (``InitialGate``).
    """

    def __init__(self, sock: DatagramSocket, *, max_half_open: int) -> None:
        self.sock = sock
        self.host, self.port = sock.local_address
        self.gate = InitialGate(max_half_open=max_half_open)
        self._conns: dict[bytes, QuicMuxedConnection] = {}
        self.half_open = 0
        self.accept_inbound: InboundFactory | None = None
        self.closed = False
        self.dropped = 0  # datagrams that matched no connection
        # The socket's own methods are the DatagramSink's send side (no extra call per send).
        self.send = sock.send
        self.send_nowait = sock.send_nowait

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

    # -- receiving ----------------------------------------------------------------------------

    async def serve(self, tg: TaskGroup) -> None:
        """Read and route datagrams until the socket is closed."""
        receive = self.sock.receive
        clock = loop_clock()
        touched: dict[QuicMuxedConnection, None] = {}
        while not self.closed:
            try:
                batch = await receive(_BATCH)
            except anyio.ClosedResourceError:
                return
            now = clock()
            for data, addr in batch:
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
        for conn in dict.fromkeys(self._conns.values()):  # in a deterministic order
            conn.close_now(0, "endpoint closed", None)
        self.closed = True
        self.accept_inbound = None
        self.sock.close()
