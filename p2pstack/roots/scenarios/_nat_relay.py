"""The relayed path of the ``nat_traversal`` workload: a minimal circuit relay over simulated
TCP connections, modelled on circuit relay v2 (reservation, CONNECT, STOP, then relayed data)
without its wire format (https://github.com/libp2p/specs/blob/master/relay/circuit-v2.md).

Every node keeps one connection per relay it talks to, dialed from its listen port (as a
libp2p node with port reuse does); the relay tells each connection the address it came from
(identify's observed address), which is the node's NAT mapping. A reservation makes a node
reachable through that relay until its connection dies, for example when a NAT mapping
expires because keep-alives are rarer than the box's idle timeout.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskGroup
from multiaddr import Multiaddr

from p2pstack.roots.scenarios._workload import NET_ERRORS
from transports.simnet import SimConnection, SimNetwork

__all__ = [
    "OBSERVE",
    "OBSERVED",
    "Frame",
    "FrameReader",
    "Kind",
    "RelayLink",
    "RelayServer",
    "encode",
]

#: Length of the rest (2 bytes), kind (1), source node (4), destination node (4).
_HEADER = struct.Struct(">HBII")
#: Largest frame body: frames carry addresses and short coordination messages only.
MAX_BODY = 4096
#: Errors of a connection that went away (the network's, which include the end of a stream).
_GONE = NET_ERRORS
#: ... or that carried a malformed frame.
_ENDED: tuple[type[BaseException], ...] = (*NET_ERRORS, ValueError)


class Kind:
    """Frame kinds."""

    HELLO = 1  # node -> relay: first frame of a connection
    OBSERVED = 2  # relay -> node: the address the connection came from
    RESERVE = 3  # node -> relay
    RESERVED = 4  # relay -> node: body b"1" accepted, b"0" refused (full)
    CONNECT = 5  # node A -> relay: open a circuit to dst
    STOP = 6  # relay -> B: A wants a circuit
    ACCEPT = 7  # B -> relay -> A: the circuit is open (body b"0": refused / no reservation)
    DATA = 8  # over a circuit, relayed between src and dst
    KEEPALIVE = 9  # node -> relay
    PROBE = 10  # relay -> node: is the reservation alive
    PROBE_OK = 11  # node -> relay


Frame = tuple[int, int, int, bytes]
#: UDP: a request for the observed address, and the answer's prefix.
OBSERVE, OBSERVED = b"O", b"o"


def encode(kind: int, src: int, dst: int, body: bytes = b"") -> bytes:
    """One frame."""
    if len(body) > MAX_BODY:
        raise ValueError("frame body too long")
    return _HEADER.pack(len(body) + _HEADER.size - 2, kind, src, dst) + body


class FrameReader:
    """Frames out of a byte stream, with a bounded buffer."""

    def __init__(self, conn: SimConnection) -> None:
        self.conn = conn
        self._buf = bytearray()

    async def next(self) -> Frame:
        """The next frame.

        Raises:
            anyio.EndOfStream, anyio.BrokenResourceError: the connection ended.
            ValueError: a malformed frame (too long or too short).
        """
        while True:
            if len(self._buf) >= 2:
                (size,) = struct.unpack_from(">H", self._buf)
                if not _HEADER.size - 2 <= size <= MAX_BODY + _HEADER.size - 2:
                    raise ValueError(f"bad frame length {size}")
                if len(self._buf) >= size + 2:
                    _, kind, src, dst = _HEADER.unpack_from(self._buf)
                    body = bytes(self._buf[_HEADER.size : size + 2])
                    del self._buf[: size + 2]
                    return kind, src, dst, body
            self._buf += await self.conn.receive()


class RelayServer:
    """A public relay node: accepts connections, reports observed addresses, holds up to
    ``max_reservations`` reservations and forwards circuits between connected nodes.

    Args:
        net: the simulated network.
        node: the relay's node number.
        port: its TCP port.
        max_reservations: reservations held at once.
    """

    def __init__(self, net: SimNetwork, node: int, port: int, max_reservations: int) -> None:
        self.net, self.node, self.port = net, node, port
        self.max_reservations = max_reservations
        #: Nodes with a reservation here, and every connected node's connection.
        self.reserved: dict[int, SimConnection] = {}
        self.conns: dict[int, SimConnection] = {}
        self.refused = 0
        self._probe_answers: dict[int, anyio.Event] = {}

    async def serve(self, tg: TaskGroup) -> None:
        """Listen, then serve each connection in ``tg`` (forever)."""
        listener = await self.net.transport(self.node).listen(
            Multiaddr(f"/ip4/0.0.0.0/tcp/{self.port}")
        )
        with contextlib.suppress(anyio.ClosedResourceError):  # the node crashed
            while True:
                conn = await listener.accept()
                tg.start_soon(self._serve_conn, conn)

    async def serve_udp(self) -> None:
        """Answer UDP observation requests (``O``) with the source they came from (``o`` and
        the address): a node's UDP mapping, which QUIC hole punching announces."""
        sock = await self.net.transport(self.node).bind_datagram(
            Multiaddr(f"/ip4/0.0.0.0/udp/{self.port}")
        )
        with contextlib.suppress(anyio.ClosedResourceError):  # the node crashed
            while True:
                data, source = await sock.receive()
                if data == OBSERVE:
                    sock.send_nowait(OBSERVED + str(source).encode(), source)

    async def probe(self, timeout: float) -> dict[int, bool]:
        """Ask every reserved node whether its reservation still works (a write that resets an
        expired mapping's connection counts as dead)."""
        alive: dict[int, bool] = {}
        self._probe_answers = {}
        for node, conn in list(self.reserved.items()):
            self._probe_answers[node] = anyio.Event()
            alive[node] = await self._send(conn, encode(Kind.PROBE, self.node, node))
        with anyio.move_on_after(timeout):
            for node, event in self._probe_answers.items():
                if alive[node]:
                    await event.wait()
        return {n: ok and self._probe_answers[n].is_set() for n, ok in alive.items()}

    async def _send(self, conn: SimConnection, frame: bytes) -> bool:
        try:
            await conn.send(frame)
            return True
        except _GONE:
            return False

    async def _serve_conn(self, conn: SimConnection) -> None:
        reader = FrameReader(conn)
        node = 0
        try:
            while True:
                kind, src, dst, body = await reader.next()
                if node == 0 and kind != Kind.HELLO:
                    return
                if kind == Kind.HELLO:
                    node = src
                    self.conns[node] = conn
                    observed = str(conn.remote_multiaddr).encode()
                    await conn.send(encode(Kind.OBSERVED, self.node, node, observed))
                elif kind == Kind.RESERVE:
                    ok = node in self.reserved or len(self.reserved) < self.max_reservations
                    if ok:
                        self.reserved[node] = conn
                    else:
                        self.refused += 1
                    await conn.send(encode(Kind.RESERVED, self.node, node, b"1" if ok else b"0"))
                elif kind == Kind.CONNECT:
                    target = self.reserved.get(dst)
                    sent = target is not None and await self._send(
                        target, encode(Kind.STOP, node, dst)
                    )
                    if not sent:
                        await conn.send(encode(Kind.ACCEPT, dst, node, b"0"))
                elif kind in (Kind.ACCEPT, Kind.DATA):
                    peer = self.conns.get(dst)
                    if peer is not None:
                        await self._send(peer, encode(kind, node, dst, body))
                elif kind == Kind.PROBE_OK and node in self._probe_answers:
                    self._probe_answers[node].set()
        except _ENDED:
            pass
        finally:
            if self.conns.get(node) is conn:
                del self.conns[node]
            if self.reserved.get(node) is conn:
                del self.reserved[node]
            await conn.aclose()


