"""Listening through a relay: keep a reservation (refresh it before it expires, make it again
after the relay connection is lost) and hand over the connections relayed to us
(https://github.com/libp2p/specs/blob/master/relay/circuit-v2.md#reservation).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import attrs
from multiaddr.protocols import P_P2P

from p2pstack.errors import NETWORK_ERRORS, TransportError
from p2pstack.events import ConnectionClosed, LocalAddrsChanged
from p2pstack.multiaddrs import with_peer_id
from protocols.relay._addrs import circuit_addr
from protocols.relay._inbox import ConnectionInbox
from protocols.relay._reserve import (
    ReservationLost,
    ReservationMade,
    ReservationRefreshed,
    reserve,
)

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.connection import Connection
    from p2pstack.host import Host
    from p2pstack.identity import PeerId
    from p2pstack.interfaces import Upgrader
    from protocols.relay._client_wire import HeldReservation

__all__ = ["CircuitConfig", "CircuitListener"]

log = logging.getLogger("protocols.relay")

#: The connection manager tag that keeps a relay we hold a reservation with.
PROTECT_TAG = "relay-reservation"


@attrs.frozen(kw_only=True)
class CircuitConfig:
    """Timeouts and bounds of the circuit relay client (seconds, counts).

    Attributes:
        hop_timeout: a RESERVE or CONNECT exchange with the relay (js: 30 s).
        stop_timeout: reading a relay's stop CONNECT.
        max_pending: relayed connections upgraded but not yet taken by the host, per listener.
        max_inbound_circuits: relayed connections to us open at once (stop streams).
        refresh_margin: refresh a reservation this long before it expires (js: 5 min); a
            reservation shorter than twice this is refreshed at half its remaining time.
        min_refresh: the shortest wait before a refresh.
        retry_min: first wait before a failed reservation is tried again; doubles each time.
        retry_max: the longest such wait.
    """

    hop_timeout: float = 30.0
    stop_timeout: float = 30.0
    max_pending: int = 16
    max_inbound_circuits: int = 64
    refresh_margin: float = 300.0
    min_refresh: float = 1.0
    retry_min: float = 1.0
    retry_max: float = 60.0


def refresh_delay(remaining: float, config: CircuitConfig) -> float:
    """Seconds to wait before refreshing a reservation that ends in ``remaining`` seconds."""
    if remaining > 2 * config.refresh_margin:
        delay = remaining - config.refresh_margin
    else:
        delay = remaining / 2
    return max(delay, config.min_refresh)


class CircuitListener(ConnectionInbox):
    """An ``UpgradedListener`` on ``<relay addr>/p2p/<relay>/p2p-circuit``.

    ``multiaddrs`` are the relay's addresses from the reservation with ``/p2p-circuit``
    (empty while there is no reservation). Created and opened by ``CircuitRelayTransport``.
    """

    def __init__(
        self,
        host: Host,
        relay_addr: Multiaddr | None,
        relay: PeerId,
        *,
        upgrader: Upgrader,
        config: CircuitConfig,
        wall_clock: Callable[[], float],
    ) -> None:
        super().__init__(config.max_pending)
        self.host = host
        self.relay = relay
        self.relay_addr = relay_addr
        self.upgrader = upgrader
        self.reservation: HeldReservation | None = None
        self._config = config
        self._wall_clock = wall_clock
        self._cancel = anyio.CancelScope()
        self._conn: Connection | None = None
        self._relay_gone = anyio.Event()
        self._unsubscribe = host.events.on(ConnectionClosed, self._connection_closed)

    @property
    def multiaddrs(self) -> list[Multiaddr]:
        if self.reservation is None:
            return []
        addrs = list(self.reservation.addrs)
        if not addrs and self.relay_addr is not None:
            addrs = [self.relay_addr]
        return [circuit_addr(_without_peer(a), self.relay) for a in addrs]

    async def open(self) -> None:
        """Make the first reservation, then keep it in a host task.

        Raises:
            TransportError: the relay could not be reached or refused (the message says why).
        """
        try:
            self.reservation = await self._reserve()
        except NETWORK_ERRORS as exc:
            await self.aclose()
            raise TransportError(f"no reservation at relay {self.relay}: {exc}") from exc
        self._announce(ReservationMade)
        self.host.start_soon(self._keep, name=f"relay reservation {self.relay}")

    async def _reserve(self) -> HeldReservation:
        if self.relay_addr is None:
            conn = await self.host.dial_peer(self.relay)
        else:
            conn = await self.host.connect(with_peer_id(self.relay_addr, self.relay))
        if conn.limited:
            raise TransportError("a reservation over a relayed connection is refused")
        self._conn = conn
        self._relay_gone = anyio.Event()
        self.host.connmgr.protect(self.relay, PROTECT_TAG)
        return await reserve(conn, timeout=self._config.hop_timeout)

    def _connection_closed(self, event: ConnectionClosed) -> None:
        if event.connection is self._conn:
            self._relay_gone.set()

    async def _keep(self) -> None:
        """Refresh before expiry; after a loss, reserve again with exponential backoff."""
        retry = self._config.retry_min
        with self._cancel:
            while True:
                if self.reservation is not None:
                    remaining = self.reservation.expire - self._wall_clock()
                    wait = refresh_delay(remaining, self._config)
                else:
                    wait, retry = retry, min(retry * 2, self._config.retry_max)
                with anyio.move_on_after(wait):
                    await self._relay_gone.wait()
                    self._relay_gone = anyio.Event()
                    if self.reservation is not None:
                        self._lose("the relay connection closed")
                        retry = self._config.retry_min
                    continue
                refreshing = self.reservation is not None
                try:
                    self.reservation = await self._reserve()
                except NETWORK_ERRORS as exc:
                    log.info("reservation at %s failed: %s", self.relay, exc)
                    if self.reservation is not None:
                        self._lose(str(exc))
                    continue
                retry = self._config.retry_min
                self._announce(ReservationRefreshed if refreshing else ReservationMade)

    def _lose(self, reason: str) -> None:
        self.reservation = None
        self.host.events.emit(ReservationLost(relay=self.relay, reason=reason))
        self.host.events.emit(LocalAddrsChanged(addrs=self.host.addrs))

    def _announce(self, kind: type[ReservationMade] | type[ReservationRefreshed]) -> None:
        assert self.reservation is not None
        addrs = tuple(self.multiaddrs)
        self.host.events.emit(kind(relay=self.relay, addrs=addrs, expire=self.reservation.expire))
        if kind is ReservationMade:
            self.host.events.emit(LocalAddrsChanged(addrs=self.host.addrs))

    async def aclose(self) -> None:
        """Stop keeping the reservation (the relay lets it expire). Idempotent."""
        if self.closed:
            return
        self._close_inbox()
        self._cancel.cancel()
        self._unsubscribe.close()
        self.reservation = None
        self.host.connmgr.unprotect(self.relay, PROTECT_TAG)


def _without_peer(addr: Multiaddr) -> Multiaddr:
    """``addr`` without a trailing ``/p2p/<id>`` (relays send their addresses either way)."""
    if addr.get_peer_id() is None:
        return addr
    return addr.decapsulate_code(P_P2P)
