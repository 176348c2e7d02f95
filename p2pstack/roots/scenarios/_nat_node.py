"""One node of the ``nat_traversal`` workload: its listen port (TCP with port reuse), its links
to relays (observed address, reservation, keep-alives), relayed circuits to other nodes and
direct dials for hole punches (docs/nat.md, "Simulating NATs")."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from multiaddr import Multiaddr

from p2pstack.errors import RemoteProtocolError
from p2pstack.identity import PeerId
from p2pstack.roots.scenarios._nat_punch import INITIAL, REPLY, Punch
from p2pstack.roots.scenarios._nat_relay import (
    OBSERVE,
    OBSERVED,
    Frame,
    Kind,
    RelayLink,
    hop_status,
)
from p2pstack.roots.scenarios._workload import NET_ERRORS
from protocols.relay import (
    HopMessage,
    HopType,
    Peer,
    Status,
    StopMessage,
    StopType,
    decode_stop,
    encode_hop,
    encode_stop,
)
from transports.simnet import SimDatagramSocket, SimNetwork, SimTransport

__all__ = ["Circuit", "NatNode"]

#: Messages a circuit holds unread (a DCUtR exchange has two or three in flight at most).
_INBOX = 16


class Circuit:
    """A relayed path to one peer through one relay link (a ``RelayedChannel``)."""

    def __init__(self, node: NatNode, link: RelayLink, peer: int) -> None:
        self.link, self.peer = link, peer
        self._send: MemoryObjectSendStream[bytes]
        self._recv: MemoryObjectReceiveStream[bytes]
        self._send, self._recv = anyio.create_memory_object_stream[bytes](_INBOX)
        self.accepted = anyio.Event()
        self.status: Status | None = None

    @property
    def refused(self) -> bool:
        """Whether the relay answered the CONNECT with anything but OK."""
        return self.status is not Status.OK

    def deliver(self, kind: int, body: bytes) -> None:
        if kind == Kind.ACCEPT:
            if not self.accepted.is_set():
                self.status = hop_status(body)
                self.accepted.set()
        else:
            try:
                self._send.send_nowait(body)
            except anyio.WouldBlock:
                pass  # a peer flooding a circuit loses messages, nothing else

    async def send(self, data: bytes) -> None:
        if not await self.link.send(Kind.DATA, self.peer, data):
            raise anyio.BrokenResourceError

    async def receive(self) -> bytes:
        return await self._recv.receive()


class NatNode:
    """A non-relay node's side of the workload.

    Args:
        net: the simulated network.
        index: the node's number.
        peer_id: its peer ID.
        port: the TCP port it listens on and dials from.
        on_stop: called (synchronously) when a peer opens a circuit to this node.
    """

    def __init__(
        self,
        net: SimNetwork,
        index: int,
        peer_id: PeerId,
        port: int,
        on_stop: Callable[[Circuit], None],
    ) -> None:
        self.net, self.index, self.port = net, index, port
        self.peer_id = peer_id
        self.transport: SimTransport = net.transport(index, reuse_port=True)
        self.on_stop = on_stop
        self.links: dict[int, RelayLink] = {}
        self.circuits: dict[int, Circuit] = {}
        self.reservation: int = 0  # the relay holding our reservation (0: none)
        self.observed: str | None = None
        self.observed_udp: str | None = None
        self.udp: SimDatagramSocket | None = None
        #: QUIC hole punches this node is the client of, by pair key.
        self.quic_punches: dict[bytes, Punch] = {}
        self._udp_observed = anyio.Event()
        self.reservations_lost = 0
        self.tg: TaskGroup | None = None

    async def listen(self, tg: TaskGroup) -> None:
        """Listen on the port and accept (then drop) what comes in: a hole punch whose SYN
        reaches the listener rather than the peer's own dial."""
        self.tg = tg
        listener = await self.transport.listen(Multiaddr(f"/ip4/0.0.0.0/tcp/{self.port}"))

        async def accept_loop() -> None:
            with contextlib.suppress(anyio.ClosedResourceError):  # the node crashed
                while True:
                    conn = await listener.accept()
                    await conn.aclose()

        tg.start_soon(accept_loop)
        self.udp = await self.transport.bind_datagram(Multiaddr(f"/ip4/0.0.0.0/udp/{self.port}"))
        tg.start_soon(self._read_udp, self.udp)

    async def observe_udp(self, relay_udp: str, timeout: float) -> str | None:
        """Learn the UDP mapping of the listen port from a relay (one request per second until
        answered or ``timeout``); also what keeps that mapping alive."""
        assert self.udp is not None
        self._udp_observed = anyio.Event()
        with anyio.move_on_after(timeout):
            while not self._udp_observed.is_set():
                self.udp.send_nowait(OBSERVE, Multiaddr(relay_udp))
                with anyio.move_on_after(1.0):
                    await self._udp_observed.wait()
        return self.observed_udp

    async def _read_udp(self, sock: SimDatagramSocket) -> None:
        with contextlib.suppress(anyio.ClosedResourceError):  # the node crashed
            while True:
                data, source = await sock.receive()
                kind, body = data[:1], data[1:]
                if kind == OBSERVED:
                    self.observed_udp = body.decode()
                    self._udp_observed.set()
                elif kind == INITIAL and len(body) == 8:
                    sock.send_nowait(REPLY + body, source)  # the server answers the client
                elif kind == REPLY and body in self.quic_punches:
                    self.quic_punches[body].succeeded()

    async def link(self, relay: int, address: str, timeout: float) -> RelayLink | None:
        """The link to ``relay`` (made now, from the listen port, if there is none alive)."""
        link = self.links.get(relay)
        if link is not None and link.alive:
            return link
        assert self.tg is not None
        try:
            with anyio.fail_after(timeout):
                conn = await self.transport.dial(Multiaddr(address))
            link = RelayLink(conn, self.index, relay, self._on_frame)
            observed = await link.start(self.tg, self.peer_id, timeout)
        except NET_ERRORS:
            return None
        self.links[relay] = link
        if self.observed is None:
            self.observed = str(observed)
        return link

    async def reserve(self, relays: Sequence[tuple[int, str]], timeout: float) -> int:
        """Try ``relays`` in order until one grants a reservation; returns it (0: none)."""
        for relay, address in relays:
            link = await self.link(relay, address, timeout)
            if link is not None and await link.reserve(timeout):
                self.reservation = relay
                self.observed = str(link.observed)
                return relay
        self.reservation = 0
        return 0

    async def keepalive(self, relays: Sequence[tuple[int, str]], timeout: float) -> None:
        """One keep-alive on the reservation link; a dead link (an expired mapping resets it)
        is counted and the reservation made again."""
        if not self.reservation:
            return
        link = self.links[self.reservation]
        if link.alive and await link.send(Kind.KEEPALIVE, self.reservation):
            return
        self.reservations_lost += 1
        self.links.pop(self.reservation, None)
        await self.reserve(relays, timeout)

    async def open_circuit(
        self, relay: int, address: str, peer: int, peer_id: PeerId, timeout: float
    ) -> Circuit:
        """A relayed connection to ``peer`` through ``relay`` (hop CONNECT to ``peer_id``; the
        relay's STATUS answer).

        Raises:
            OSError: no link to the relay, the peer has no reservation there, or no answer.
        """
        link = await self.link(relay, address, timeout)
        if link is None:
            raise ConnectionError(f"no connection to relay {relay}")
        circuit = self.circuits[peer] = Circuit(self, link, peer)
        request = HopMessage(type=HopType.CONNECT, peer=Peer(id=peer_id))
        if not await link.send(Kind.CONNECT, peer, encode_hop(request)):
            raise ConnectionError("relay connection lost")
        with anyio.move_on_after(timeout):
            await circuit.accepted.wait()
        if not circuit.accepted.is_set() or circuit.refused:
            raise ConnectionError(f"relay {relay} could not reach node {peer}")
        return circuit

    async def _on_frame(self, link: RelayLink, frame: Frame) -> None:
        kind, src, _, body = frame
        if kind == Kind.STOP:
            try:
                stop = decode_stop(body)
            except RemoteProtocolError:
                stop = None
            if stop is None or stop.type is not StopType.CONNECT or stop.peer is None:
                answer = StopMessage(type=StopType.STATUS, status=Status.MALFORMED_MESSAGE)
                await link.send(Kind.ACCEPT, src, encode_stop(answer))
                return
            circuit = self.circuits[src] = Circuit(self, link, src)
            ok = StopMessage(type=StopType.STATUS, status=Status.OK)
            await link.send(Kind.ACCEPT, src, encode_stop(ok))
            self.on_stop(circuit)
        elif kind in (Kind.ACCEPT, Kind.DATA) and src in self.circuits:
            self.circuits[src].deliver(kind, body)
