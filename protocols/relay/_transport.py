"""The circuit relay v2 client as a transport: dial ``.../p2p/<relay>/p2p-circuit/p2p/<target>``
(hop CONNECT), listen on ``.../p2p/<relay>/p2p-circuit`` (RESERVE, then stop CONNECTs), the
relayed stream upgraded like a raw connection and marked limited
(https://github.com/libp2p/specs/blob/master/relay/circuit-v2.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import anyio
import attrs
from multiaddr import Multiaddr

from p2pstack.errors import (
    NETWORK_ERRORS,
    LocalProtocolError,
    P2PTimeoutError,
    TransportError,
)
from p2pstack.identity import PeerId
from p2pstack.multiaddrs import with_peer_id
from protocols.relay._addrs import circuit_addr, is_circuit, split_circuit
from protocols.relay._client_wire import expect_ok, limits_of
from protocols.relay._listener import CircuitConfig, CircuitListener
from protocols.relay._relayed import RelayedConnection
from protocols.relay._unreserved import ANY_RELAY, UnreservedListener
from protocols.relay._wire import (
    HOP_PROTOCOL_ID,
    STOP_PROTOCOL_ID,
    HopMessage,
    HopType,
    MalformedMessage,
    Peer,
    Status,
    StopMessage,
    StopType,
    read_hop,
    read_stop,
    write_hop,
    write_stop,
)

if TYPE_CHECKING:
    from p2pstack.connection import Connection, Stream
    from p2pstack.host import Host
    from p2pstack.interfaces import ConnectionLimits, UpgradedConnection, Upgrader

__all__ = ["CircuitRelayTransport"]

log = logging.getLogger("protocols.relay")


def _mark(upgraded: UpgradedConnection, limits: ConnectionLimits | None) -> UpgradedConnection:
    info = attrs.evolve(upgraded.info, limited=True, limits=limits, transport="p2p-circuit")
    return attrs.evolve(upgraded, info=info)


class CircuitRelayTransport:
    """Dials and listens through circuit relay v2 relays. Give it to the host as a transport;
    it is also a service (it serves ``/libp2p/circuit/relay/0.2.0/stop``).

    Args:
        config: timeouts and bounds.
        wall_clock: Unix time in seconds (reservation expiry is Unix time).
    """

    delivers_upgraded: Literal[True] = True

    def __init__(
        self, config: CircuitConfig | None = None, *, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config or CircuitConfig()
        self._wall_clock = wall_clock
        self._host: Host | None = None
        self._listeners: dict[PeerId, CircuitListener] = {}
        self._any: UnreservedListener | None = None

    @property
    def listeners(self) -> dict[PeerId, CircuitListener]:
        """The open listeners by relay."""
        return {relay: lst for relay, lst in self._listeners.items() if not lst.closed}

    async def start(self, host: Host) -> None:
        """Serve the stop protocol; only on direct connections (no circuit over a circuit)."""
        self._host = host
        host.set_stream_handler(
            STOP_PROTOCOL_ID, self._handle_stop, max_inbound=self.config.max_inbound_circuits
        )

    async def stop(self) -> None:
        """Close the listeners; the host closes the relayed connections."""
        for listener in list(self._listeners.values()):
            await listener.aclose()
        if self._any is not None:
            await self._any.aclose()

    def _require_host(self) -> Host:
        if self._host is None:
            raise LocalProtocolError("the circuit transport is used before the host started it")
        return self._host

    def can_dial(self, addr: Multiaddr) -> bool:
        """Whether ``addr`` is a relayed address."""
        return is_circuit(addr)

    def can_listen(self, addr: Multiaddr) -> bool:
        """Whether ``addr`` is ``.../p2p/<relay>/p2p-circuit``."""
        return is_circuit(addr) and str(addr).endswith("/p2p-circuit")

    async def dial(
        self, addr: Multiaddr, *, remote_peer: PeerId | None, upgrader: Upgrader
    ) -> UpgradedConnection:
        """Connect to ``remote_peer`` through the relay named in ``addr``.

        Raises:
            TransportError: a malformed or nested circuit address, no target peer, the relay
                unreachable, or its refusal (``RelayStatusError``: ``NO_RESERVATION``, ...).
            P2PTimeoutError: the relay did not answer within ``hop_timeout``.
            RemoteProtocolError: the relay broke the protocol.
            SecurityError, NegotiationError, UpgradeError: the end-to-end upgrade failed.
        """
        host = self._require_host()
        relay_addr, relay = split_circuit(addr)
        if remote_peer is None:
            raise TransportError(f"{addr}: dialing through a relay needs /p2p/<target>")
        if remote_peer in (relay, host.peer_id):
            raise TransportError(f"{addr}: the target is the relay or ourselves")
        conn = await self._relay_connection(relay_addr, relay)
        stream, answer = await self._connect(conn, remote_peer)
        local = circuit_addr(relay_addr, relay)
        raw = RelayedConnection(stream, local=local, remote=with_peer_id(local, remote_peer))
        try:
            upgraded = await upgrader.upgrade_outbound(raw, remote_peer=remote_peer)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await raw.aclose()
            raise
        return _mark(upgraded, limits_of(answer.limit))

    async def _relay_connection(self, relay_addr: Multiaddr | None, relay: PeerId) -> Connection:
        host = self._require_host()
        try:
            if relay_addr is None:
                conn = await host.dial_peer(relay)
            else:
                conn = await host.connect(with_peer_id(relay_addr, relay))
        except NETWORK_ERRORS as exc:
            raise TransportError(f"relay {relay} unreachable: {exc}") from exc
        if conn.limited:
            raise TransportError(f"relay {relay} is reachable only through a relay: refused")
        return conn

    async def _connect(self, conn: Connection, target: PeerId) -> tuple[Stream, HopMessage]:
        request = HopMessage(type=HopType.CONNECT, peer=Peer(id=target))
        seconds = self.config.hop_timeout
        stream: Stream | None = None
        try:
            with anyio.fail_after(seconds):
                stream = await conn.new_stream([HOP_PROTOCOL_ID])
                await write_hop(stream, request)
                answer = await read_hop(stream)
            expect_ok(answer, f"CONNECT to {target} via {conn.remote_peer}")
        except BaseException as exc:
            if stream is not None:
                with anyio.CancelScope(shield=True):
                    await stream.reset()
            if isinstance(exc, TimeoutError) and not isinstance(exc, P2PTimeoutError):
                raise P2PTimeoutError(
                    f"CONNECT: no answer from the relay in {seconds:g} s"
                ) from None
            if isinstance(exc, anyio.EndOfStream):
                raise TransportError("the relay closed the stream without answering") from None
            raise
        return stream, answer

    async def listen(
        self, addr: Multiaddr, *, upgrader: Upgrader
    ) -> CircuitListener | UnreservedListener:
        """Reserve a slot at the relay in ``addr`` and listen through it; on the bare
        ``/p2p-circuit``, accept circuits from any relay without a reservation of ours (as
        go-libp2p does, for reservations made by hand).

        Raises:
            TransportError: a malformed address, already listening through that relay, the
                relay unreachable, or its refusal (the message names the status).
        """
        host = self._require_host()
        if str(addr) == ANY_RELAY:
            if self._any is not None and not self._any.closed:
                raise TransportError(f"already listening on {ANY_RELAY}")
            self._any = UnreservedListener(upgrader, max_pending=self.config.max_pending)
            return self._any
        relay_addr, relay = split_circuit(addr)
        if relay == host.peer_id:
            raise TransportError(f"{addr}: we cannot be our own relay")
        if relay in self.listeners:
            raise TransportError(f"already listening through relay {relay}")
        listener = CircuitListener(
            host,
            relay_addr,
            relay,
            upgrader=upgrader,
            config=self.config,
            wall_clock=self._wall_clock,
        )
        await listener.open()
        self._listeners = self.listeners  # closed listeners are forgotten: a bounded map
        self._listeners[relay] = listener
        return listener

    async def _handle_stop(self, stream: Stream) -> None:
        """A relay connects a peer to us: check, answer, upgrade as responder, hand over."""
        relay = stream.remote_peer
        try:
            with anyio.fail_after(self.config.stop_timeout):
                request = await read_stop(stream)
        except TimeoutError:
            log.debug("stop stream from %s sent nothing in time", relay)
            return
        except MalformedMessage as exc:
            log.info("malformed stop message from %s: %s", relay, exc)
            await write_stop(stream, StopMessage(type=StopType.STATUS, status=exc.status))
            return
        status = self._stop_status(stream, request)
        await write_stop(stream, StopMessage(type=StopType.STATUS, status=status))
        listener = self._listener_for(relay)
        if status is not Status.OK or request.peer is None or listener is None:
            log.info("refused stop CONNECT from %s: %s", relay, status.name)
            return
        await self._accept_relayed(stream, listener, request)

    def _stop_status(self, stream: Stream, request: StopMessage) -> Status:
        """Our answer to a relay's stop message."""
        listener = self._listener_for(stream.remote_peer)
        if request.type is not StopType.CONNECT or request.peer is None:
            return Status.UNEXPECTED_MESSAGE
        if stream.connection.limited:
            return Status.PERMISSION_DENIED  # a circuit over a circuit
        if listener is None:
            return Status.PERMISSION_DENIED  # not a relay we hold a reservation with
        if request.peer.id == stream.remote_peer:
            return Status.MALFORMED_MESSAGE
        return Status.OK

    def _listener_for(self, relay: PeerId) -> CircuitListener | UnreservedListener | None:
        """The listener through ``relay`` (holding a reservation), else the one on the bare
        ``/p2p-circuit`` if open."""
        listener = self.listeners.get(relay)
        if listener is not None and listener.reservation is not None:
            return listener
        if self._any is not None and not self._any.closed:
            return self._any
        return None

    async def _accept_relayed(
        self,
        stream: Stream,
        listener: CircuitListener | UnreservedListener,
        request: StopMessage,
    ) -> None:
        assert request.peer is not None
        source, relay = request.peer.id, stream.remote_peer
        relay_addr = listener.relay_addr if isinstance(listener, CircuitListener) else None
        local = circuit_addr(relay_addr, relay)
        raw = RelayedConnection(stream, local=local, remote=with_peer_id(local, source))
        upgraded = await listener.upgrader.upgrade_inbound(raw)  # bounded by its deadlines
        limits = limits_of(request.limit)
        if upgraded.info.remote_peer != source or not listener.deliver(_mark(upgraded, limits)):
            log.info("dropping relayed connection from %s via %s", source, relay)
            with anyio.CancelScope(shield=True):
                await upgraded.muxed.aclose()
            return
        # The stream is the connection: this handler holds it until the connection ends.
        await raw.closed.wait()
