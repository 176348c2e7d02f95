"""The host: listens, dials, keeps one connection per peer, opens and dispatches streams, and
runs services, all inside one task group owned by ``open_host``.

Spec background: https://github.com/libp2p/specs/blob/master/connections/README.md
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple, Unpack

import anyio
import attrs
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from multiaddr import Multiaddr

from p2pstack import __version__
from p2pstack.connection import Connection, Stream
from p2pstack.errors import (
    ConnectionClosedError,
    DialError,
    P2PError,
    P2PTimeoutError,
    ServiceNotFound,
    TransportError,
)
from p2pstack.events import ConnectionClosed, ConnectionOpened, HostEvent, LocalProtocolsChanged
from p2pstack.multiaddrs import parse_multiaddr, split_peer_id, with_peer_id
from p2pstack.multistream import negotiate_inbound
from p2pstack.peerstore import ADDR_TTL_CONNECTED, Peerstore

if TYPE_CHECKING:
    from p2pstack.identity import Identity, PeerId
    from p2pstack.interfaces import Listener, MuxedStream, RawConnection, Service, Transport
    from p2pstack.upgrader import UpgradedConnection, Upgrader

__all__ = ["Connection", "Host", "HostConfig", "HostStatistics", "Stream", "StreamHandler"]

log = logging.getLogger("p2pstack.host")

StreamHandler = Callable[[Stream], Awaitable[None]]
S = TypeVar("S")
PosArgs = TypeVarTuple("PosArgs")

#: Errors a stream or connection can end with because of the network or the peer.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    P2PError,
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)


@attrs.frozen(kw_only=True)
class HostConfig:
    """Host limits and timeouts (seconds). Derive variants with ``attrs.evolve``."""

    #: Time for one transport dial (TCP connect) to one address.
    dial_timeout: float = 10.0
    #: Time for the whole upgrade (security and muxer negotiation and handshake).
    upgrade_timeout: float = 15.0
    #: Time for multistream-select on a new stream.
    negotiate_timeout: float = 10.0
    #: Most connections held at once; further inbound connections are closed on arrival.
    max_connections: int = 4096
    #: Most inbound connections mid-upgrade at once; further ones are closed on arrival.
    max_pending_upgrades: int = 256
    #: Events buffered per subscriber; a subscriber that falls further behind loses events
    #: (counted in ``statistics().dropped_events``) rather than stalling the host.
    event_buffer: int = 1024
    #: Time given to connections to close gracefully when the host closes.
    close_timeout: float = 5.0
    #: How long the losing connection of a simultaneous dial may finish its streams.
    drain_timeout: float = 10.0
    agent_version: str = f"p2pstack/{__version__}"
    protocol_version: str = "ipfs/0.1.0"


@attrs.frozen(kw_only=True)
class HostStatistics:
    """A snapshot of the host's state."""

    connections: int
    streams: int
    pending_upgrades: int
    listeners: int
    dropped_events: int


