"""The host's event bus and its core events.

Events are frozen records named in the past tense. The set is open: any class can be emitted,
so a protocol defines and publishes its own events (identify's ``PeerIdentified``) without
touching this module. Two ways to listen:

* ``bus.on(EventType, callback)``: a synchronous callback run inside ``emit``; never lost.
  What services use for lifecycle bookkeeping (topologies are built on it).
* ``bus.subscribe(*types)``: a bounded, async-iterable stream. When a subscriber falls behind
  its buffer, it fails loudly (its next ``receive`` raises ``EventOverflow``) unless it opted
  into ``lossy=True``, where the dropped events are counted instead.

Delivery order is emission order, for every listener, even when a callback emits.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import anyio
import anyio.lowlevel
import attrs

from p2pstack.errors import EventOverflow
from p2pstack.sync import Signal

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.addresses import Reachability
    from p2pstack.connection import Connection
    from p2pstack.identity import PeerId

__all__ = [
    "AddrReachabilityChanged",
    "ConnectionClosed",
    "ConnectionOpened",
    "EventBus",
    "EventBusStatistics",
    "HostEvent",
    "LocalAddrsChanged",
    "LocalProtocolsChanged",
    "ObservedAddrsChanged",
    "PeerConnected",
    "PeerDisconnected",
    "PeerFailed",
    "PeerProtocolsChanged",
    "ReachabilityChanged",
    "StreamHandlerFailed",
    "Subscription",
    "Unsubscribe",
]

log = logging.getLogger("p2pstack.events")

E = TypeVar("E")
E1 = TypeVar("E1")
E2 = TypeVar("E2")

#: Events a subscription buffers when ``max_buffer`` is not given.
DEFAULT_BUFFER = 1024


# -- core events ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ConnectionOpened:
    """A connection finished its upgrade and was added to the host."""

    connection: Connection


@attrs.frozen(kw_only=True)
class ConnectionClosed:
    """A connection ended; ``reason`` is ``None`` for a clean close."""

    connection: Connection
    reason: BaseException | None = None


@attrs.frozen(kw_only=True)
class PeerConnected:
    """The first connection to a peer opened (a simultaneous dial counts once)."""

    peer_id: PeerId
    connection: Connection


@attrs.frozen(kw_only=True)
class PeerDisconnected:
    """The last connection to a peer closed."""

    peer_id: PeerId


@attrs.frozen(kw_only=True)
class PeerFailed:
    """A failure detector declared a peer gone: ``reason`` is ``"dead"`` (it stopped answering)
    or ``"left"`` (it said goodbye); ``source`` names the detector (``"membership"``).

    Emitted by services (the membership protocol), not by the host, which honours it: the peer
    is put in dial backoff for ``DialPolicy.failed_peer_backoff`` seconds (cleared as soon as it
    connects to us again) and its connection manager tags are dropped. The DHT drops the peer
    from its routing table.
    """

    peer_id: PeerId
    source: str
    reason: str = "dead"


@attrs.frozen(kw_only=True)
class LocalAddrsChanged:
    """The host started or stopped listening somewhere; ``addrs`` is the new ``host.addrs``."""

    addrs: Sequence[Multiaddr]


@attrs.frozen(kw_only=True)
class LocalProtocolsChanged:
    """A stream handler was added or removed after the host started."""

    protocols: Sequence[str]


@attrs.frozen(kw_only=True)
class PeerProtocolsChanged:
    """A connected peer's protocol list was learned or changed (through identify).

    Emitted once per connected period at least, when the list is first set, then on changes.
    """

    peer_id: PeerId
    protocols: Sequence[str]
    added: frozenset[str]
    removed: frozenset[str]


@attrs.frozen(kw_only=True)
class StreamHandlerFailed:
    """A stream handler raised something other than a network error (a bug); its stream was
    reset. Also counted in ``host.statistics().handler_failures``."""

    peer_id: PeerId
    protocol: str
    error: BaseException


@attrs.frozen(kw_only=True)
class ObservedAddrsChanged:
    """The confirmed observed addresses (``host.addresses.observed()``), or the addresses
    other services advertise through ``host.addresses.set_external``, changed: what we
    advertise may have changed (identify pushes it). ``addrs``: the confirmed observed ones."""

    addrs: Sequence[Multiaddr]


@attrs.frozen(kw_only=True)
class ReachabilityChanged:
    """The node's reachability changed (``host.addresses.reachability``).

    Attributes:
        reachability: the new state, ``"unknown"``, ``"public"`` or ``"private"``.
        previous: the state before.
        source: who decided (``"autonat"``, ``"autonat-v2"``, ...).
    """

    reachability: Reachability
    previous: Reachability
    source: str


@attrs.frozen(kw_only=True)
class AddrReachabilityChanged:
    """One of our addresses was found dialable (``public``) or not (``private``) by AutoNAT
    v2."""

    addr: Multiaddr
    reachability: Reachability


#: The core events, for exhaustive ``match`` over what the host itself emits.
HostEvent = (
    ConnectionOpened
    | ConnectionClosed
    | PeerConnected
    | PeerDisconnected
    | LocalAddrsChanged
    | LocalProtocolsChanged
    | PeerProtocolsChanged
    | StreamHandlerFailed
    | ObservedAddrsChanged
    | ReachabilityChanged
    | AddrReachabilityChanged
)


# -- the bus -------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class EventBusStatistics:
    """A snapshot of the bus counters.

    Attributes:
        subscriptions: open subscriptions.
        callbacks: registered callbacks.
        dropped_events: events lossy subscriptions dropped because they were full.
        overflowed_subscriptions: non-lossy subscriptions that failed because they were full.
        callback_failures: callbacks that raised (each logged with its traceback).
    """

    subscriptions: int
    callbacks: int
    dropped_events: int
    overflowed_subscriptions: int
    callback_failures: int


class Subscription(Generic[E]):
    """A bounded stream of events from ``EventBus.subscribe``; use it as a context manager
    (leaving the block unsubscribes) and read it with ``async for event in sub``.

    ``receive`` blocks until an event arrives; it raises ``EventOverflow`` once a non-lossy
    subscription has overflowed, and ``anyio.EndOfStream`` after the subscription was closed
    and drained. Cancel-safe: a cancelled ``receive`` loses no event.
    """

    def __init__(
        self, bus: EventBus, types: tuple[type[Any], ...], max_buffer: int, lossy: bool
    ) -> None:
        if max_buffer < 1:
            raise ValueError("max_buffer must be at least 1")
        self.types = types
        self.max_buffer = max_buffer
        self.lossy = lossy
        #: Events dropped because the (lossy) subscription was full.
        self.dropped = 0
        self._bus = bus
        self._queue: deque[E] = deque()
        self._signal = Signal()
        self._overflowed = False
        self._closed = False

    def _wants(self, event: object) -> bool:
        return not self.types or isinstance(event, self.types)

    def _deliver(self, event: E) -> None:
        if self._closed or self._overflowed:
            return
        if len(self._queue) >= self.max_buffer:
            if self.lossy:
                self.dropped += 1
                self._bus._dropped += 1
            else:
                self._overflowed = True
                self._bus._overflowed += 1
                log.warning("event subscription %r overflowed and was failed", self.types)
                self._signal.set()
            return
        self._queue.append(event)
        self._signal.set()

    def receive_nowait(self) -> E:
        """The next buffered event.

        Returns:
            The oldest event not yet received.

        Raises:
            EventOverflow: the subscription overflowed (non-lossy only).
            anyio.WouldBlock: nothing is buffered.
            anyio.EndOfStream: the subscription is closed and drained.
        """
        if self._overflowed:
            raise EventOverflow(f"event subscriber fell more than {self.max_buffer} events behind")
        if self._queue:
            return self._queue.popleft()
        if self._closed:
            raise anyio.EndOfStream
        raise anyio.WouldBlock

    async def receive(self) -> E:
        """Wait for the next event.

        Returns:
            The oldest event not yet received.

        Raises:
            EventOverflow: the subscription overflowed (non-lossy only).
            anyio.EndOfStream: the subscription is closed and drained.
        """
        # A checkpoint before taking the event: a cancellation here loses nothing.
        await anyio.lowlevel.checkpoint()
        while True:
            try:
                return self.receive_nowait()
            except anyio.WouldBlock:
                await self._signal.wait()

    def close(self) -> None:
        """Unsubscribe; events already buffered can still be received. Idempotent."""
        self._closed = True
        if self in self._bus._subscriptions:
            self._bus._subscriptions.remove(self)
        self._signal.set()

    def __enter__(self) -> Subscription[E]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __aiter__(self) -> Subscription[E]:
        return self

    async def __anext__(self) -> E:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None


@attrs.define(eq=False)
class _Callback:
    event_type: type[Any]
    fn: Callable[[Any], object]


class Unsubscribe:
    """The handle ``EventBus.on`` returns: ``close()`` (or leaving a ``with`` block) removes
    the callback. Idempotent."""

    def __init__(self, bus: EventBus, entry: _Callback) -> None:
        self._bus = bus
        self._entry = entry

    def close(self) -> None:
        """Remove the callback; it is not called for events emitted afterwards."""
        if self._entry in self._bus._callbacks:
            self._bus._callbacks.remove(self._entry)

    def __enter__(self) -> Unsubscribe:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class EventBus:
    """Delivers events to synchronous callbacks and to bounded subscriptions, in order.

    Args:
        default_buffer: events a subscription buffers when ``max_buffer`` is not given.
    """

    def __init__(self, *, default_buffer: int = DEFAULT_BUFFER) -> None:
        self.default_buffer = default_buffer
        self._callbacks: list[_Callback] = []
        self._subscriptions: list[Subscription[Any]] = []
        self._pending: deque[object] = deque()
        self._emitting = False
        self._dropped = 0
        self._overflowed = 0
        self._callback_failures = 0

    def on(self, event_type: type[E], callback: Callable[[E], object]) -> Unsubscribe:
        """Call ``callback(event)`` synchronously for every event of ``event_type``.

        The callback runs inside ``emit``: it must not block (start a task for slow work). An
        exception it raises is logged with its traceback and counted in
        ``statistics().callback_failures``; the other listeners still get the event.

        Args:
            event_type: the event class (subclasses match; ``object`` matches every event).
            callback: called with each matching event.

        Returns:
            A handle whose ``close()`` removes the callback.
        """
        entry = _Callback(event_type=event_type, fn=callback)
        self._callbacks.append(entry)
        return Unsubscribe(self, entry)

    @overload
    def subscribe(
        self, *, max_buffer: int | None = None, lossy: bool = False
    ) -> Subscription[object]: ...

    @overload
    def subscribe(
        self, event_type: type[E], /, *, max_buffer: int | None = None, lossy: bool = False
    ) -> Subscription[E]: ...

    @overload
    def subscribe(
        self,
        type1: type[E1],
        type2: type[E2],
        /,
        *,
        max_buffer: int | None = None,
        lossy: bool = False,
    ) -> Subscription[E1 | E2]: ...

    @overload
    def subscribe(
        self, *types: type[object], max_buffer: int | None = None, lossy: bool = False
    ) -> Subscription[object]: ...

    def subscribe(
        self, *types: type[Any], max_buffer: int | None = None, lossy: bool = False
    ) -> Subscription[Any]:
        """Subscribe to events of ``types`` (every event if none): ``with bus.subscribe(T) as
        sub: async for event in sub: ...``. Events emitted from this call on are delivered.

        Args:
            types: event classes (subclasses match).
            max_buffer: events buffered before the subscription overflows (the bus default if
                ``None``).
            lossy: on overflow drop (and count) events instead of failing the subscription.

        Returns:
            The subscription; leaving its ``with`` block (or ``close()``) unsubscribes.

        Raises:
            ValueError: ``max_buffer`` is less than 1.
        """
        buffer = self.default_buffer if max_buffer is None else max_buffer
        sub: Subscription[Any] = Subscription(self, types, buffer, lossy)
        self._subscriptions.append(sub)
        return sub

    def emit(self, event: object) -> None:
        """Deliver ``event`` to every matching callback, then every matching subscription.

        Never blocks. An event emitted from inside a callback is delivered after the current
        one has reached every listener, so all listeners see the same order.
        """
        self._pending.append(event)
        if self._emitting:
            return
        self._emitting = True
        try:
            while self._pending:
                self._dispatch(self._pending.popleft())
        finally:
            self._emitting = False

    def _dispatch(self, event: object) -> None:
        for entry in list(self._callbacks):
            if not isinstance(event, entry.event_type) or entry not in self._callbacks:
                continue
            try:
                entry.fn(event)
            except Exception:
                # A listener's bug must not stop the others from hearing the event; it is
                # reported loudly and counted, and the emitter carries on.
                self._callback_failures += 1
                log.exception("event callback %r failed on %r", entry.fn, event)
        for sub in list(self._subscriptions):
            if sub._wants(event):
                sub._deliver(event)

    def statistics(self) -> EventBusStatistics:
        """A snapshot of the bus counters."""
        return EventBusStatistics(
            subscriptions=len(self._subscriptions),
            callbacks=len(self._callbacks),
            dropped_events=self._dropped,
            overflowed_subscriptions=self._overflowed,
            callback_failures=self._callback_failures,
        )
