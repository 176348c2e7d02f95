"""The relays of the ``nat_traversal`` workload: accept nodes' connections, tell each the
address it came from (identify's observed address), hold up to ``max_reservations``
reservations and set up circuits with circuit relay v2's hop and stop messages
(``_nat_relay`` has the framing and the client side)."""

from __future__ import annotations

import contextlib

import anyio
from anyio.abc import TaskGroup
from multiaddr import Multiaddr

from p2pstack.errors import InvalidPeerIdError, RemoteProtocolError
from p2pstack.identity import PeerId
from p2pstack.roots.scenarios._nat_relay import (
    ENDED,
    LIMIT,
    OBSERVE,
    OBSERVED,
    RESERVATION_TTL,
    FrameReader,
    Kind,
    encode,
    status_body,
)
from p2pstack.roots.scenarios._workload import NET_ERRORS
from protocols.relay import (
    HopType,
    Peer,
    Reservation,
    Status,
    StopMessage,
    StopType,
    decode_hop,
    decode_stop,
    encode_stop,
)
from transports.simnet import SimConnection, SimNetwork

__all__ = ["RelayServer"]


class RelayServer:
    """A public relay node: accepts connections, reports observed addresses, holds up to
    ``max_reservations`` reservations and forwards circuits between connected nodes.

    Args:
        net: the simulated network.
        node: the relay's node number.
        port: its TCP port.
        max_reservations: reservations held at once.
        peer_id: the relay's peer ID (in the addresses of its reservations).
    """

    def __init__(
        self, net: SimNetwork, node: int, port: int, max_reservations: int, peer_id: PeerId
    ) -> None:
        self.net, self.node, self.port = net, node, port
        self.max_reservations = max_reservations
        self.peer_id = peer_id
        #: Connected nodes by peer ID, and each node's peer ID.
        self.by_peer: dict[PeerId, int] = {}
        self.peers: dict[int, PeerId] = {}
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
        except NET_ERRORS:
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
                    self._hello(node, conn, body)
                    observed = str(conn.remote_multiaddr).encode()
                    await conn.send(encode(Kind.OBSERVED, self.node, node, observed))
                elif kind == Kind.RESERVE:
                    await conn.send(
                        encode(Kind.RESERVED, self.node, node, self._reserve(node, conn, body))
                    )
                elif kind == Kind.CONNECT:
                    await self._connect(node, conn, body)
                elif kind == Kind.ACCEPT:
                    # B's stop STATUS becomes A's hop STATUS (OK: the circuit is open).
                    answer = decode_stop(body)
                    ok = answer.type is StopType.STATUS and answer.status is Status.OK
                    peer = self.conns.get(dst)
                    if peer is not None:
                        status = (
                            status_body(Status.OK, limit=LIMIT)
                            if ok
                            else status_body(Status.CONNECTION_FAILED)
                        )
                        await self._send(peer, encode(Kind.ACCEPT, node, dst, status))
                elif kind == Kind.DATA:
                    peer = self.conns.get(dst)
                    if peer is not None:
                        await self._send(peer, encode(kind, node, dst, body))
                elif kind == Kind.PROBE_OK and node in self._probe_answers:
                    self._probe_answers[node].set()
        except RemoteProtocolError:
            await self._send(
                conn, encode(Kind.RESERVED, self.node, node, status_body(Status.MALFORMED_MESSAGE))
            )
        except ENDED:
            pass
        finally:
            if self.conns.get(node) is conn:
                del self.conns[node]
            if self.reserved.get(node) is conn:
                del self.reserved[node]
            await conn.aclose()

    def _hello(self, node: int, conn: SimConnection, body: bytes) -> None:
        try:
            peer_id = PeerId.from_bytes(body)
        except InvalidPeerIdError:
            raise ValueError("HELLO without a valid peer ID") from None
        self.conns[node] = conn
        self.peers[node] = peer_id
        self.by_peer[peer_id] = node

    def _reserve(self, node: int, conn: SimConnection, body: bytes) -> bytes:
        """The hop answer to a RESERVE (the spec's RESERVATION_REFUSED when full)."""
        if decode_hop(body).type is not HopType.RESERVE:
            return status_body(Status.UNEXPECTED_MESSAGE)
        if node not in self.reserved and len(self.reserved) >= self.max_reservations:
            self.refused += 1
            return status_body(Status.RESERVATION_REFUSED)
        self.reserved[node] = conn
        addr = Multiaddr(
            f"/ip4/{self.net.addresses(self.node)[0]}/tcp/{self.port}/p2p/{self.peer_id}"
        )
        expire = int(anyio.current_time()) + RESERVATION_TTL
        return status_body(Status.OK, Reservation(expire=expire, addrs=(addr,)), LIMIT)

    async def _connect(self, node: int, conn: SimConnection, body: bytes) -> None:
        """A hop CONNECT: a STOP CONNECT to the target, or the refusal to the dialer."""
        msg = decode_hop(body)
        if msg.type is not HopType.CONNECT or msg.peer is None:
            await conn.send(encode(Kind.ACCEPT, 0, node, status_body(Status.UNEXPECTED_MESSAGE)))
            return
        target = self.by_peer.get(msg.peer.id, 0)
        held = self.reserved.get(target)
        stop = StopMessage(type=StopType.CONNECT, peer=Peer(id=self.peers[node]), limit=LIMIT)
        sent = held is not None and await self._send(
            held, encode(Kind.STOP, node, target, encode_stop(stop))
        )
        if not sent:
            refusal = status_body(Status.NO_RESERVATION)
            await conn.send(encode(Kind.ACCEPT, target, node, refusal))
