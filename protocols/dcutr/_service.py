"""The DCUtR service: drives ``InitiatorCore`` / ``ResponderCore`` over ``/libp2p/dcutr``
streams and makes the direct connection
(https://github.com/libp2p/specs/blob/master/relay/DCUtR.md).

Roles: the spec leaves open which side runs the security handshake as initiator. Every
deployed implementation lets the peer that *received* the stream (``A``, which dialed through
the relay) act as the client and the stream's opener (``B``) as the server: go-libp2p's default
("legacy") hole puncher dials with ``isClient=false``, rust-libp2p's dcutr dials from ``B``
with ``override_role()``, js-libp2p's with ``initiator: false``. We do the same.

TCP: both peers dial from their listen ports at once (TCP simultaneous open; the transport needs
``port_reuse``); ``A`` runs the upgrade as initiator, ``B`` as responder
(``Host.dial_direct(role=...)``). QUIC: ``A`` dials; ``B`` sends random datagrams from its listen
socket every 10-200 ms (``udp_punch``) so that its NAT lets the dial in, which then arrives as
an inbound connection (go's and rust's QUIC "server role" of a hole punch). Whichever direct
connection to the peer appears first wins; the host then prefers it over the relayed one and
closes that after its streams drain (``choose_connection_to_keep``: direct beats limited).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import anyio

from p2pstack.errors import NETWORK_ERRORS, LocalProtocolError, RemoteProtocolError
from p2pstack.events import ConnectionClosed, ConnectionOpened
from p2pstack.multiaddrs import split_peer_id
from protocols.dcutr._core import DialRequested, InitiatorCore, ResponderCore, UpgradeFailed
from protocols.dcutr._events import HolePunchFinished
from protocols.dcutr._policy import AddressPolicy, transport_of
from protocols.dcutr._punch import PUNCH_SIZE
from protocols.dcutr._wire import MAX_ADDRS, MAX_MESSAGE_SIZE, PROTOCOL_ID

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.connection import Connection, Stream
    from p2pstack.host import Host
    from p2pstack.identity import PeerId
    from p2pstack.interfaces import Role

__all__ = ["Dcutr", "host_addrs"]

_log = logging.getLogger(__name__)

#: Sends one datagram to a quic-v1 address from our listen socket; returns whether it could.
UdpPunch = Callable[["Multiaddr", bytes], Awaitable[bool]]
#: What a failed dial raises (``P2PError`` is among ``NETWORK_ERRORS``).
_DIAL_ERRORS: tuple[type[BaseException], ...] = (OSError, *NETWORK_ERRORS)
#: Most upgrades we run as B at once (each holds a stream and up to MAX_ADDRS dials);
#: relayed connections arriving beyond it stay relayed.
MAX_CONCURRENT_UPGRADES = 16
#: Seconds between punch packets: "random UDP packets ... every 10-200 ms".
PUNCH_INTERVAL = (0.010, 0.200)


def host_addrs(host: Host) -> list[Multiaddr]:
    """What DCUtR offers by default: ``host.addresses``' confirmed observed addresses (how
    peers outside our NAT see us) first, those of our listening sockets (the ones a TCP
    simultaneous open and a QUIC punch use) ahead of the rest, then the advertised ones
    (listen addresses and external ones), without duplicates."""
    addresses = host.addresses
    observed = addresses.observed()
    advertised = addresses.advertised()
    of_listeners = [a for a in advertised if a in set(observed)]
    return list(dict.fromkeys([*of_listeners, *observed, *advertised]))


class Dcutr:
    """Direct Connection Upgrade through Relay (``host.service(Dcutr)``).

    Args:
        address_source: our addresses to offer the peer; default ``host_addrs``: the
            host's confirmed observed addresses first, then its advertised ones. Only TCP
            and QUIC-v1 addresses are sent.
        allow_private_addresses: dial private, loopback and other non-global addresses the
            peer sent (tests only; see ``AddressPolicy``).
        max_attempts: CONNECT/SYNC rounds (the spec: 3).
        response_timeout: seconds to wait for the peer's CONNECT.
        attempt_timeout: seconds each attempt may take to produce a direct connection.
        idle_timeout: seconds the responder waits for the peer's next message.
        udp_punch: sends a punch datagram from the QUIC listen socket (``PunchSockets.punch``);
            without it this side cannot help a QUIC hole punch as responder.
        auto: start an upgrade on every new inbound limited (relayed) connection.
        unilateral_first: before the exchange, dial the peer's known addresses that pass the
            policy (the spec's unilateral upgrade).
        random_bytes: punch payloads; ``rng``: punch intervals (injectable for tests).
    """

    def __init__(
        self,
        *,
        address_source: Callable[[], Sequence[Multiaddr]] | None = None,
        allow_private_addresses: bool = False,
        max_attempts: int = 3,
        response_timeout: float = 10.0,
        attempt_timeout: float = 5.0,
        idle_timeout: float = 30.0,
        udp_punch: UdpPunch | None = None,
        auto: bool = True,
        unilateral_first: bool = True,
        random_bytes: Callable[[int], bytes] = os.urandom,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.policy = AddressPolicy(allow_private=allow_private_addresses)
        self._address_source = address_source
        self._max_attempts = max_attempts
        self._response_timeout = response_timeout
        self._attempt_timeout = attempt_timeout
        self._idle_timeout = idle_timeout
        self._udp_punch = udp_punch
        self._auto = auto
        self._unilateral_first = unilateral_first
        self._random_bytes = random_bytes
        self._rng = rng or random.Random()
        self._host: Host | None = None
        self._running: set[PeerId] = set()
        self._scheduled: set[PeerId] = set()  # auto upgrades started, not yet running

    async def start(self, host: Host) -> None:
        """Serve ``/libp2p/dcutr`` (on limited connections too) and watch new connections."""
        self._host = host
        host.set_stream_handler(
            PROTOCOL_ID, self._serve, max_inbound=16, max_inbound_per_peer=1, allow_limited=True
        )
        if self._auto:
            host.events.on(ConnectionOpened, self._on_connection)

    async def stop(self) -> None:
        """Nothing to leave: the host cancels running upgrades."""

    def local_addrs(self) -> tuple[Multiaddr, ...]:
        """The addresses we offer in CONNECT: TCP and QUIC ones, by IP or DNS name (relayed
        and other transports' addresses left out), at most ``MAX_ADDRS``."""
        host = self._need_host()
        source = self._address_source or (lambda: host_addrs(host))
        return tuple(a for a in source() if transport_of(a, dns=True) is not None)[:MAX_ADDRS]

    def _need_host(self) -> Host:
        if self._host is None:
            raise LocalProtocolError("Dcutr used before the service was started")
        return self._host

    def _on_connection(self, event: ConnectionOpened) -> None:
        conn = event.connection
        # The spec: the peer that received the relayed connection starts the upgrade.
        if not (conn.limited and conn.direction == "inbound") or self._host is None:
            return
        peer = conn.remote_peer
        busy = self._scheduled | self._running
        if len(busy) >= MAX_CONCURRENT_UPGRADES or peer in busy:
            _log.info("dcutr: not upgrading %s (busy)", peer)
            return
        self._scheduled.add(peer)
        self._host.start_soon(self._auto_upgrade, conn, name="dcutr upgrade")

    async def _auto_upgrade(self, conn: Connection) -> None:
        try:
            self._scheduled.discard(conn.remote_peer)
            await self.upgrade(conn)
        except NETWORK_ERRORS as exc:
            _log.info("dcutr with %s: %r", conn.remote_peer, exc)
        finally:
            self._scheduled.discard(conn.remote_peer)

    # -- initiator (the spec's B) -----------------------------------------------------------

    async def upgrade(self, connection: Connection) -> HolePunchFinished:
        """Run the upgrade over ``connection`` (normally an inbound relayed one) as initiator.

        Returns:
            The outcome (also published on the host's event bus).

        Raises:
            LocalProtocolError: an upgrade with this peer is already running.
            P2PError: opening the stream failed (``ProtocolNotSupported``, ...).
        """
        host = self._need_host()
        peer = connection.remote_peer
        if peer in self._running:
            raise LocalProtocolError(f"a DCUtR upgrade with {peer} is already running")
        self._running.add(peer)
        try:
            direct = await self._unilateral(peer) if self._unilateral_first else None
            if direct is not None:
                result = _direct(peer, "initiator", 0, None, direct)
            else:
                stream = await connection.new_stream([PROTOCOL_ID])
                async with stream:
                    result = await self._initiate(stream, peer)
        finally:
            self._running.discard(peer)
        host.events.emit(result)
        return result

    async def _unilateral(self, peer: PeerId) -> Connection | None:
        """The spec's first step: "If that set [of A's addresses from identify] includes
        public addresses, then A may be reachable by a direct connection", so B dials them
        before any hole punch (``attempts`` 0 on success)."""
        addrs = self.policy.filter(tuple(self._need_host().peerstore.addrs(peer)))
        if not addrs:
            return None
        plain = DialRequested(attempt=0, addrs=addrs, rejected=0, rtt=None)
        return await self._connect_direct(peer, plain, "initiator")

    async def _initiate(self, stream: Stream, peer: PeerId) -> HolePunchFinished:
        core = InitiatorCore(
            policy=self.policy,
            max_attempts=self._max_attempts,
            response_timeout=self._response_timeout,
        )
        before = self._connection_ids(peer)
        core.start_attempt(anyio.current_time(), self.local_addrs())
        while True:
            try:
                event = await _pump(stream, core)
            except NETWORK_ERRORS as exc:
                # A may close the relayed connection (and our stream) as soon as its own dial
                # succeeded (js-libp2p does), before our timer fires: the direct one counts,
                # also when our side of its handshake finishes a moment after the reset.
                if not isinstance(exc, RemoteProtocolError):
                    made = await self._await_new_direct(peer, before)
                    if made is not None:
                        return _direct(peer, "initiator", core.attempts, core.rtt, made)
                return _failed(peer, "initiator", core.attempts, core.rtt, f"{exc!r}")
            if isinstance(event, UpgradeFailed):
                return _failed(peer, "initiator", event.attempts, core.rtt, event.reason)
            conn = await self._connect_direct(peer, event, "responder", before)
            if conn is not None:
                core.succeeded()
                return _direct(peer, "initiator", core.attempts, core.rtt, conn)
            core.attempt_failed(anyio.current_time(), self.local_addrs())

    # -- responder (the spec's A) -----------------------------------------------------------

    async def _serve(self, stream: Stream) -> None:
        peer = stream.remote_peer
        core = ResponderCore(
            self.local_addrs(),
            policy=self.policy,
            max_attempts=self._max_attempts,
            idle_timeout=self._idle_timeout,
            now=anyio.current_time(),
        )
        before = self._connection_ids(peer)
        result: HolePunchFinished | None = None
        error: BaseException | None = None
        while result is None and not core.done:
            try:
                event = await _pump(stream, core)
            except anyio.EndOfStream:
                break
            except NETWORK_ERRORS as exc:
                error = exc
                break
            if isinstance(event, DialRequested):
                conn = await self._connect_direct(peer, event, "initiator", before)
                if conn is not None:
                    result = _direct(peer, "responder", core.attempts, None, conn)
        made = self._new_direct(peer, before) if result is None and core.attempts else None
        if made is not None and not isinstance(error, RemoteProtocolError):
            result = _direct(peer, "responder", core.attempts, None, made)
        if result is None:
            reason = "the peer ended the exchange" if error is None else repr(error)
            result = _failed(peer, "responder", core.attempts, None, reason)
        self._need_host().events.emit(result)
        if isinstance(error, RemoteProtocolError):
            raise error  # the host resets the stream

    # -- making the direct connection --------------------------------------------------------

    def _connection_ids(self, peer: PeerId) -> set[int]:
        return {id(c) for c in self._need_host().connections(peer)}

    def _new_direct(self, peer: PeerId, before: set[int]) -> Connection | None:
        """A direct connection to ``peer`` opened since ``before`` was taken, if any."""
        for conn in self._need_host().connections(peer):
            if id(conn) not in before and not conn.limited and not conn.draining:
                return conn
        return None

    async def _await_new_direct(self, peer: PeerId, before: set[int]) -> Connection | None:
        """A direct connection to ``peer`` opened since ``before``, waiting for one for at most
        ``attempt_timeout`` seconds (an inbound one may still be finishing its upgrade, or be
        kept by the host only once the carrier closes)."""
        host = self._need_host()
        changed = anyio.Event()

        def on_change(ev: ConnectionOpened | ConnectionClosed) -> None:
            if ev.connection.remote_peer == peer:
                changed.set()

        with (
            host.events.on(ConnectionOpened, on_change),
            host.events.on(ConnectionClosed, on_change),
        ):
            with anyio.move_on_after(self._attempt_timeout):
                while (made := self._new_direct(peer, before)) is None:
                    await changed.wait()
                    changed = anyio.Event()
                return made
        return self._new_direct(peer, before)

    async def _connect_direct(
        self, peer: PeerId, event: DialRequested, role: Role, since: set[int] | None = None
    ) -> Connection | None:
        """Dial (and punch) towards ``event.addrs`` until a new direct connection to ``peer``
        opens, for at most ``attempt_timeout`` seconds. ``role`` is our side of the upgrade:
        ``"responder"`` for the stream's opener (``B``), ``"initiator"`` for ``A``. A direct
        connection opened since ``since`` (the exchange's start) counts at once: the peer's
        dial may finish before our own begins (B waits half the round trip; A dials at once)."""
        host = self._need_host()
        before = {id(c) for c in host.connections(peer)} if since is None else since
        # Also one that already lost the host's one-connection-per-peer rule to the carrier
        # (when DCUtR runs over a direct connection): it is handled as one opened below.
        found = [
            c
            for c in host.connections(peer)
            if id(c) not in before and not c.limited and not c.is_closed
        ]
        if found:
            return self._settled(peer, found)
        opened = anyio.Event()

        def on_open(ev: ConnectionOpened) -> None:
            conn = ev.connection
            if conn.remote_peer == peer and not conn.limited and id(conn) not in before:
                found.append(conn)
                opened.set()

        with host.events.on(ConnectionOpened, on_open):
            async with anyio.create_task_group() as tg:
                for addr in event.addrs:
                    kind = transport_of(addr)
                    if kind == "quic-v1" and role == "responder":
                        tg.start_soon(self._punch, addr)
                    else:
                        tg.start_soon(self._dial, peer, addr, role)
                with anyio.move_on_after(self._attempt_timeout):
                    await opened.wait()
                tg.cancel_scope.cancel()
        return self._settled(peer, found) if found else None

    def _settled(self, peer: PeerId, found: list[Connection]) -> Connection | None:
        """The direct connection that stands for the new ones in ``found``."""
        live = [c for c in found if not c.is_closed and not c.draining]
        if live:
            return live[0]
        # The new connection lost the host's one-connection-per-peer tie-break to another
        # direct one (only when DCUtR ran over a direct connection): that one is the result.
        conns = self._need_host().connections(peer)
        kept = [c for c in conns if not c.limited and not c.draining]
        if kept:
            return kept[0]
        # That one is closing (js closes the carrier as soon as its own dial succeeded): the
        # host keeps the newest loser once it has processed the close.
        still_open = [c for c in found if not c.is_closed]
        return max(still_open, key=lambda c: c.opened_at) if still_open else None

    async def _dial(self, peer: PeerId, addr: Multiaddr, role: Role) -> None:
        transport_addr, addr_peer = split_peer_id(addr)
        if transport_addr is None or addr_peer not in (None, peer):
            return  # another peer's address: not this peer's to offer
        try:
            await self._need_host().dial_direct(peer, transport_addr, role=role)
        except _DIAL_ERRORS as exc:
            _log.debug("dcutr dial %s (%s) failed: %r", addr, role, exc)

    async def _punch(self, addr: Multiaddr) -> None:
        if self._udp_punch is None:
            return
        while True:
            # Any first byte with the long-header bit clear: QUIC endpoints drop it quietly.
            payload = bytes([0x40]) + self._random_bytes(PUNCH_SIZE - 1)
            if not await self._udp_punch(addr, payload):
                return
            await anyio.sleep(self._rng.uniform(*PUNCH_INTERVAL))


async def _pump(
    stream: Stream, core: InitiatorCore | ResponderCore
) -> DialRequested | UpgradeFailed:
    """Exchange bytes and fire timers until the core has an event (or, for the responder,
    is done: then ``anyio.EndOfStream``)."""
    while (event := core.next_event()) is None:
        out = core.data_to_send()
        if out:
            await stream.send(out)
        if isinstance(core, ResponderCore) and core.done:
            raise anyio.EndOfStream
        deadline = core.next_deadline()
        wait = None if deadline is None else max(deadline - anyio.current_time(), 0.0)
        with anyio.move_on_after(wait) as scope:
            data = await stream.receive(MAX_MESSAGE_SIZE + 16)
        if scope.cancelled_caught:
            core.handle_timer(anyio.current_time())
        else:
            core.receive_data(data, anyio.current_time())
    out = core.data_to_send()
    if out:
        await stream.send(out)
    return event


def _direct(
    peer: PeerId, role: Role, attempts: int, rtt: float | None, conn: Connection
) -> HolePunchFinished:
    return HolePunchFinished(
        peer_id=peer,
        outcome="direct",
        role=role,
        attempts=attempts,
        rtt=rtt,
        transport=conn.info.transport or None,
        connection=conn,
    )


def _failed(
    peer: PeerId, role: Role, attempts: int, rtt: float | None, reason: str
) -> HolePunchFinished:
    return HolePunchFinished(
        peer_id=peer, outcome="failed", role=role, attempts=attempts, rtt=rtt, reason=reason
    )
