"""The relayed path of the ``nat_traversal`` workload: a circuit relay over simulated TCP
connections whose reservation and circuit set-up speak circuit relay v2's messages
(https://github.com/libp2p/specs/blob/master/relay/circuit-v2.md, ``protocols.relay``'s
``HopMessage`` / ``StopMessage`` and their encoding): RESERVE answered by STATUS OK with a
``Reservation`` and ``Limit`` or STATUS RESERVATION_REFUSED when the relay is full; CONNECT to a
peer ID answered by STATUS NO_RESERVATION, or a STOP CONNECT to the target whose STATUS the
relay turns into the dialer's answer; a malformed message gets MALFORMED_MESSAGE and the
connection closes.

The simulation has no secure channel and no stream multiplexer, so a small frame header stands
in for both: each frame says which kind of message it carries (which stream it would travel on)
and between which nodes; the first frame of a connection carries the node's peer ID (what the
secure channel would authenticate).

Every node keeps one connection per relay it talks to, dialed from its listen port (as a
libp2p node with port reuse does); the relay tells each connection the address it came from
(identify's observed address), which is the node's NAT mapping. A reservation makes a node
reachable through that relay until its connection dies, for example when a NAT mapping
expires because keep-alives are rarer than the box's idle timeout.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskGroup
from multiaddr import Multiaddr

from p2pstack.errors import RemoteProtocolError
from p2pstack.identity import PeerId
from p2pstack.roots.scenarios._workload import NET_ERRORS
from protocols.relay import (
    HopMessage,
    HopType,
    Limit,
    Reservation,
    Status,
    decode_hop,
    encode_hop,
)
from transports.simnet import SimConnection

__all__ = [
    "ENDED",
    "LIMIT",
    "OBSERVE",
    "OBSERVED",
    "RESERVATION_TTL",
    "Frame",
    "FrameReader",
    "Kind",
    "RelayLink",
    "encode",
    "hop_status",
    "status_body",
]

#: Length of the rest (2 bytes), kind (1), source node (4), destination node (4).
_HEADER = struct.Struct(">HBII")
#: Largest frame body: frames carry addresses and short coordination messages only.
MAX_BODY = 4096
#: Errors of a connection that went away (the network's, which include the end of a stream).
_GONE = NET_ERRORS
#: ... or that carried a malformed frame or message.
ENDED: tuple[type[BaseException], ...] = (*NET_ERRORS, ValueError, RemoteProtocolError)
#: What a circuit may carry (js and go's defaults), sent with each grant and circuit.
LIMIT = Limit(duration=120, data=1 << 17)
#: Reservation lifetime announced in ``Reservation.expire`` (seconds after the grant).
RESERVATION_TTL = 3600


class Kind:
    """Frame kinds."""

    HELLO = 1  # node -> relay: first frame of a connection, body: the node's peer ID
    OBSERVED = 2  # relay -> node: the address the connection came from
    RESERVE = 3  # node -> relay: hop RESERVE
    RESERVED = 4  # relay -> node: hop STATUS (OK with a reservation, or a refusal)
    CONNECT = 5  # node A -> relay: hop CONNECT to B's peer ID
    STOP = 6  # relay -> B: stop CONNECT from A's peer ID
    ACCEPT = 7  # B -> relay: stop STATUS; relay -> A: hop STATUS (OK: the circuit is open)
    DATA = 8  # over a circuit, relayed between src and dst
    KEEPALIVE = 9  # node -> relay
    PROBE = 10  # relay -> node: is the reservation alive
    PROBE_OK = 11  # node -> relay


Frame = tuple[int, int, int, bytes]


def hop_status(body: bytes) -> Status:
    """The status of a hop STATUS message (``MALFORMED_MESSAGE`` if it is none)."""
    try:
        msg = decode_hop(body)
    except RemoteProtocolError:
        return Status.MALFORMED_MESSAGE
    if msg.type is not HopType.STATUS or msg.status is None:
        return Status.MALFORMED_MESSAGE
    return msg.status


def status_body(
    status: Status, reservation: Reservation | None = None, limit: Limit | None = None
) -> bytes:
    return encode_hop(
        HopMessage(type=HopType.STATUS, status=status, reservation=reservation, limit=limit)
    )


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
        #: The status of the last reservation answer.
        self.status: Status | None = None
        self.alive = True
        self._observed = anyio.Event()
        self._reservation: anyio.Event | None = None

    async def start(self, tg: TaskGroup, peer_id: PeerId, timeout: float) -> Multiaddr:
        """Say hello (with our peer ID), run the reader in ``tg``, wait for the observed
        address.

        Raises:
            TimeoutError: no answer in ``timeout`` seconds.
        """
        tg.start_soon(self._read)
        await self.send(Kind.HELLO, 0, peer_id.to_bytes())
        with anyio.fail_after(timeout):
            await self._observed.wait()
        assert self.observed is not None
        return self.observed

    async def reserve(self, timeout: float) -> bool:
        """Ask for a reservation (hop RESERVE); ``False`` if refused or unanswered."""
        self._reservation = anyio.Event()
        if not await self.send(Kind.RESERVE, 0, encode_hop(HopMessage(type=HopType.RESERVE))):
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
                    self.status = hop_status(body)
                    self.reserved = self.status is Status.OK
                    if self._reservation is not None:
                        self._reservation.set()
                elif kind == Kind.PROBE:
                    await self.send(Kind.PROBE_OK, self.relay)
                else:
                    await self.on_frame(self, frame)
        except ENDED:
            self.alive = False
            self.reserved = False
