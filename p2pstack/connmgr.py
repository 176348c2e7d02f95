"""The connection manager: which peers are worth keeping (tags and protection), trimming from a
high to a low watermark, a minimum peer count discovery can serve, and the rule that picks the one
connection to keep when a peer has several.

The simultaneous-dial tie-break follows the connections spec's "the dial of the peer with the
lower peer ID wins" convention (https://github.com/libp2p/specs/blob/master/connections/README.md).
The manager is written against a small host-facing surface (a list of connections and a close
callback), so it runs without a host.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Generic, Literal, Protocol, TypeVar

import anyio
import attrs

from p2pstack.errors import NETWORK_ERRORS

if TYPE_CHECKING:
    from p2pstack.identity import PeerId

__all__ = [
    "ConnectionManager",
    "ConnectionManagerConfig",
    "ConnectionManagerStatistics",
    "ManagedConnection",
    "PeersBelowMinimum",
    "choose_connection_to_keep",
]

log = logging.getLogger("p2pstack.connmgr")


class ManagedConnection(Protocol):
    """What the manager reads from a connection."""

    @property
    def remote_peer(self) -> PeerId: ...

    @property
    def direction(self) -> Literal["inbound", "outbound"]: ...

    @property
    def limited(self) -> bool:
        """Relayed or otherwise restricted (data or time capped)."""
        ...

    @property
    def opened_at(self) -> float:
        """When the connection was established, on the manager's clock."""
        ...


C = TypeVar("C", bound=ManagedConnection)


def choose_connection_to_keep(local_peer: PeerId, connections: Sequence[C]) -> C:
    """The one of several connections to one peer to keep; the others should be drained.

    Both ends apply the same rule, so they agree without talking:

    1. a direct connection beats a limited (relayed) one;
    2. of an inbound and an outbound direct connection, keep the one dialed by the peer whose
       ID bytes sort lower (the simultaneous-dial tie-break);
    3. otherwise the oldest.

    Args:
        local_peer: our peer ID.
        connections: open connections to one remote peer (at least one).

    Returns:
        The connection to keep.

    Raises:
        ValueError: ``connections`` is empty.
    """
    if not connections:
        raise ValueError("no connection to choose from")
    direct = [c for c in connections if not c.limited]
    pool = direct or list(connections)
    directions = {c.direction for c in pool}
    if len(directions) == 2:
        remote = pool[0].remote_peer
        our_dial_wins = local_peer.to_bytes() < remote.to_bytes()
        winner = "outbound" if our_dial_wins else "inbound"
        pool = [c for c in pool if c.direction == winner]
    return min(pool, key=lambda c: c.opened_at)


@attrs.frozen(kw_only=True)
class ConnectionManagerConfig:
    """Watermarks and timings (seconds). Derive variants with ``attrs.evolve``."""

    #: Trimming closes connections down to this many.
    low_water: int = 160
    #: Trimming starts when there are more connections than this.
    high_water: int = 192
    #: Peers first seen this recently are not trimmed.
    grace_period: float = 20.0
    #: Least time between two trims (a trim closes many connections at once).
    silence_period: float = 10.0
    #: Below this many connected peers, discovery is asked for more (0: never).
    min_peers: int = 0
    #: Time given to close each trimmed connection.
    close_timeout: float = 5.0

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.low_water <= self.high_water:
            raise ValueError("need 0 <= low_water <= high_water")


@attrs.frozen(kw_only=True)
class PeersBelowMinimum:
    """The number of connected peers fell below ``minimum``."""

    peers: int
    minimum: int


@attrs.frozen(kw_only=True)
class ConnectionManagerStatistics:
    """A snapshot of the manager's state."""

    connections: int
    peers: int
    protected_peers: int
    tagged_peers: int
    trims: int
    trimmed_connections: int


