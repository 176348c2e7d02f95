"""The dialer: turns "connect to this peer" into ranked, staggered, deduplicated connection
attempts with per-peer backoff, asking a peer-routing service for addresses when none are known.

The address race follows Happy Eyeballs v2 (https://www.rfc-editor.org/rfc/rfc8305#section-5):
start one attempt, start the next after a short delay or as soon as one fails, keep the first that
succeeds and cancel the rest. Spec background:
https://github.com/libp2p/specs/blob/master/connections/README.md

The dialer knows nothing about transports or connections: it is built on callables (``dial_one``
dials one address, ``close`` closes a surplus result), so it runs without a host.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import anyio
import attrs

from p2pstack.errors import NETWORK_ERRORS, DialError, P2PError

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.identity import PeerId

__all__ = [
    "DialBackoff",
    "DialPolicy",
    "Dialer",
    "PeerRouting",
    "Ranker",
    "default_rank",
    "is_dialable",
]

log = logging.getLogger("p2pstack.dialer")

T = TypeVar("T")

#: What a failed attempt may raise and still count as "this address did not work". Anything
#: else is a bug and propagates.
ATTEMPT_ERRORS: tuple[type[BaseException], ...] = NETWORK_ERRORS  # TimeoutError is an OSError

#: Ranks addresses: returns them in the order to try (and may drop some).
Ranker = Callable[[Sequence["Multiaddr"]], list["Multiaddr"]]


class PeerRouting(Protocol):
    """Finds addresses of a peer the peerstore knows nothing about (a DHT, a rendezvous point)."""

    async def find_peer(self, peer: PeerId) -> Sequence[Multiaddr]:
        """Addresses of ``peer`` (without ``/p2p/``); empty if none were found.

        May block on the network; cancel-safe. Raises ``P2PError`` (or a timeout) on failure.
        """
        ...


class DialBackoff(DialError):
    """A dial was refused without trying because the peer failed recently.

    Attributes:
        peer: the peer in backoff.
        retry_in: seconds until the dialer tries this peer again.
    """

    def __init__(self, peer: PeerId, retry_in: float) -> None:
        self.peer = peer
        self.retry_in = retry_in
        super().__init__(f"dial backoff: {peer} failed recently, next try in {retry_in:.1f} s")


@attrs.frozen(kw_only=True)
class DialPolicy:
    """Which addresses to dial and how hard to try (seconds). Derive with ``attrs.evolve``."""

    #: Dial loopback addresses (127.0.0.0/8, ::1).
    allow_loopback: bool = True
    #: Dial private, link-local and shared (CGNAT) addresses (10/8, 192.168/16, fc00::/7, ...).
    allow_private: bool = True
    #: Delay before starting the next address while earlier attempts are still running.
    stagger: float = 0.25
    #: Most attempts running at once for one dial.
    max_parallel: int = 8
    #: Most addresses tried per dial (the best ranked ones).
    max_addrs: int = 32
    #: First backoff after a failed dial; doubles with every further failure.
    backoff_base: float = 5.0
    #: Longest backoff.
    backoff_max: float = 300.0
    #: Backoff of a peer a failure detector declared gone (``PeerFailed``).
    failed_peer_backoff: float = 300.0
    #: Time given to peer routing to find addresses.
    routing_timeout: float = 30.0
    #: Time given to close a surplus connection won by a late attempt.
    close_timeout: float = 5.0


def _ip_of(addr: Multiaddr) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    for proto in addr.protocols():
        value = addr.value_for_protocol(proto.code) if proto.name in ("ip4", "ip6") else None
        if value:
            return ipaddress.ip_address(value)
    return None


_SHARED_V4 = ipaddress.ip_network("100.64.0.0/10")


def is_dialable(addr: Multiaddr, policy: DialPolicy) -> bool:
    """Whether ``policy`` lets us dial ``addr`` (names and non-IP addresses always pass)."""
    ip = _ip_of(addr)
    if ip is None:
        return True
    if ip.is_loopback:
        return policy.allow_loopback
    private = ip.is_private or ip.is_link_local or (ip.version == 4 and ip in _SHARED_V4)
    return policy.allow_private or not private


def _transport_class(addr: Multiaddr) -> int:
    names = [proto.name for proto in addr.protocols()]
    if "p2p-circuit" in names:
        return 3  # relayed: only worth it when nothing direct works
    if "quic-v1" in names:
        return 0
    if "tcp" in names:
        return 1
    return 2


def default_rank(addrs: Sequence[Multiaddr]) -> list[Multiaddr]:
    """QUIC before TCP before others before relayed; within a class IPv6 and IPv4 alternate
    (IPv6 first, RFC 8305 section 4); otherwise the given order is kept."""
    ranked: list[Multiaddr] = []
    for cls in range(4):
        members = [a for a in dict.fromkeys(addrs) if _transport_class(a) == cls]
        v6 = [a for a in members if (ip := _ip_of(a)) is not None and ip.version == 6]
        rest = [a for a in members if a not in v6]
        for i in range(max(len(v6), len(rest))):
            ranked.extend(group[i] for group in (v6, rest) if i < len(group))
    return ranked


@attrs.define
class _Backoff:
    failures: int
    until: float


class _Outcome(Generic[T]):
    """The shared result of one in-flight dial, for callers that asked for the same peer."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: T | None = None
        self.error: DialError | None = None
        self.message = ""  # the error's message without the per-address detail