class RelayLink:
    """A node's connection to one relay: observed address, reservation, circuits.

    Args:
        conn: the connection (dialed from the node's listen port).
        node: the node's number.
        relay: the relay's node number.
        on_frame: called with every frame other than OBSERVED/RESERVED/PROBE.
    """

    def __init__(
        self,
        conn: SimConnection,
        node: int,
        relay: int,
        on_frame: Callable[[RelayLink, Frame], Awaitable[None]],
    ) -> None:
        self.conn, self.node, self.relay = conn, node, relay
        self.on_frame = on_frame
        self.observed: Multiaddr | None = None
        self.reserved = False
        self.alive = True
        self._observed = anyio.Event()
        self._reservation: anyio.Event | None = None

    async def start(self, tg: TaskGroup, timeout: float) -> Multiaddr:
        """Say hello, run the reader in ``tg``, wait for the observed address.

        Raises:
            TimeoutError: no answer in ``timeout`` seconds.
        """
        tg.start_soon(self._read)
        await self.send(Kind.HELLO, 0)
        with anyio.fail_after(timeout):
            await self._observed.wait()
        assert self.observed is not None
        return self.observed

    async def reserve(self, timeout: float) -> bool:
        """Ask for a reservation; ``False`` if refused or unanswered."""
        self._reservation = anyio.Event()
        if not await self.send(Kind.RESERVE, 0):
            return False
        with anyio.move_on_after(timeout):
            await self._reservation.wait()
        return self.reserved

    async def send(self, kind: int, dst: int, body: bytes = b"") -> bool:
        """Send a frame; ``False`` (and the link dead) if the connection is gone."""
        try:
            await self.conn.send(encode(kind, self.node, dst, body))
            return True
        except _GONE:
            self.alive = False
            return False

    async def _read(self) -> None:
        reader = FrameReader(self.conn)
        try:
            while True:
                frame = await reader.next()
                kind, _, _, body = frame
                if kind == Kind.OBSERVED:
                    self.observed = Multiaddr(body.decode())
                    self._observed.set()
                elif kind == Kind.RESERVED:
                    self.reserved = body == b"1"
                    if self._reservation is not None:
                        self._reservation.set()
                elif kind == Kind.PROBE:
                    await self.send(Kind.PROBE_OK, self.relay)
                else:
                    await self.on_frame(self, frame)
        except _ENDED:
            self.alive = False
            self.reserved = False
