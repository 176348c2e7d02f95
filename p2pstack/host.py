"""The host: listens, dials, keeps one connection per peer, opens and dispatches streams, and
runs services, all inside one task group owned by ``open_host``.

Spec background: https://github.com/libp2p/specs/blob/master/connections/README.md
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple, Unpack

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream
from multiaddr import Multiaddr

from p2pstack._handlers import HandlerRegistry, StreamHandler
from p2pstack._ifaddrs import expand_unspecified
from p2pstack.addresses import AddressManager
from p2pstack.connection import Connection, Stream
from p2pstack.connmgr import ConnectionManager, ConnectionManagerConfig, choose_connection_to_keep
from p2pstack.dialer import Dialer, PeerRouting
from p2pstack.errors import (
    NETWORK_ERRORS,
    ConnectionClosedError,
    LimitedConnectionError,
    P2PError,
    P2PTimeoutError,
    PeerIdMismatch,
    ResourceLimitExceeded,
    ServiceNotFound,
    TransportError,
)
from p2pstack.events import (
    ConnectionClosed,
    ConnectionOpened,
    EventBus,
    LocalAddrsChanged,
    LocalProtocolsChanged,
    PeerConnected,
    PeerDisconnected,
    PeerFailed,
    PeerProtocolsChanged,
)
from p2pstack.hostconfig import HostConfig, HostStatistics, default_resource_manager
from p2pstack.identity import PeerId
from p2pstack.interfaces import Service, StreamPushingConnection, UpgradedTransport
from p2pstack.multiaddrs import parse_multiaddr, split_peer_id, with_peer_id
from p2pstack.peerstore import ADDR_TTL_CONNECTED, ADDR_TTL_RECENT, PeerStore, forget_if_anonymous
from p2pstack.resources import ActivityWatcher, ResourceManager
from p2pstack.topology import PeerCallback, Topology

if TYPE_CHECKING:
    from p2pstack.identity import Identity
    from p2pstack.interfaces import (
        Listener,
        MuxedStream,
        RawConnection,
        Role,
        Transport,
        UpgradedConnection,
        UpgradedListener,
        Upgrader,
    )
    from p2pstack.resources import ConnectionScope

__all__ = [
    "NETWORK_ERRORS",
    "Connection",
    "Host",
    "HostConfig",
    "HostStatistics",
    "Stream",
    "StreamHandler",
]

log = logging.getLogger("p2pstack.host")

S = TypeVar("S")
PosArgs = TypeVarTuple("PosArgs")


class Host:
    """A libp2p node. Create it with ``p2pstack.open_host``; it closes when that block exits.

    Attributes:
        events: the event bus (``host.events.on``, ``host.events.subscribe``).
        addresses: observed and advertised addresses, reachability (``AddressManager``).
    """

    def __init__(
        self,
        *,
        identity: Identity,
        transports: Sequence[Transport | UpgradedTransport],
        upgrader: Upgrader,
        peerstore: PeerStore,
        services: Sequence[Service],
        config: HostConfig,
        task_group: TaskGroup,
        resource_manager: ResourceManager | None = None,
        peer_routing: PeerRouting | None = None,
    ) -> None:
        self.identity = identity
        self.resource_manager = resource_manager or default_resource_manager(config)
        self.peer_id: PeerId = identity.peer_id
        self.peerstore = peerstore
        self.config = config
        self.upgrader = upgrader
        self.agent_version = config.agent_version
        self.protocol_version = config.protocol_version
        self.events = EventBus(default_buffer=config.event_buffer)
        self.addresses = AddressManager(
            listen_addrs=lambda: self.listen_addrs,
            events=self.events,
            clock=anyio.current_time,
            config=config.addresses,
        )
        self._transports = list(transports)
        self._services = list(services)
        self._started_services: list[Service] = []
        self._tg = task_group
        self._service_tg: TaskGroup | None = None
        self._handlers = HandlerRegistry(
            self.events, self.resource_manager, negotiate_timeout=config.negotiate_timeout
        )
        self._listeners: list[Listener | UpgradedListener] = []
        self._connections: dict[PeerId, list[Connection]] = {}
        #: Losing connections still waiting to close, with the scope that keeps them instead.
        self._draining: dict[Connection, anyio.CancelScope] = {}
        self._connected: set[PeerId] = set()  # as published with PeerConnected
        self._peer_protocols: dict[PeerId, frozenset[str]] = {}
        self._pending_upgrades = 0
        self._started = False
        self._listening = anyio.Event()
        self._closing = False
        #: Dials peers (``dialer.peer_routing`` may be set later, by a DHT service's start).
        self.dialer: Dialer[Connection] = Dialer(
            self._dial_one,
            close=_close_connection,
            addrs_of=peerstore.addrs,
            policy=config.dial_policy,
            peer_routing=peer_routing,
            on_routed=lambda peer, addrs: peerstore.add_addrs(peer, addrs, ADDR_TTL_RECENT),
            clock=anyio.current_time,
        )
        cap = config.max_connections
        #: Tags, protection, trimming and the minimum peer count.
        self.connmgr: ConnectionManager[Connection] = ConnectionManager(
            connections=self.connections,
            close=_close_connection,
            local_peer=self.peer_id,
            config=config.connection_manager
            or ConnectionManagerConfig(low_water=cap, high_water=cap),
            clock=anyio.current_time,
            on_protection_changed=self._protection_changed,
        )
        # Discovery services hear "below the minimum peer count" on the bus like any event.
        self.connmgr.on_below_min(self.events.emit)
        # A peer a failure detector declared gone is not redialed until it connects again.
        self.events.on(PeerFailed, self._peer_failed)
        task_group.start_soon(self.connmgr.run, name="connection manager")

    # -- introspection -------------------------------------------------------------------------

    @property
    def bound_addrs(self) -> list[Multiaddr]:
        """The addresses actually bound by the listeners (``0.0.0.0`` stays as it is)."""
        return [addr for listener in self._listeners for addr in listener.multiaddrs]

    @property
    def listen_addrs(self) -> list[Multiaddr]:
        """The addresses we can be dialed at, without ``/p2p/``: the bound ones, with
        ``/ip4/0.0.0.0`` and ``/ip6/::`` expanded to the interfaces' addresses."""
        return expand_unspecified(self.bound_addrs)

    @property
    def addrs(self) -> list[Multiaddr]:
        """``listen_addrs`` with ``/p2p/<our id>``: what to give another node to dial us."""
        return [with_peer_id(addr, self.peer_id) for addr in self.listen_addrs]

    @property
    def protocols(self) -> list[str]:
        """Protocol IDs with a registered stream handler."""
        return self._handlers.protocols

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
        """A snapshot of the host's counters."""
        conns = self.connections()
        bus = self.events.statistics()
        return HostStatistics(
            connections=len(conns),
            streams=sum(len(c.streams) for c in conns),
            pending_upgrades=self._pending_upgrades,
            listeners=len(self._listeners),
            dropped_events=bus.dropped_events,
            handler_failures=self._handlers.handler_failures,
            event_callback_failures=bus.callback_failures,
        )

    # -- handlers, events, topologies, tasks ---------------------------------------------------

    def set_stream_handler(
        self,
        protocol_id: str,
        handler: StreamHandler,
        *,
        replace: bool = False,
        max_inbound: int | None = None,
        max_inbound_per_peer: int | None = None,
        allow_limited: bool = False,
    ) -> None:
        """Serve ``protocol_id`` with ``handler``. The handler runs in a host task; when it
        returns the stream is closed; if it raises, the stream is reset (a non-network error
        is also logged, counted and published as ``StreamHandlerFailed``).

        Args:
            protocol_id: the protocol to serve.
            handler: called with each negotiated inbound stream.
            replace: replace an existing handler for ``protocol_id`` instead of failing.
            max_inbound: most streams of this protocol served at once (across all peers);
                further ones are reset. ``None``: the resource manager's protocol limits.
            max_inbound_per_peer: most streams of this protocol served at once per peer
                (``None``: the resource manager's per-peer protocol limits).
            allow_limited: also serve streams on limited (relayed) connections; without it,
                a limited connection's peer is told the protocol is not supported.

        Raises:
            ProtocolAlreadyRegistered: ``protocol_id`` already has a handler and ``replace``
                is false.
            ValueError: a limit is less than 1.
        """
        self._handlers.add(
            protocol_id,
            handler,
            replace=replace,
            max_inbound=max_inbound,
            max_inbound_per_peer=max_inbound_per_peer,
            allow_limited=allow_limited,
        )
        if self._started:
            self.events.emit(LocalProtocolsChanged(protocols=self.protocols))

    def remove_stream_handler(self, protocol_id: str) -> None:
        """Stop serving ``protocol_id`` (streams already running are not affected)."""
        if self._handlers.remove(protocol_id) and self._started:
            self.events.emit(LocalProtocolsChanged(protocols=self.protocols))

    def set_peer_protocols(self, peer: PeerId, protocols: Iterable[str]) -> None:
        """Record the protocols ``peer`` supports (identify calls this) and, if the peer is
        connected, publish ``PeerProtocolsChanged`` when the list is new for this connected
        period or differs from the last one.

        Args:
            peer: the peer.
            protocols: every protocol it supports now.
        """
        listed = list(dict.fromkeys(protocols))
        self.peerstore.set_protocols(peer, listed)
        if peer not in self._connections:
            return
        new = frozenset(listed)
        old = self._peer_protocols.get(peer)
        if old == new:
            return
        self._peer_protocols[peer] = new
        previous = old or frozenset()
        self.events.emit(
            PeerProtocolsChanged(
                peer_id=peer, protocols=listed, added=new - previous, removed=previous - new
            )
        )

    def register_topology(
        self,
        protocol_id: str,
        *,
        on_connect: PeerCallback | None = None,
        on_disconnect: PeerCallback | None = None,
    ) -> Topology:
        """Follow the connected peers that support ``protocol_id``.

        ``on_connect(peer)`` is called when a connected peer is known (through identify) to
        support the protocol, including, at once, the peers already known when this is called;
        ``on_disconnect(peer)`` when such a peer's last connection closes or it stops listing
        the protocol. Both are called synchronously and must not block.

        Args:
            protocol_id: the protocol to follow.
            on_connect: called with each peer that joins.
            on_disconnect: called with each peer that leaves.

        Returns:
            The topology; ``close()`` it to stop.
        """
        topology = Topology(
            self.events, protocol_id, on_connect=on_connect, on_disconnect=on_disconnect
        )
        topology._seed(list(self._peer_protocols.items()))
        return topology

    @contextmanager
    def subscribe(self, max_buffer: int | None = None) -> Iterator[MemoryObjectReceiveStream[Any]]:
        """Deprecated: use ``host.events.subscribe()``. Every event, lossy (drops counted).

        Args:
            max_buffer: events buffered (``config.event_buffer`` if ``None``).

        Returns:
            A memory object stream of events, valid while the block runs.
        """
        send, receive = anyio.create_memory_object_stream[Any](
            max_buffer or self.config.event_buffer
        )

        def deliver(event: object) -> None:
            try:
                send.send_nowait(event)
            except anyio.WouldBlock:
                self.events._dropped += 1

        with self.events.on(object, deliver), send, receive:
            yield receive

    def emit(self, event: object) -> None:
        """Deprecated: use ``host.events.emit(event)``."""
        self.events.emit(event)

    def start_soon(
        self,
        fn: Callable[[Unpack[PosArgs]], Coroutine[Any, Any, object]],
        *args: *PosArgs,
        name: str | None = None,
    ) -> None:
        """Run ``fn(*args)`` as a service task. Service tasks are cancelled when the host
        closes, after every service's ``stop()`` and before connections close. Once they are
        cancelled, this does nothing (``fn`` is not called)."""
        if self._service_tg is None:
            log.debug("host closing: task %s not started", name or fn)
            return
        self._service_tg.start_soon(fn, *args, name=name)

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
            # An address given explicitly is tried even if the peer is in dial backoff.
            return await self._dial(peer, [transport_addr], force=True)
        if transport_addr is None:
            raise ValueError(f"nothing to dial in {addr}")
        return await self.dialer.dial_addrs(None, [transport_addr])

    async def dial_peer(self, peer: PeerId | str) -> Connection:
        """An open connection to ``peer``, dialing its known addresses if there is none (or
        those the peer-routing hook finds, if the peerstore has none).

        Args:
            peer: the peer, as a ``PeerId`` or its text form.

        Raises:
            InvalidPeerIdError: ``peer`` is a string that is not a peer ID.
            DialBackoff: the peer failed recently (a ``DialError``).
            DialError: no open connection and every address failed (or none is known).
        """
        peer = _as_peer_id(peer)
        return await self._dial(peer, None)

    async def new_stream(
        self,
        peer: PeerId | str,
        protocols: str | Sequence[str],
        *,
        timeout: float | None = None,
        allow_limited: bool = False,
    ) -> Stream:
        """Open a stream to ``peer`` speaking the first of ``protocols`` it supports, dialing
        the peer if needed.

        Args:
            peer: the peer, as a ``PeerId`` or its text form.
            protocols: one protocol ID, or several in order of preference.
            timeout: seconds for protocol negotiation (``config.negotiate_timeout`` if
                ``None``); dialing has its own deadlines.
            allow_limited: accept a limited (relayed) connection to the peer.

        Returns:
            The negotiated stream; close it (or ``async with`` it) when done.

        Raises:
            InvalidPeerIdError: ``peer`` is a string that is not a peer ID.
            DialError: no connection could be made (its ``errors`` list each address tried).
            ConnectionClosedError: the connection closed while the stream was being opened
                (after one retry on a fresh connection).
            LimitedConnectionError: the connection is limited and ``allow_limited`` is false.
            ProtocolNotSupported: the peer supports none of ``protocols``. When ``protocols``
                is one protocol the peer announced (``set_peer_protocols``), it is proposed
                optimistically and this and the negotiation errors below are raised by the
                stream's first ``receive`` instead.
            NegotiationError: the peer broke multistream-select.
            P2PTimeoutError: negotiation took longer than ``timeout``.
            StreamReset: the peer reset the stream during negotiation.
            ResourceLimitExceeded: our resource manager refused the stream (a stream limit of
                the connection, peer, protocol or system scope).
            anyio.EndOfStream, anyio.BrokenResourceError: the stream ended or broke during
                negotiation (all of the above are in ``p2pstack.errors.NETWORK_ERRORS``).
        """
        peer = _as_peer_id(peer)
        wanted = [protocols] if isinstance(protocols, str) else list(protocols)
        conn = await self.dial_peer(peer)
        try:
            return await self._open_on(conn, wanted, timeout, allow_limited)
        except ConnectionClosedError:
            # The connection died between lookup and use: one retry on a fresh one.
            conn = await self.dial_peer(peer)
            return await self._open_on(conn, wanted, timeout, allow_limited)

    async def _open_on(
        self, conn: Connection, protocols: list[str], timeout: float | None, allow_limited: bool
    ) -> Stream:
        if conn.limited and not allow_limited:
            raise LimitedConnectionError(
                f"the only connection to {conn.remote_peer} is limited (relayed); "
                "pass allow_limited=True to use it"
            )
        # Like go-libp2p: a protocol the peer announced (identify) is proposed optimistically,
        # saving the negotiation round trip; a refusal then surfaces on the first read.
        known = self._peer_protocols.get(conn.remote_peer, frozenset())
        lazy = len(protocols) == 1 and protocols[0] in known
        return await conn.new_stream(protocols, timeout=timeout, lazy=lazy)

    async def disconnect(self, peer: PeerId | str) -> None:
        """Close every connection to ``peer`` (a ``PeerId`` or its text form).

        Raises:
            InvalidPeerIdError: ``peer`` is a string that is not a peer ID.
        """
        for conn in self.connections(_as_peer_id(peer)):
            await conn.aclose()

    def _best_connection(self, peer: PeerId) -> Connection | None:
        conns = [c for c in self.connections(peer) if not c.draining]
        # A direct connection is preferred to a limited (relayed) one.
        conns.sort(key=lambda c: c.limited)
        return conns[0] if conns else None

    async def _dial(
        self, peer: PeerId, addrs: Sequence[Multiaddr] | None, *, force: bool = False
    ) -> Connection:
        existing = self._best_connection(peer)
        if existing is not None and not (existing.limited and _has_direct(addrs)):
            # Only an explicit direct address is dialed next to a limited connection (the
            # direct connection then replaces it); otherwise any open connection serves.
            return existing
        try:
            conn = await self.dialer.dial(peer, addrs, force=force)
        finally:
            self._settle_peer(peer)
        if conn.draining or conn.is_closed:
            # A shared dial's connection may have lost a simultaneous-dial race since.
            return self._best_connection(peer) or conn
        return conn

    async def dial_direct(
        self, peer: PeerId, addr: Multiaddr, *, role: Role = "initiator"
    ) -> Connection:
        """Open a new connection to ``peer`` at ``addr`` even if one is open (hole punching:
        the direct connection that replaces a relayed one).

        Args:
            peer: the peer that must answer at ``addr``.
            addr: a transport address (without ``/p2p/``).
            role: ``"responder"`` runs the upgrade as the responding side, for the peer that
                does not lead a TCP simultaneous open (ignored by pre-upgraded transports).

        Raises:
            ResourceLimitExceeded, TransportError, P2PTimeoutError, SecurityError,
            NegotiationError, UpgradeError, OSError: the dial failed.
        """
        return await self._dial_one(addr, peer, role=role)

    async def _dial_one(
        self, addr: Multiaddr, peer: PeerId | None, *, role: Role = "initiator"
    ) -> Connection:
        """One attempt of the dialer: the outbound resource scope (the outbound cap, the
        gater's deny list: checked before a socket is used), dial and upgrade, admission of
        the proven peer; then the host adopts the connection.

        Raises:
            ResourceLimitExceeded, TransportError, P2PTimeoutError, SecurityError,
            NegotiationError, UpgradeError, OSError: this address failed.
        """
        scope = self.resource_manager.open_connection("outbound", addr)
        try:
            upgraded = await self._dial_upgrade(addr, peer, scope, role)
        except BaseException:
            scope.done()
            raise
        refusal = await self._admit(upgraded, scope)
        if refusal is not None:
            raise refusal
        return self._add_connection(upgraded, scope)

    async def _dial_upgrade(
        self, addr: Multiaddr, peer: PeerId | None, scope: ConnectionScope, role: Role
    ) -> UpgradedConnection:
        """Dial and upgrade one address (the upgrade has its own staged deadlines).

        Raises:
            TransportError, P2PTimeoutError, SecurityError, NegotiationError, UpgradeError,
            OSError: this address failed.
        """
        transport = next((t for t in self._transports if t.can_dial(addr)), None)
        if transport is None:
            raise TransportError("no transport can dial this address")
        if isinstance(transport, UpgradedTransport):
            limit = self.config.dial_timeout + self.config.upgrade_timeout
            try:
                with anyio.fail_after(limit):
                    upgraded = await transport.dial(addr, remote_peer=peer, upgrader=self.upgrader)
            except TimeoutError as exc:
                if isinstance(exc, P2PError):
                    raise
                raise P2PTimeoutError(f"dial timed out after {limit:g} s") from None
            if peer is not None and upgraded.info.remote_peer != peer:
                with anyio.CancelScope(shield=True):
                    await upgraded.muxed.aclose()
                raise PeerIdMismatch(str(peer), str(upgraded.info.remote_peer))
            return upgraded
        try:
            with anyio.fail_after(self.config.dial_timeout):
                raw = await transport.dial(addr)
        except TimeoutError as exc:
            if isinstance(exc, P2PError):
                raise
            raise P2PTimeoutError(f"dial timed out after {self.config.dial_timeout:g} s") from None
        return await self.upgrader.upgrade_outbound(raw, remote_peer=peer, role=role, memory=scope)

    # -- connections -------------------------------------------------------------------------

    async def _admit(self, upgraded: UpgradedConnection, scope: ConnectionScope) -> P2PError | None:
        """Attach the proven peer to the connection's scope (per-peer limit, bans); close the
        connection if it is refused or was evicted meanwhile.

        Returns:
            ``None`` if the connection may be added, else why it was closed.
        """
        peer = upgraded.info.remote_peer
        try:
            scope.set_peer(peer)
            return None
        except ResourceLimitExceeded as exc:
            reason: P2PError = exc
        except ValueError:  # the scope was released: evicted just as the upgrade finished
            reason = P2PError("evicted from the pending-upgrade pool")
        log.info("closing %s connection with %s: %s", upgraded.info.direction, peer, reason)
        scope.done()
        with anyio.move_on_after(self.config.close_timeout, shield=True):
            await upgraded.muxed.aclose()
        return reason

    def _add_connection(self, upgraded: UpgradedConnection, scope: ConnectionScope) -> Connection:
        conn = Connection(
            upgraded,
            local_peer=self.peer_id,
            negotiate_timeout=self.config.negotiate_timeout,
            opened_at=anyio.current_time(),
        )
        conn._scope = scope
        peer = conn.remote_peer
        self._connections.setdefault(peer, []).append(conn)
        first = peer not in self._connected
        self._connected.add(peer)
        self.peerstore.pin(peer, "connected")
        self.dialer.clear_backoff(peer)
        self.connmgr.opened(conn)
        try:
            self.peerstore.set_public_key(peer, conn.remote_public_key)
        except P2PError:
            log.debug("could not record public key of %s", peer)
        if conn.direction == "outbound":
            self.peerstore.add_addrs(peer, [conn.remote_multiaddr], ADDR_TTL_CONNECTED)
        self._tg.start_soon(self._run_connection, conn, name=f"connection {peer}")
        self._resolve_simultaneous(peer)
        self.events.emit(ConnectionOpened(connection=conn))
        if first:
            self.events.emit(PeerConnected(peer_id=peer, connection=conn))
        return conn

    def _resolve_simultaneous(self, peer: PeerId) -> None:
        """Keep one connection per peer when there are several (both sides dialed each other
        at once, or a direct connection joined a relayed one).

        Both ends apply ``choose_connection_to_keep`` (direct over limited, then the dial of
        the peer whose ID bytes sort lower), so they agree without talking. The others finish
        their open streams (bounded by ``drain_timeout``) and close.
        """
        live = [c for c in self.connections(peer) if not c.draining]
        both_directions = {c.direction for c in live} == {"inbound", "outbound"}
        direct_and_limited = len({c.limited for c in live}) == 2
        if not (both_directions or direct_and_limited):
            # Several connections we dialed on purpose (``connect`` to a bare address opens a
            # new one each time) are all kept.
            return
        keep = choose_connection_to_keep(self.peer_id, live)
        for conn in live:
            if conn is not keep and (conn.direction, conn.limited) != (
                keep.direction,
                keep.limited,
            ):
                conn.draining = True
                # Registered now, not when the task starts: the kept connection may close in
                # the same turn of the event loop, and the loser must be revivable by then.
                revived = self._draining[conn] = anyio.CancelScope()
                self._tg.start_soon(self._drain, conn, revived)

    async def _drain(self, conn: Connection, revived: anyio.CancelScope) -> None:
        try:
            with revived, anyio.move_on_after(self.config.drain_timeout):
                await anyio.sleep(self.config.drain_grace)
                await conn.wait_idle()
        finally:
            if self._draining.get(conn) is revived:
                del self._draining[conn]
        if conn.draining:
            await conn.aclose()

    def _revive_drained(self, peer: PeerId) -> None:
        """The connection kept for ``peer`` closed while a loser was still draining (a peer
        that does not apply our rule closed the one we kept, as js-libp2p closes the carrier
        of a DCUtR upgrade after dialing us): keep the newest loser instead of ending up with
        no connection."""
        conns = self.connections(peer)
        if not conns or any(not c.draining for c in conns):
            return
        candidates = [c for c in conns if c in self._draining and not c.is_closed]
        if candidates:
            conn = max(candidates, key=lambda c: c.opened_at)
            conn.draining = False
            self._draining.pop(conn).cancel()

    async def _run_connection(self, conn: Connection) -> None:
        muxed = conn._muxed
        if isinstance(muxed, StreamPushingConnection):
            # Inbound streams are handed over as they open: no task (and task group) per
            # connection waiting in accept_stream.
            muxed.set_stream_handler(functools.partial(self._serve_stream, conn))
            await muxed.run()
        else:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._accept_streams, conn)
                await muxed.run()
                tg.cancel_scope.cancel()
        peer = conn.remote_peer
        conns = self._connections.get(peer, [])
        if conn in conns:
            conns.remove(conn)
        if not conns:
            self._connections.pop(peer, None)
        if conn._scope is not None:
            conn._scope.done()
        self.connmgr.closed(conn)
        self.events.emit(ConnectionClosed(connection=conn, reason=conn._muxed.close_reason))
        self._revive_drained(peer)
        self._settle_peer(peer)

    def _settle_peer(self, peer: PeerId) -> None:
        """Publish ``PeerDisconnected`` once ``peer`` has no connection and none is being dialed
        (a simultaneous dial's loser may close first: one connect, one disconnect per peer)."""
        gone = peer not in self._connections and not self.dialer.is_dialing(peer)
        if gone and peer in self._connected:
            self._connected.discard(peer)
            self.peerstore.unpin(peer, "connected")
            self._peer_protocols.pop(peer, None)
            forget_if_anonymous(self.peerstore, peer)  # never identified: keep nothing
            self.events.emit(PeerDisconnected(peer_id=peer))

    def _serve_stream(self, conn: Connection, muxed: MuxedStream) -> None:
        self._tg.start_soon(self._serve_pushed, conn, muxed)

    async def _serve_pushed(self, conn: Connection, muxed: MuxedStream) -> None:
        # One scheduling round first, as when an accept task handed streams over: the handlers
        # of streams that ended earlier on the wire (in the same read) run first and give back
        # their per-peer slots before this stream is counted.
        await anyio.lowlevel.checkpoint()
        await self._handlers.serve(conn, muxed)

    async def _accept_streams(self, conn: Connection) -> None:
        while True:
            try:
                muxed = await conn._muxed.accept_stream()
            except ConnectionClosedError:
                return
            self._tg.start_soon(self._handlers.serve, conn, muxed)

    # -- listening and lifecycle ---------------------------------------------------------------

    async def listen(self, addrs: Iterable[Multiaddr | str]) -> list[Multiaddr]:
        """Listen on more addresses; publishes ``LocalAddrsChanged`` if any was bound.

        Returns:
            The addresses actually bound.

        Raises:
            ValueError: an address is not a valid multiaddr.
            TransportError: no transport handles an address, or binding failed.
        """
        bound: list[Multiaddr] = []
        try:
            for text in addrs:
                addr = parse_multiaddr(text)
                transport = next((t for t in self._transports if t.can_listen(addr)), None)
                if transport is None:
                    raise TransportError(f"no transport can listen on {addr}")
                if isinstance(transport, UpgradedTransport):
                    upgraded = await transport.listen(addr, upgrader=self.upgrader)
                    self._listeners.append(upgraded)
                    bound.extend(upgraded.multiaddrs)
                    self._tg.start_soon(self._accept_upgraded, upgraded, name=f"listener {addr}")
                    continue
                listener = await transport.listen(addr)
                self._listeners.append(listener)
                bound.extend(listener.multiaddrs)
                self._tg.start_soon(self._accept_loop, listener, name=f"listener {addr}")
        finally:
            if bound:
                self.events.emit(LocalAddrsChanged(addrs=self.addrs))
        return bound

    async def _accept_loop(self, listener: Listener) -> None:
        while True:
            try:
                raw = await listener.accept()
            except anyio.ClosedResourceError:
                self._listener_closed(listener)
                return
            except OSError as exc:  # e.g. out of file descriptors: back off, keep listening
                log.warning("accept failed on %s: %s", listener.multiaddrs, exc)
                await anyio.sleep(0.1)
                continue
            # When the pending-upgrade pool is full, the oldest connection that has sent
            # nothing yet is evicted (its upgrade cancelled) to admit this one.
            evict = anyio.CancelScope()
            try:
                scope = self.resource_manager.open_connection(
                    "inbound", raw.remote_multiaddr, on_evict=evict.cancel
                )
            except ResourceLimitExceeded as exc:
                log.info("refusing inbound connection from %s: %s", raw.remote_multiaddr, exc)
                await raw.aclose()
                continue
            self._pending_upgrades += 1
            self._tg.start_soon(self._upgrade_inbound, ActivityWatcher(raw, scope), scope, evict)

    async def _accept_upgraded(self, listener: UpgradedListener) -> None:
        while True:
            try:
                upgraded = await listener.accept()
            except anyio.ClosedResourceError:
                self._listener_closed(listener)
                return
            except OSError as exc:
                log.warning("accept failed on %s: %s", listener.multiaddrs, exc)
                await anyio.sleep(0.1)
                continue
            try:
                scope = self.resource_manager.open_connection("inbound", upgraded.info.remote_addr)
            except ResourceLimitExceeded as exc:
                log.info("refusing inbound connection from %s: %s", upgraded.info.remote_addr, exc)
                with anyio.move_on_after(self.config.close_timeout, shield=True):
                    await upgraded.muxed.aclose()
                continue
            if await self._admit(upgraded, scope) is None:
                self._add_connection(upgraded, scope)

    def _listener_closed(self, listener: Listener | UpgradedListener) -> None:
        if self._closing or listener not in self._listeners:
            return
        self._listeners.remove(listener)
        self.events.emit(LocalAddrsChanged(addrs=self.addrs))

    async def _upgrade_inbound(
        self, raw: RawConnection, scope: ConnectionScope, evict: anyio.CancelScope
    ) -> None:
        upgraded: UpgradedConnection | None = None
        try:
            with evict:
                upgraded = await self.upgrader.upgrade_inbound(raw, memory=scope)
        except P2PError as exc:
            log.debug("inbound upgrade failed: %s", exc)
        finally:
            self._pending_upgrades -= 1
            if upgraded is None:
                scope.done()
        if upgraded is None:
            if evict.cancelled_caught:
                log.debug("evicted silent pending connection from %s", raw.remote_multiaddr)
            return
        if await self._admit(upgraded, scope) is None:
            self._add_connection(upgraded, scope)

    async def _start(self, listen: Iterable[Multiaddr | str]) -> None:
        """Start the transports that are services, then every service (in order), then
        listen."""
        transports = [t for t in self._transports if isinstance(t, Service)]
        for service in [*transports, *self._services]:
            await service.start(self)
            self._started_services.append(service)
        self._started = True
        await self.listen(listen)
        self._listening.set()

    async def wait_listening(self) -> None:
        """Wait until the host has started and bound its initial listen addresses (at once if
        it has). Services that dial at start wait here, so that a dial made with port reuse
        leaves from the listen port (an observed address a hole punch can use)."""
        await self._listening.wait()

    async def _stop_services(self) -> None:
        """Stop listening, then stop the started services in reverse order, each bounded by
        ``service_stop_timeout``. Every service is stopped even if one fails; the failures are
        raised afterwards."""
        self._closing = True
        for listener in self._listeners:
            await listener.aclose()
        failures: list[Exception] = []
        while self._started_services:
            service = self._started_services.pop()
            with anyio.move_on_after(self.config.service_stop_timeout) as scope:
                try:
                    await service.stop()
                except Exception as exc:
                    failures.append(exc)
            if scope.cancelled_caught:
                log.warning(
                    "%s.stop() took more than %g s",
                    type(service).__name__,
                    self.config.service_stop_timeout,
                )
        if len(failures) == 1:
            raise failures[0]
        if failures:
            raise ExceptionGroup("services failed to stop", failures)

    async def _close(self) -> None:
        """Close every connection gracefully (bounded by close_timeout)."""
        self._closing = True
        self._service_tg = None
        with anyio.move_on_after(self.config.close_timeout):
            async with anyio.create_task_group() as tg:
                for conn in self.connections():
                    tg.start_soon(conn.aclose)

    def _peer_failed(self, event: PeerFailed) -> None:
        self.dialer.suspend(event.peer_id, self.dialer.policy.failed_peer_backoff)
        self.connmgr.forget_peer(event.peer_id)

    def _protection_changed(self, peer: PeerId, protected: bool) -> None:
        if protected:
            self.peerstore.pin(peer, "protected")
        else:
            self.peerstore.unpin(peer, "protected")


async def _close_connection(conn: Connection) -> None:
    await conn.aclose()


def _has_direct(addrs: Sequence[Multiaddr] | None) -> bool:
    """Whether ``addrs`` holds an address that is not relayed (``/p2p-circuit``)."""
    return addrs is not None and any(
        all(p.name != "p2p-circuit" for p in addr.protocols()) for addr in addrs
    )


def _as_peer_id(peer: PeerId | str) -> PeerId:
    return PeerId.from_string(peer) if isinstance(peer, str) else peer