class _Race(Generic[T]):
    def __init__(self) -> None:
        self.errors: list[tuple[str, BaseException]] = []
        self.winner: T | None = None
        self.won = False
        self.running = 0
        self.wake = anyio.Event()


class Dialer(Generic[T]):
    """Dials peers: ranks their addresses, races them, backs off from failing peers.

    Args:
        dial_one: connects to one address (authenticating ``peer`` if given); raises one of
            ``ATTEMPT_ERRORS`` on failure and owns its own timeouts. Must close what it opened
            if cancelled.
        close: closes a connection that lost the race after it was established.
        addrs_of: the known addresses of a peer (usually the peerstore's).
        policy: filtering, stagger, concurrency and backoff settings.
        rank: orders (and may drop) addresses; ``default_rank`` if omitted.
        peer_routing: asked for addresses when ``addrs_of`` has none.
        on_routed: called with what peer routing found (to remember it), before dialing.
        clock: seconds for backoff; injectable for tests and simulation.
    """

    def __init__(
        self,
        dial_one: Callable[[Multiaddr, PeerId | None], Awaitable[T]],
        *,
        close: Callable[[T], Awaitable[None]],
        addrs_of: Callable[[PeerId], Sequence[Multiaddr]] = lambda _peer: (),
        policy: DialPolicy | None = None,
        rank: Ranker = default_rank,
        peer_routing: PeerRouting | None = None,
        on_routed: Callable[[PeerId, Sequence[Multiaddr]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or DialPolicy()
        self.peer_routing = peer_routing
        self._dial_one = dial_one
        self._close = close
        self._addrs_of = addrs_of
        self._rank = rank
        self._on_routed = on_routed
        self._clock = clock
        self._backoff: dict[PeerId, _Backoff] = {}
        self._pending: dict[PeerId, _Outcome[T]] = {}

    # -- backoff -------------------------------------------------------------------------------

    def backoff_remaining(self, peer: PeerId) -> float:
        """Seconds until ``peer`` may be dialed again (0 if it is not in backoff)."""
        entry = self._backoff.get(peer)
        if entry is None:
            return 0.0
        remaining = entry.until - self._clock()
        return max(remaining, 0.0)

    def clear_backoff(self, peer: PeerId) -> None:
        """Forget the failures of ``peer`` (for example after it connected to us)."""
        self._backoff.pop(peer, None)

    def suspend(self, peer: PeerId, duration: float) -> None:
        """Refuse dials to ``peer`` (``DialBackoff``) for at least ``duration`` seconds, as if
        it had failed: for a peer a failure detector declared gone. A longer backoff in place
        is kept; ``clear_backoff`` (a connection from the peer) ends it."""
        entry = self._backoff.get(peer)
        until = self._clock() + duration
        if entry is None:
            self._backoff[peer] = _Backoff(1, until)
        else:
            entry.until = max(entry.until, until)

    def _record_failure(self, peer: PeerId) -> None:
        entry = self._backoff.get(peer)
        failures = entry.failures + 1 if entry else 1
        delay = min(self.policy.backoff_base * 2 ** (failures - 1), self.policy.backoff_max)
        self._backoff[peer] = _Backoff(failures, self._clock() + delay)

    # -- dialing -------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Peers being dialed right now."""
        return len(self._pending)

    def is_dialing(self, peer: PeerId) -> bool:
        """Whether a dial to ``peer`` is in progress."""
        return peer in self._pending

    async def dial(
        self, peer: PeerId, addrs: Sequence[Multiaddr] | None = None, *, force: bool = False
    ) -> T:
        """Connect to ``peer``; concurrent calls for one peer share one dial and its outcome.

        Args:
            peer: whom to dial.
            addrs: addresses to try; the known ones (then peer routing) if ``None``.
            force: dial even if ``peer`` is in backoff, and do not count a failure towards it
                (for addresses a user gave explicitly: a wrong one says nothing of the peer).

        Returns:
            The connection of the first attempt that succeeded.

        Raises:
            DialBackoff: ``peer`` failed recently (and ``force`` is false).
            DialError: no address known or found, or every attempt failed (``errors``).
        """
        shared = self._pending.get(peer)
        if shared is not None:
            await shared.done.wait()
            if shared.error is not None:
                raise DialError(shared.message, shared.error.errors) from shared.error
            return shared.result  # type: ignore[return-value]  # set whenever error is None
        remaining = self.backoff_remaining(peer)
        if remaining > 0 and not force:
            raise DialBackoff(peer, remaining)
        outcome = self._pending[peer] = _Outcome[T]()
        try:
            outcome.result = await self._dial_peer(peer, addrs)
            self.clear_backoff(peer)
            return outcome.result
        except DialError as exc:
            outcome.error = exc
            outcome.message = f"could not connect to {peer}" if exc.errors else str(exc)
            if exc.errors and not force:  # "nothing to dial" is no reason to back off
                self._record_failure(peer)
            raise
        except BaseException:
            # Cancelled: the waiters are not, so they get a result instead of hanging.
            outcome.message = f"dial to {peer} was cancelled"
            outcome.error = DialError(outcome.message)
            raise
        finally:
            del self._pending[peer]
            outcome.done.set()

    async def _dial_peer(self, peer: PeerId, addrs: Sequence[Multiaddr] | None) -> T:
        candidates = list(self._addrs_of(peer)) if addrs is None else list(addrs)
        if not candidates and addrs is None and self.peer_routing is not None:
            candidates = await self._route(peer)
        return await self.dial_addrs(peer, candidates)

    async def _route(self, peer: PeerId) -> list[Multiaddr]:
        assert self.peer_routing is not None
        try:
            with anyio.fail_after(self.policy.routing_timeout):
                found = list(await self.peer_routing.find_peer(peer))
        except TimeoutError as exc:
            raise DialError(f"no known addresses for {peer}; peer routing timed out") from exc
        except P2PError as exc:
            raise DialError(f"no known addresses for {peer}; peer routing failed: {exc}") from exc
        if found and self._on_routed is not None:
            self._on_routed(peer, found)
        return found

    async def dial_addrs(self, peer: PeerId | None, addrs: Sequence[Multiaddr]) -> T:
        """Race ``addrs`` (ranked and filtered by the policy), without dedup or backoff.

        Returns:
            The connection of the first attempt that succeeded.

        Raises:
            DialError: nothing to dial after filtering, or every attempt failed.
        """
        target = str(peer) if peer is not None else ", ".join(map(str, addrs))
        usable = [a for a in self._rank(addrs) if is_dialable(a, self.policy)]
        usable = usable[: self.policy.max_addrs]
        if not usable:
            if addrs:
                raise DialError(f"no dialable addresses for {target} (all filtered by policy)")
            raise DialError(f"no known addresses for {target}")
        race = _Race[T]()
        async with anyio.create_task_group() as tg:
            for addr in usable:
                while race.running >= self.policy.max_parallel:
                    race.wake = anyio.Event()
                    await race.wake.wait()
                race.running += 1
                tg.start_soon(self._attempt, race, tg.cancel_scope, addr, peer)
                race.wake = anyio.Event()
                with anyio.move_on_after(self.policy.stagger):
                    await race.wake.wait()  # an attempt ended: go on at once
        if race.won:
            return race.winner  # type: ignore[return-value]  # set together with won
        raise DialError(f"could not connect to {target}", race.errors)

    async def _attempt(
        self, race: _Race[T], scope: anyio.CancelScope, addr: Multiaddr, peer: PeerId | None
    ) -> None:
        try:
            result = await self._dial_one(addr, peer)
        except ATTEMPT_ERRORS as exc:
            log.debug("dial %s at %s failed: %r", peer, addr, exc)
            race.errors.append((str(addr), exc))
        else:
            if not race.won:
                race.won, race.winner = True, result
                scope.cancel()
            else:
                await self._close_surplus(result)
        finally:
            race.running -= 1
            race.wake.set()

    async def _close_surplus(self, result: T) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(self.policy.close_timeout):
            try:
                await self._close(result)
            except ATTEMPT_ERRORS as exc:
                log.debug("closing a surplus connection failed: %r", exc)
