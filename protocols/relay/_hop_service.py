"""The relay (hop) service: serves ``/libp2p/circuit/relay/0.2.0/hop``, opens ``/stop`` to
targets and relays circuits (https://github.com/libp2p/specs/blob/master/relay/circuit-v2.md).

A thin driver around ``HopCore``: it reads one hop message per stream, asks the core, answers,
and for an accepted CONNECT runs the circuit until it ends or a limit cuts it. Host events
(``ReservationAccepted``, ``CircuitOpened``, ...) report what happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import anyio
from multiaddr import Multiaddr

from p2pstack.errors import NETWORK_ERRORS, LocalProtocolError, RemoteProtocolError
from p2pstack.events import ConnectionClosed
from p2pstack.multiaddrs import with_peer_id
from p2pstack.sansio import TimerDriver
from p2pstack.sync import loop_clock
from protocols.relay._hop_config import (
    CircuitClosed,
    CircuitOpened,
    CircuitRefused,
    RelayConfig,
    ReservationAccepted,
    ReservationRefused,
)
from protocols.relay._hop_core import HopCore, Refused, RelayStatistics
from protocols.relay._hop_splice import splice
from protocols.relay._voucher import make_voucher
from protocols.relay._wire import (
    HOP_PROTOCOL_ID,
    STOP_PROTOCOL_ID,
    HopMessage,
    HopType,
    Limit,
    Peer,
    Reservation,
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
    from p2pstack.identity import PeerId

__all__ = ["PROTECTION_TAG", "RelayService", "is_relayed", "remote_ip"]

_log = logging.getLogger(__name__)

#: The connection manager's protection tag of peers holding a reservation (their connection
#: carries it: trimming it would end the reservation).
PROTECTION_TAG = "relay-reservation"

#: What a peer going away or stalling raises from a stream under ``fail_after``.
_FAILURES: tuple[type[BaseException], ...] = (TimeoutError, *NETWORK_ERRORS)


def is_relayed(conn: Connection) -> bool:
    """Whether ``conn`` runs over a relay: limited, or its remote address has ``/p2p-circuit``."""
    return conn.limited or "/p2p-circuit" in str(conn.remote_multiaddr)


def remote_ip(addr: Multiaddr) -> str | None:
    """The IP address of an ``/ip4/...`` or ``/ip6/...`` multiaddr, else ``None``."""
    parts = str(addr).split("/")
    if len(parts) > 2 and parts[1] in ("ip4", "ip6"):
        return parts[2]
    return None


class RelayService:
    """A circuit relay v2 relay (``host.service(RelayService)``).

    Args:
        config: the limits (``RelayConfig()``: go-libp2p's defaults).
        advertised_addrs: the relay's public addresses, for reservations (default: the host's
            listen addresses); ``/p2p/<relay>`` is appended where missing.
        wall_clock: Unix time in seconds, for reservation expiries and vouchers.
    """

    def __init__(
        self,
        config: RelayConfig | None = None,
        *,
        advertised_addrs: Callable[[], Sequence[Multiaddr]] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or RelayConfig()
        self.core = HopCore(self.config)
        self._advertised = advertised_addrs
        self._wall = wall_clock
        self._host: Host | None = None
        self._timers = TimerDriver(self.core, on_fire=self._on_timer)
        self._scopes: dict[int, anyio.CancelScope] = {}
        # Circuits whose time ran out before their relaying started (the target was slow).
        self._expired: set[int] = set()

    @property
    def _limit(self) -> Limit | None:
        cfg = self.config
        if cfg.limit_duration is None and cfg.limit_data is None:
            return None
        return Limit(duration=cfg.limit_duration, data=cfg.limit_data)

    async def start(self, host: Host) -> None:
        """Serve the hop protocol (on relayed connections too, to refuse loops with
        ``PERMISSION_DENIED`` rather than ``na``) and run the timers."""
        self._host = host
        host.set_stream_handler(
            HOP_PROTOCOL_ID,
            self._handle,
            max_inbound=self.config.max_hop_streams,
            max_inbound_per_peer=self.config.max_hop_streams_per_peer,
            allow_limited=True,
        )
        host.events.on(ConnectionClosed, self._connection_closed)
        host.start_soon(self._timers.run)

    async def stop(self) -> None:
        """Nothing to leave gracefully: the host resets the circuits' streams."""

    def statistics(self) -> RelayStatistics:
        """Counts of reservations and circuits."""
        return self.core.statistics()

    def relay_addrs(self) -> list[Multiaddr]:
        """The addresses given to reserving peers, each ending in ``/p2p/<relay>``."""
        host = self._require_host()
        addrs = self._advertised() if self._advertised is not None else host.listen_addrs
        return [
            addr if addr.get_peer_id() is not None else with_peer_id(addr, host.peer_id)
            for addr in addrs
        ]

    def _require_host(self) -> Host:
        if self._host is None:
            raise LocalProtocolError("RelayService used before the host started it")
        return self._host

    def _connection_closed(self, event: ConnectionClosed) -> None:
        conn = event.connection
        if self.core.connection_closed(conn.remote_peer, conn):
            self._unprotect(conn.remote_peer)

    def _unprotect(self, peer: PeerId) -> None:
        if self._host is not None and not self.core.has_reservation(peer):
            self._host.connmgr.unprotect(peer, PROTECTION_TAG)

    async def _on_timer(self) -> None:
        peers, circuits = self.core.take_expired()
        for peer in peers:
            self._unprotect(peer)
        for cid in circuits:
            scope = self._scopes.get(cid)
            if scope is not None:
                scope.cancel()
            else:
                self._expired.add(cid)

    async def _answer(self, stream: Stream, message: HopMessage) -> bool:
        try:
            with anyio.fail_after(self.config.stream_timeout):
                await write_hop(stream, message)
        except _FAILURES as exc:
            _log.debug("relay: answering %s failed: %r", stream.remote_peer, exc)
            return False
        return True

    def _status(self, status: Status) -> HopMessage:
        return HopMessage(type=HopType.STATUS, status=status)

    async def _handle(self, stream: Stream) -> None:
        try:
            with anyio.fail_after(self.config.stream_timeout):
                request = await read_hop(stream)
        except RemoteProtocolError as exc:  # MalformedMessage, or bad framing
            _log.debug("relay: malformed hop message from %s: %s", stream.remote_peer, exc)
            await self._answer(stream, self._status(Status.MALFORMED_MESSAGE))
            return
        except _FAILURES as exc:
            _log.debug("relay: no hop request from %s: %r", stream.remote_peer, exc)
            return
        if request.type is HopType.RESERVE:
            await self._reserve(stream)
        elif request.type is HopType.CONNECT and request.peer is not None:
            await self._connect(stream, request.peer.id)
        else:
            await self._answer(stream, self._status(Status.UNEXPECTED_MESSAGE))

    async def _reserve(self, stream: Stream) -> None:
        host = self._require_host()
        conn = stream.connection
        peer = conn.remote_peer
        now = loop_clock()()
        decision = self.core.reserve(
            peer, conn, remote_ip(conn.remote_multiaddr), now, relayed=is_relayed(conn)
        )
        if isinstance(decision, Refused):
            host.events.emit(
                ReservationRefused(peer=peer, status=decision.status, reason=decision.reason)
            )
            await self._answer(stream, self._status(decision.status))
            return
        self._timers.poke()
        host.connmgr.protect(peer, PROTECTION_TAG)
        expire = int(self._wall() + (decision.expires - now))
        answer = HopMessage(
            type=HopType.STATUS,
            status=Status.OK,
            reservation=Reservation(
                expire=expire,
                addrs=self.relay_addrs(),
                voucher=make_voucher(host.identity.private_key, peer, expire),
            ),
            limit=self._limit,
        )
        if await self._answer(stream, answer):
            host.events.emit(
                ReservationAccepted(peer=peer, expire=expire, renewed=decision.renewed)
            )

    async def _connect(self, stream: Stream, target: PeerId) -> None:
        host = self._require_host()
        conn = stream.connection
        source = conn.remote_peer
        decision = self.core.open_circuit(source, target, loop_clock()(), relayed=is_relayed(conn))
        if isinstance(decision, Refused):
            await self._refuse_circuit(stream, source, target, decision.status, decision.reason)
            return
        cid = decision
        self._timers.poke()
        reason = "stopped"
        try:
            stop = await self._open_stop(source, target)
            if isinstance(stop, str):
                await self._refuse_circuit(stream, source, target, Status.CONNECTION_FAILED, stop)
                return
            if not await self._answer(
                stream, HopMessage(type=HopType.STATUS, status=Status.OK, limit=self._limit)
            ):
                await stop.reset()
                reason = "reset"
                return
            host.events.emit(CircuitOpened(source=source, target=target))
            reason = await self._relay(cid, stream, stop)
        finally:
            relayed = self.core.close_circuit(cid)
            self._scopes.pop(cid, None)
            self._expired.discard(cid)
            if reason != "stopped" or relayed != (0, 0):
                host.events.emit(
                    CircuitClosed(
                        source=source, target=target, reason=reason, bytes_relayed=relayed
                    )
                )

    async def _refuse_circuit(
        self, stream: Stream, source: PeerId, target: PeerId, status: Status, reason: str
    ) -> None:
        self._require_host().events.emit(
            CircuitRefused(source=source, target=target, status=status, reason=reason)
        )
        await self._answer(stream, self._status(status))

    async def _open_stop(self, source: PeerId, target: PeerId) -> Stream | str:
        """Open ``/stop`` to ``target`` and have it accept ``source``; returns the stream, or
        why it failed."""
        host = self._require_host()
        conns = [c for c in host.connections(target) if not c.limited and not c.draining]
        if not conns:
            return f"no connection to {target}"
        stop: Stream | None = None
        try:
            with anyio.fail_after(self.config.connect_timeout):
                stop = await conns[0].new_stream([STOP_PROTOCOL_ID])
                request = StopMessage(
                    type=StopType.CONNECT, peer=Peer(id=source), limit=self._limit
                )
                await write_stop(stop, request)
                answer = await read_stop(stop)
        except _FAILURES as exc:
            if stop is not None:
                await stop.reset()
            return f"stop stream to {target} failed: {exc!r}"
        if answer.type is not StopType.STATUS or answer.status is not Status.OK:
            await stop.reset()
            got = answer.status.name if answer.status is not None else answer.type.name
            return f"{target} answered {got}"
        return stop

    async def _relay(self, cid: int, hop: Stream, stop: Stream) -> str:
        with anyio.CancelScope() as scope:
            self._scopes[cid] = scope
            if cid in self._expired:
                scope.cancel()
            outcome = await splice(
                hop,
                stop,
                take=lambda direction, n: self.core.take_data(cid, direction, n),
                buffer_size=self.config.buffer_size,
            )
        if scope.cancelled_caught:
            outcome = "duration limit"
        if outcome == "closed":
            with anyio.CancelScope(shield=True):
                await stop.aclose()
        else:
            with anyio.CancelScope(shield=True):
                await hop.reset()
                await stop.reset()
        return outcome