class Host:
    """A libp2p node. Create it with ``p2pstack.open_host``; it closes when that block exits."""

    def __init__(
        self,
        *,
        identity: Identity,
        transports: Sequence[Transport],
        upgrader: Upgrader,
        peerstore: Peerstore,
        services: Sequence[Service],
        config: HostConfig,
        task_group: TaskGroup,
    ) -> None:
        self.identity = identity
        self.peer_id: PeerId = identity.peer_id
        self.peerstore = peerstore
        self.config = config
        self.upgrader = upgrader
        self.agent_version = config.agent_version
        self.protocol_version = config.protocol_version
        self._transports = list(transports)
        self._services = list(services)
        self._tg = task_group
        self._handlers: dict[str, StreamHandler] = {}
        self._handler_limits: dict[str, int] = {}
        self._handler_active: dict[str, int] = {}
        self._listeners: list[Listener] = []
        self._connections: dict[PeerId, list[Connection]] = {}
        self._pending_dials: dict[PeerId, anyio.Event] = {}
        self._pending_upgrades = 0
        self._subscribers: list[MemoryObjectSendStream[HostEvent]] = []
        self._dropped_events = 0
        self._started = False
        self._closing = False

    # -- introspection -------------------------------------------------------------------------

    @property
    def listen_addrs(self) -> list[Multiaddr]:
        """The addresses actually bound, without ``/p2p/``."""
        return [addr for listener in self._listeners for addr in listener.multiaddrs]

    @property
    def addrs(self) -> list[Multiaddr]:
        """The bound addresses with ``/p2p/<our id>``: what to give another node to dial us."""
        return [with_peer_id(addr, self.peer_id) for addr in self.listen_addrs]

    @property
    def protocols(self) -> list[str]:
        """Protocol IDs with a registered stream handler."""
        return list(self._handlers)

    def connections(self, peer: PeerId | None = None) -> list[Connection]:
        """Open connections, to ``peer`` or to everyone."""
        if peer is not None:
            return [c for c in self._connections.get(peer, ()) if not c.is_closed]
        return [c for conns in self._connections.values() for c in conns if not c.is_closed]

    def service(self, kind: type[S]) -> S:
        """The running service of type ``kind``.

        Raises:
            ServiceNotFound: the host runs no such service.
        """
        for service in self._services:
            if isinstance(service, kind):
                return service
        raise ServiceNotFound(f"this host runs no {kind.__name__} service")

    def statistics(self) -> HostStatistics:
        conns = self.connections()
        return HostStatistics(
            connections=len(conns),
            streams=sum(len(c.streams) for c in conns),
            pending_upgrades=self._pending_upgrades,
            listeners=len(self._listeners),
            dropped_events=self._dropped_events,
        )

    # -- handlers, events, tasks ---------------------------------------------------------------

    def set_stream_handler(
        self, protocol_id: str, handler: StreamHandler, *, max_inbound: int | None = None
    ) -> None:
        """Serve ``protocol_id`` with ``handler``. The handler runs in a host task; when it
        returns the stream is closed; if it raises, the stream is reset.

        Args:
            protocol_id: the protocol to serve.
            handler: called with each negotiated inbound stream.
            max_inbound: most streams of this protocol served at once (across all peers);
                further ones are reset. ``None``: only the muxers' stream limits apply.
        """
        self._handlers[protocol_id] = handler
        if max_inbound is None:
            self._handler_limits.pop(protocol_id, None)
        else:
            if max_inbound < 1:
                raise ValueError("max_inbound must be at least 1")
            self._handler_limits[protocol_id] = max_inbound
        if self._started:
            self.emit(LocalProtocolsChanged(protocols=self.protocols))

    def remove_stream_handler(self, protocol_id: str) -> None:
        """Stop serving ``protocol_id`` (streams already running are not affected)."""
        self._handler_limits.pop(protocol_id, None)
        if self._handlers.pop(protocol_id, None) is not None and self._started:
            self.emit(LocalProtocolsChanged(protocols=self.protocols))

    @contextmanager
    def subscribe(
        self, max_buffer: int | None = None
    ) -> Iterator[MemoryObjectReceiveStream[HostEvent]]:
        """Receive host events while the block runs (``async for event in events``)."""
        send, receive = anyio.create_memory_object_stream[HostEvent](
            max_buffer or self.config.event_buffer
        )
        self._subscribers.append(send)
        try:
            with receive:
                yield receive
        finally:
            self._subscribers.remove(send)
            send.close()

    def emit(self, event: HostEvent) -> None:
        """Deliver ``event`` to every subscriber without blocking."""
        for send in list(self._subscribers):
            try:
                send.send_nowait(event)
            except anyio.WouldBlock:
                self._dropped_events += 1
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.remove(send)

    def start_soon(
        self,
        fn: Callable[[Unpack[PosArgs]], Coroutine[Any, Any, object]],
        *args: *PosArgs,
        name: str | None = None,
    ) -> None:
        """Run ``fn(*args)`` in the host's task group; it is cancelled when the host closes."""
        self._tg.start_soon(fn, *args, name=name)

    # -- dialing -------------------------------------------------------------------------------

    async def connect(self, addr: Multiaddr | str) -> Connection:
        """Connect to ``addr`` (with ``/p2p/<id>`` to authenticate the peer), or reuse an open
        connection to that peer.

        Raises:
            ValueError: ``addr`` is not a valid multiaddr.
            DialError: the connection could not be made (``errors`` says why).
        """
        transport_addr, peer = split_peer_id(parse_multiaddr(addr))
        if peer is not None:
            # The address is recorded for the peer only once the handshake proved who is there.
            if transport_addr is None:
                return await self.dial_peer(peer)
            return await self._dial(peer, [transport_addr])
        if transport_addr is None:
            raise ValueError(f"nothing to dial in {addr}")
        return await self._dial_addrs(None, [transport_addr])

    async def dial_peer(self, peer: PeerId) -> Connection:
        """An open connection to ``peer``, dialing its known addresses if there is none.

        Raises:
            DialError: no open connection and every known address failed (or none is known).
        """
        return await self._dial(peer, self.peerstore.addrs(peer))

    async def new_stream(
        self, peer: PeerId, protocols: Sequence[str], *, timeout: float | None = None
    ) -> Stream:
        """Open a stream to ``peer`` speaking the first of ``protocols`` it supports, dialing
        the peer if needed.

        Raises:
            DialError, ProtocolNotSupported, P2PTimeoutError, ConnectionClosedError.
        """
        conn = await self.dial_peer(peer)
        try:
            return await conn.new_stream(protocols, timeout=timeout)
        except ConnectionClosedError:
            # The connection died between lookup and use: one retry on a fresh one.
            conn = await self.dial_peer(peer)
            return await conn.new_stream(protocols, timeout=timeout)

    async def disconnect(self, peer: PeerId) -> None:
        """Close every connection to ``peer``."""
        for conn in self.connections(peer):
            await conn.aclose()

    def _best_connection(self, peer: PeerId) -> Connection | None:
        conns = [c for c in self.connections(peer) if not c.draining]
        return conns[0] if conns else None

    async def _dial(self, peer: PeerId, addrs: Sequence[Multiaddr]) -> Connection:
        while True:
            existing = self._best_connection(peer)
            if existing is not None:
                return existing
            pending = self._pending_dials.get(peer)
            if pending is None:
                break
            await pending.wait()  # another task is dialing this peer: share its result
            if self._best_connection(peer) is None:
                break  # that dial failed: try ourselves, so that we get the errors
        done = self._pending_dials[peer] = anyio.Event()
        try:
            return await self._dial_addrs(peer, addrs)
        finally:
            del self._pending_dials[peer]
            done.set()

    async def _dial_addrs(self, peer: PeerId | None, addrs: Sequence[Multiaddr]) -> Connection:
        errors: list[tuple[str, BaseException]] = []
        for addr in addrs:
            transport = next((t for t in self._transports if t.can_dial(addr)), None)
            if transport is None:
                errors.append((str(addr), TransportError("no transport can dial this address")))
                continue
            try:
                with anyio.fail_after(self.config.dial_timeout):
                    raw = await transport.dial(addr)
            except TimeoutError:
                errors.append(
                    (
                        str(addr),
                        P2PTimeoutError(f"dial timed out after {self.config.dial_timeout:g} s"),
                    )
                )
                continue
            except (P2PError, OSError) as exc:
                errors.append((str(addr), exc))
                continue
            try:
                upgraded = await self.upgrader.upgrade_outbound(raw, remote_peer=peer)
            except P2PError as exc:
                errors.append((str(addr), exc))
                continue
            return self._add_connection(upgraded)
        target = str(peer) if peer is not None else ", ".join(map(str, addrs))
        if not addrs:
            raise DialError(f"no known addresses for {target}")
        raise DialError(f"could not connect to {target}", errors)

    # -- connections -------------------------------------------------------------------------

    def _add_connection(self, upgraded: UpgradedConnection) -> Connection:
        conn = Connection(
            upgraded,
            negotiate_timeout=self.config.negotiate_timeout,
            opened_at=anyio.current_time(),
        )
        peer = conn.remote_peer
        others = self._connections.setdefault(peer, [])
        others.append(conn)
        try:
            self.peerstore.set_public_key(peer, conn.remote_public_key)
        except P2PError:
            log.debug("could not record public key of %s", peer)
        if conn.direction == "outbound":
            self.peerstore.add_addrs(peer, [conn.remote_multiaddr], ADDR_TTL_CONNECTED)
        self._tg.start_soon(self._run_connection, conn, name=f"connection {peer}")
        self.emit(ConnectionOpened(connection=conn))
        self._resolve_simultaneous(peer)
        return conn

    def _resolve_simultaneous(self, peer: PeerId) -> None:
        """Keep one connection per peer when both sides dialed each other at once.

        Both ends apply the same rule, so they agree without talking: of an inbound and an
        outbound connection, keep the one dialed by the peer whose ID bytes sort lower. The
        other finishes its open streams (bounded by ``drain_timeout``) and closes.
        """
        live = [c for c in self.connections(peer) if not c.draining]
        if {c.direction for c in live} != {"inbound", "outbound"}:
            return
        our_dial_wins = self.peer_id.to_bytes() < peer.to_bytes()
        keep = "outbound" if our_dial_wins else "inbound"
        for conn in live:
            if conn.direction != keep:
                conn.draining = True
                self._tg.start_soon(self._drain, conn)

    async def _drain(self, conn: Connection) -> None:
        with anyio.move_on_after(self.config.drain_timeout):
            await conn.wait_idle()
        await conn.aclose()

    async def _run_connection(self, conn: Connection) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._accept_streams, conn)
            await conn._muxed.run()
            tg.cancel_scope.cancel()
        conns = self._connections.get(conn.remote_peer, [])
        if conn in conns:
            conns.remove(conn)
        if not conns:
            self._connections.pop(conn.remote_peer, None)
        self.emit(ConnectionClosed(connection=conn, reason=conn._muxed.close_reason))

    async def _accept_streams(self, conn: Connection) -> None:
        while True:
            try:
                muxed = await conn._muxed.accept_stream()
            except ConnectionClosedError:
                return
            self._tg.start_soon(self._serve_stream, conn, muxed)

    async def _serve_stream(self, conn: Connection, muxed: MuxedStream) -> None:
        try:
            proto, leftover = await negotiate_inbound(
                muxed, self._handlers, timeout=self.config.negotiate_timeout
            )
        except NETWORK_ERRORS as exc:
            log.debug("inbound stream from %s failed to negotiate: %r", conn.remote_peer, exc)
            await muxed.reset()
            return
        handler = self._handlers.get(proto)
        active = self._handler_active.get(proto, 0)
        if handler is None or active >= self._handler_limits.get(proto, active + 1):
            # Removed while negotiating, or at its limit of concurrent inbound streams.
            await muxed.reset()
            return
        stream = Stream(muxed, proto, conn, leftover)
        conn._track(stream)
        self._handler_active[proto] = active + 1
        try:
            await self._run_handler(handler, stream)
        finally:
            self._handler_active[proto] -= 1

    async def _run_handler(self, handler: StreamHandler, stream: Stream) -> None:
        proto = stream.protocol
        try:
            await handler(stream)
        except NETWORK_ERRORS as exc:
            log.debug("%s handler ended with %r", proto, exc)
            await stream.reset()
            return
        except Exception:
            # A bug in one handler must not take down every connection of the host: it is
            # logged with its traceback and only its stream is reset.
            log.exception("stream handler for %s failed", proto)
            await stream.reset()
            return
        await stream.aclose()

    # -- listening and lifecycle ---------------------------------------------------------------

    async def listen(self, addrs: Iterable[Multiaddr | str]) -> list[Multiaddr]:
        """Listen on more addresses.

        Returns:
            The addresses actually bound.

        Raises:
            ValueError: an address is not a valid multiaddr.
            TransportError: no transport handles an address, or binding failed.
        """
        bound: list[Multiaddr] = []
        for text in addrs:
            addr = parse_multiaddr(text)
            transport = next((t for t in self._transports if t.can_listen(addr)), None)
            if transport is None:
                raise TransportError(f"no transport can listen on {addr}")
            listener = await transport.listen(addr)
            self._listeners.append(listener)
            bound.extend(listener.multiaddrs)
            self._tg.start_soon(self._accept_loop, listener, name=f"listener {addr}")
        return bound

    async def _accept_loop(self, listener: Listener) -> None:
        while True:
            try:
                raw = await listener.accept()
            except anyio.ClosedResourceError:
                return
            except OSError as exc:  # e.g. out of file descriptors: back off, keep listening
                log.warning("accept failed on %s: %s", listener.multiaddrs, exc)
                await anyio.sleep(0.1)
                continue
            over_limit = len(self.connections()) >= self.config.max_connections
            if over_limit or self._pending_upgrades >= self.config.max_pending_upgrades:
                log.info("refusing inbound connection from %s: at capacity", raw.remote_multiaddr)
                await raw.aclose()
                continue
            self._pending_upgrades += 1
            self._tg.start_soon(self._upgrade_inbound, raw)

    async def _upgrade_inbound(self, raw: RawConnection) -> None:
        try:
            upgraded = await self.upgrader.upgrade_inbound(raw)
        except P2PError as exc:
            log.debug("inbound upgrade failed: %s", exc)
            return
        finally:
            self._pending_upgrades -= 1
        self._add_connection(upgraded)

    async def _start(self, services: Sequence[Service], listen: Iterable[Multiaddr | str]) -> None:
        for service in services:
            await service.start(self)
        self._started = True
        await self.listen(listen)

    async def _close(self) -> None:
        """Stop listening and close every connection gracefully (bounded by close_timeout)."""
        self._closing = True
        for listener in self._listeners:
            await listener.aclose()
        with anyio.move_on_after(self.config.close_timeout):
            async with anyio.create_task_group() as tg:
                for conn in self.connections():
                    tg.start_soon(conn.aclose)