class ConnectionManager(Generic[C]):
    """Keeps the connection count between watermarks, closing the least valuable peers first.

    The host tells it about each connection with ``opened`` and ``closed``; ``run`` trims.

    Args:
        connections: the host's open connections (read when trimming).
        close: closes one connection (gracefully; errors are logged, not raised).
        local_peer: our peer ID (for the keep rule).
        config: watermarks and timings.
        clock: seconds, the clock ``opened_at`` is measured on; injectable.
        on_protection_changed: called with ``(peer, protected)`` when a peer becomes protected
            or stops being so (the host pins it in the peerstore).
    """

    def __init__(
        self,
        *,
        connections: Callable[[], Sequence[C]],
        close: Callable[[C], Awaitable[None]],
        local_peer: PeerId,
        config: ConnectionManagerConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_protection_changed: Callable[[PeerId, bool], None] | None = None,
    ) -> None:
        self.config = config or ConnectionManagerConfig()
        self.on_protection_changed = on_protection_changed
        self.local_peer = local_peer
        self._connections = connections
        self._close = close
        self._clock = clock
        self._tags: dict[PeerId, dict[str, int]] = {}
        self._protected: dict[PeerId, set[str]] = {}
        self._below_callbacks: list[Callable[[PeersBelowMinimum], None]] = []
        self._below_waiters: list[anyio.Event] = []
        self._was_below = False
        self._count = 0
        self._per_peer: dict[PeerId, int] = {}
        self._wake: anyio.Event | None = None
        self._last_trim = float("-inf")
        self._trims = 0
        self._trimmed = 0

    # -- tags and protection -------------------------------------------------------------------

    def tag_peer(self, peer: PeerId, tag: str, value: int) -> None:
        """Set ``peer``'s ``tag`` to ``value``; a peer's value is the sum of its tags."""
        self._tags.setdefault(peer, {})[tag] = value

    def untag_peer(self, peer: PeerId, tag: str) -> None:
        """Remove ``tag`` from ``peer`` (no error if absent)."""
        tags = self._tags.get(peer)
        if tags is not None:
            tags.pop(tag, None)
            if not tags:
                del self._tags[peer]

    def upsert_tag(self, peer: PeerId, tag: str, update: Callable[[int], int]) -> None:
        """Set ``tag`` to ``update(current value or 0)`` (for counters such as "useful sends")."""
        tags = self._tags.setdefault(peer, {})
        tags[tag] = update(tags.get(tag, 0))

    def tags(self, peer: PeerId) -> dict[str, int]:
        """A copy of ``peer``'s tags."""
        return dict(self._tags.get(peer, {}))

    def value(self, peer: PeerId) -> int:
        """The sum of ``peer``'s tags."""
        return sum(self._tags.get(peer, {}).values())

    def protect(self, peer: PeerId, tag: str) -> None:
        """Never trim ``peer`` while any protection tag is set (each user picks its own tag)."""
        first = peer not in self._protected
        self._protected.setdefault(peer, set()).add(tag)
        if first and self.on_protection_changed is not None:
            self.on_protection_changed(peer, True)

    def unprotect(self, peer: PeerId, tag: str) -> bool:
        """Remove one protection tag.

        Returns:
            Whether ``peer`` is still protected (by other tags).
        """
        tags = self._protected.get(peer)
        if tags is None:
            return False
        tags.discard(tag)
        if not tags:
            del self._protected[peer]
            if self.on_protection_changed is not None:
                self.on_protection_changed(peer, False)
            return False
        return True

    def is_protected(self, peer: PeerId, tag: str | None = None) -> bool:
        """Whether ``peer`` is protected (by ``tag``, or by any tag if ``tag`` is ``None``)."""
        tags = self._protected.get(peer)
        return bool(tags) if tag is None else tags is not None and tag in tags

    def forget_peer(self, peer: PeerId) -> None:
        """Drop the tags of ``peer`` (protection stays: it is set on purpose)."""
        self._tags.pop(peer, None)

    # -- minimum peers -------------------------------------------------------------------------

    def on_below_min(self, callback: Callable[[PeersBelowMinimum], None]) -> Callable[[], None]:
        """Call ``callback`` each time the connected peer count falls below ``min_peers``.

        Returns:
            A function that unregisters the callback.
        """
        self._below_callbacks.append(callback)
        return lambda: self._below_callbacks.remove(callback)

    async def wait_below_min(self) -> PeersBelowMinimum:
        """Return when fewer than ``min_peers`` peers are connected (at once if already so).

        Cancel-safe; blocks forever when ``min_peers`` is 0.
        """
        while True:
            count = self.peer_count()
            if count < self.config.min_peers:
                return PeersBelowMinimum(peers=count, minimum=self.config.min_peers)
            event = anyio.Event()
            self._below_waiters.append(event)
            try:
                await event.wait()
            finally:
                if event in self._below_waiters:
                    self._below_waiters.remove(event)

    def peer_count(self) -> int:
        """Distinct peers with an open connection (as told by ``opened``/``closed``)."""
        return len(self._per_peer)

    def connection_count(self) -> int:
        """Open connections (as told by ``opened``/``closed``)."""
        return self._count

    # -- notifications from the host -----------------------------------------------------------

    def opened(self, conn: C) -> None:
        """Tell the manager a connection opened (synchronous, O(1)); wakes ``run`` if a trim
        is due."""
        self._count += 1
        self._per_peer[conn.remote_peer] = self._per_peer.get(conn.remote_peer, 0) + 1
        self._check_min()
        if self._wake is not None and self._count > self.config.high_water:
            self._wake.set()

    def closed(self, conn: C) -> None:
        """Tell the manager a connection closed (synchronous, O(1)); fires the below-minimum
        callbacks when the peer count falls below ``min_peers``."""
        peer = conn.remote_peer
        left = self._per_peer.get(peer, 0) - 1
        if left < 0:
            return  # not told about its opening: ignore
        self._count -= 1
        if left:
            self._per_peer[peer] = left
        else:
            del self._per_peer[peer]
        self._check_min()

    def _check_min(self) -> None:
        count = len(self._per_peer)
        below = count < self.config.min_peers
        if below and not self._was_below:
            event = PeersBelowMinimum(peers=count, minimum=self.config.min_peers)
            for callback in list(self._below_callbacks):
                callback(event)
        self._was_below = below
        if below:
            for waiter in self._below_waiters:
                waiter.set()

    # -- trimming ------------------------------------------------------------------------------

    def trim_candidates(self) -> list[C]:
        """The connections a trim would close now, least valuable peers first.

        Nothing while the count is at or below ``high_water``; otherwise whole peers (all their
        connections), skipping protected peers and peers first seen within ``grace_period``,
        until ``low_water`` would be reached.
        """
        conns = list(self._connections())
        if len(conns) <= self.config.high_water:
            return []
        by_peer: dict[PeerId, list[C]] = {}
        for conn in conns:
            by_peer.setdefault(conn.remote_peer, []).append(conn)
        horizon = self._clock() - self.config.grace_period
        eligible = [
            peer
            for peer, peer_conns in by_peer.items()
            if not self.is_protected(peer) and min(c.opened_at for c in peer_conns) <= horizon
        ]
        eligible.sort(key=lambda peer: (self.value(peer), peer.to_bytes()))
        excess = len(conns) - self.config.low_water
        chosen: list[C] = []
        for peer in eligible:
            if len(chosen) >= excess:
                break
            chosen.extend(by_peer[peer])
        return chosen

    async def trim(self) -> int:
        """Close ``trim_candidates()`` now (concurrently, each bounded by ``close_timeout``).

        Returns:
            How many connections were closed.
        """
        victims = self.trim_candidates()
        self._last_trim = self._clock()
        if not victims:
            return 0
        self._trims += 1
        self._trimmed += len(victims)
        log.info("trimming %d connections", len(victims))
        async with anyio.create_task_group() as tg:
            for conn in victims:
                tg.start_soon(self._close_one, conn)
        return len(victims)

    async def _close_one(self, conn: C) -> None:
        with anyio.move_on_after(self.config.close_timeout):
            try:
                await self._close(conn)
            except NETWORK_ERRORS as exc:
                log.debug("closing %s failed: %r", conn.remote_peer, exc)

    async def run(self) -> None:
        """Trim whenever the count exceeds ``high_water`` (woken by ``opened``), at most
        once per ``silence_period``; retry when peers in their grace period become trimmable.
        Runs until cancelled."""
        high = self.config.high_water
        while True:
            self._wake = anyio.Event()
            if self._count <= high:
                await self._wake.wait()
                continue
            wait = self._last_trim + self.config.silence_period - self._clock()
            if wait > 0:
                await anyio.sleep(wait)
            await self.trim()
            if self._count > high:
                # What is left is protected or in its grace period: look again once it may
                # have aged out, or sooner if more connections arrive.
                with anyio.move_on_after(self.config.grace_period):
                    await self._wake.wait()

    def statistics(self) -> ConnectionManagerStatistics:
        """A snapshot of counts."""
        return ConnectionManagerStatistics(
            connections=self._count,
            peers=len(self._per_peer),
            protected_peers=len(self._protected),
            tagged_peers=len(self._tags),
            trims=self._trims,
            trimmed_connections=self._trimmed,
        )
