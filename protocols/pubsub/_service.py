"""The ``Pubsub`` host service: a thin driver around the floodsub or gossipsub router core
(https://github.com/libp2p/specs/blob/master/pubsub/README.md): peer streams in and out
(``_peer_streams``), topic validators, subscriptions, and the heartbeat timer.

A peer joins when a connection to it appears and identify lists one of our pubsub protocols
(a topology per protocol), or when it opens a pubsub stream to us; it leaves when it
disconnects or its outbound stream fails. Received messages go through the router's checks
(signature, seen-cache), then the topic's validators, then are forwarded and delivered.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any

import anyio

from p2pstack.errors import LocalProtocolError
from p2pstack.events import PeerDisconnected, Unsubscribe
from p2pstack.sansio import TimerDriver
from p2pstack.sync import Signal
from protocols.pubsub._api import (
    DEFAULT_SUBSCRIPTION_BUFFER,
    Counters,
    PubsubMessage,
    PubsubStatistics,
    Subscription,
    TopicPeerChanged,
    Validator,
    to_api,
)
from protocols.pubsub._driver import RouterConfig, RouterDriver, router_config
from protocols.pubsub._gossip_score import ValidationResult
from protocols.pubsub._peer_streams import LinkSettings, PeerStreams
from protocols.pubsub._px import PxConnector
from protocols.pubsub._queue import (
    DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_MAX_QUEUED_CONTROL,
    QueueStats,
)
from protocols.pubsub._routing import Received, SubscriptionChange
from protocols.pubsub._validation import ValidationRunner

if TYPE_CHECKING:
    from p2pstack.host import Host
    from p2pstack.identity import PeerId
    from p2pstack.topology import Topology
    from protocols.pubsub._routing import Outgoing
    from protocols.pubsub._types import RPC

__all__ = ["Pubsub"]

_log = logging.getLogger(__name__)


class Pubsub:
    """The publish/subscribe service (``services=[..., Pubsub("gossipsub")]``, then
    ``host.service(Pubsub)``).

    Args:
        router: ``"gossipsub"`` (default), ``"floodsub"``, or a ``GossipsubConfig`` /
            ``FloodsubConfig``.
        rng: randomness (gossipsub peer selection, the first sequence number).
        subscription_buffer: messages a subscription holds for a reader that is behind.
        validation_timeout: seconds an asynchronous validator may take (then: ignore).
        max_pending_validations: asynchronous validations running at once; messages beyond
            it are dropped unvalidated and counted (``throttled``).
        max_queued_bytes: message bytes queued per peer.
        max_queued_control: control items queued per peer.
        open_timeout: seconds to open a peer's outbound stream.
        write_timeout: seconds one RPC write may take before the peer is dropped.
        deliver_own: deliver our own published messages to our subscriptions (as go does).
    """

    def __init__(
        self,
        router: str | RouterConfig = "gossipsub",
        *,
        rng: random.Random | None = None,
        subscription_buffer: int = DEFAULT_SUBSCRIPTION_BUFFER,
        validation_timeout: float = 5.0,
        max_pending_validations: int = 1024,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        max_queued_control: int = DEFAULT_MAX_QUEUED_CONTROL,
        open_timeout: float = 10.0,
        write_timeout: float = 30.0,
        deliver_own: bool = True,
    ) -> None:
        self.config = router_config(router)
        self._rng = rng or random.Random()
        self._buffer = subscription_buffer
        self._validation = ValidationRunner(
            timeout=validation_timeout,
            max_pending=max_pending_validations,
            spawn=self._spawn,
            done=self._validated,
        )
        self._deliver_own = deliver_own
        self._settings = LinkSettings(
            max_rpc_size=self.config.max_rpc_size,
            max_queued_bytes=max_queued_bytes,
            max_queued_control=max_queued_control,
            open_timeout=open_timeout,
            write_timeout=write_timeout,
        )
        self._counters = Counters()
        self._subscriptions: dict[str, list[Subscription]] = {}
        self._changed = Signal()
        self._host: Host | None = None
        self._router: RouterDriver | None = None
        self._streams: PeerStreams | None = None
        self._px: PxConnector | None = None
        self._timers: TimerDriver | None = None
        self._topologies: list[Topology] = []
        self._handles: list[Unsubscribe] = []

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, host: Host) -> None:
        """Build the router, serve the pubsub protocols, follow peers, start the heartbeat."""
        self._host = host
        px = self._px = PxConnector(host, timeout=self._settings.open_timeout)
        router = self._router = RouterDriver(
            self.config,
            local=host.peer_id,
            private_key=host.identity.private_key,
            rng=self._rng,
            now=anyio.current_time(),
            peer_record=px.signed_record,
        )
        streams = self._streams = PeerStreams(
            host=host,
            protocols=router.protocols,
            settings=self._settings,
            on_joined=self._joined,
            on_left=self._left,
            on_rpc=self._on_rpc,
        )
        self._timers = TimerDriver(router, on_fire=self._on_timer)
        host.start_soon(self._timers.run, name="pubsub heartbeat")
        for protocol in router.protocols:
            # One inbound stream per peer (the spec), plus one for a reconnection's overlap.
            host.set_stream_handler(
                protocol, streams.handle_inbound, replace=True, max_inbound_per_peer=2
            )
        self._handles.append(host.events.on(PeerDisconnected, self._disconnected))
        for protocol in router.protocols:
            topology = host.register_topology(protocol, on_connect=streams.connect)
            self._topologies.append(topology)

    async def stop(self) -> None:
        """Stop serving and following peers; end every link and subscription."""
        for topology in self._topologies:
            topology.close()
        self._topologies.clear()
        for handle in self._handles:
            handle.close()
        self._handles.clear()
        if self._host is not None and self._router is not None:
            for protocol in self._router.protocols:
                self._host.remove_stream_handler(protocol)
        if self._streams is not None:
            self._streams.close()
            with anyio.move_on_after(2.0):  # the FINs go out before the connections close
                await self._streams.wait_closed()
        for subs in self._subscriptions.values():
            for sub in subs:
                sub._end()
        self._subscriptions.clear()

    def _require(self) -> tuple[Host, RouterDriver, PeerStreams]:
        if self._host is None or self._router is None or self._streams is None:
            raise LocalProtocolError("the Pubsub service has not been started")
        return self._host, self._router, self._streams

    # -- peers and the router -------------------------------------------------------------------

    def _send_all(self, out: list[Outgoing]) -> None:
        streams = self._require()[2]
        for peer, rpc in out:
            streams.send(peer, rpc)

    def _after_step(self) -> None:
        if self._timers is not None:
            self._timers.poke()
        self._changed.set()

    def _joined(self, peer: PeerId, protocol: str, outbound: bool, ip: str | None) -> None:
        _, router, _ = self._require()
        now = anyio.current_time()
        self._send_all(router.add_peer(peer, protocol, outbound=outbound, ip=ip, now=now))
        self._after_step()

    def _left(self, peer: PeerId) -> None:
        if self._router is not None:
            self._announce(self._router.remove_peer(peer, anyio.current_time()))
            self._after_step()

    def _announce(self, changes: Iterable[SubscriptionChange]) -> None:
        if self._host is not None:
            for change in changes:
                event = TopicPeerChanged(change.peer, change.topic, change.subscribed)
                self._host.events.emit(event)

    def _disconnected(self, event: PeerDisconnected) -> None:
        if self._streams is not None:
            self._streams.disconnect(event.peer_id)

    async def _on_timer(self) -> None:
        _, router, _ = self._require()
        self._send_all(router.take_timer_output())
        self._changed.set()

    def _on_rpc(self, peer: PeerId, rpc: RPC) -> None:
        _, router, _ = self._require()
        if not router.has_peer(peer):
            return  # its outbound link ended; it rejoins with a new connection
        result, out, px = router.handle_rpc(peer, rpc, anyio.current_time())
        self._send_all(out)
        if px and self._px is not None:
            self._px.offer(px)
        self._announce(result.changes)
        counters = self._counters
        counters.received += len(result.received)
        counters.duplicates += result.duplicates
        counters.invalid += len(result.invalid)
        for received in result.received:
            self._validation.validate(to_api(received))
        self._after_step()

    # -- validation and delivery ----------------------------------------------------------------

    def _spawn(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._require()[0].start_soon(fn, name="pubsub validation")

    def _validated(self, message: PubsubMessage, outcome: ValidationResult) -> None:
        # Rejected and ignored messages are dropped (never forwarded nor delivered), counted,
        # and reported to the router's score (reject costs the senders P4); ``forward``
        # reports an accept itself.
        if outcome is not ValidationResult.ACCEPT and self._router is not None:
            self._router.report_validation(message.msg_id, outcome, anyio.current_time())
        if outcome is ValidationResult.REJECT:
            self._counters.rejected += 1
        elif outcome is ValidationResult.IGNORE:
            self._counters.ignored += 1
        elif self._router is not None and message.received_from is not None:
            local = message.topic in self._router.topics
            self._accept(
                Received(message.msg_id, message.raw, message.received_from, local), message
            )
        self._after_step()

    def _accept(self, received: Received, message: PubsubMessage) -> None:
        _, router, _ = self._require()
        self._send_all(router.forward(received, anyio.current_time()))
        if received.local:
            self._deliver(message)

    def _deliver(self, message: PubsubMessage) -> None:
        for sub in self._subscriptions.get(message.topic, ()):
            if sub._deliver(message):
                self._counters.delivered += 1
            else:
                self._counters.dropped_deliveries += 1

    # -- public API -----------------------------------------------------------------------------

    def subscribe(self, topic: str) -> Subscription:
        """Subscribe to ``topic`` (announced to every peer; gossipsub joins its mesh).

        Args:
            topic: the topic.

        Returns:
            A subscription: iterate it for messages; ``close()`` it to unsubscribe (the topic
            is left when its last subscription closes).
        """
        _, router, _ = self._require()
        sub = Subscription(topic, self._buffer, self._subscription_closed)
        subs = self._subscriptions.setdefault(topic, [])
        subs.append(sub)
        if len(subs) == 1:
            self._send_all(router.subscribe(topic, anyio.current_time()))
            self._after_step()
        return sub

    def _subscription_closed(self, sub: Subscription) -> None:
        subs = self._subscriptions.get(sub.topic, [])
        if sub in subs:
            subs.remove(sub)
        if not subs:
            self.unsubscribe(sub.topic)

    def unsubscribe(self, topic: str) -> None:
        """Leave ``topic``: close its subscriptions and tell every peer. No-op if not joined."""
        _, router, _ = self._require()
        for sub in self._subscriptions.pop(topic, []):
            sub._end()
        self._send_all(router.unsubscribe(topic, anyio.current_time()))
        self._after_step()

    def publish(self, topic: str, data: bytes) -> bytes:
        """Publish ``data`` on ``topic`` (joining it is not needed). Never blocks: the message
        is queued for each peer it goes to. With ``deliver_own``, our subscriptions of the
        topic get it too (our own validators do not run on it).

        Args:
            topic: the topic.
            data: the payload.

        Returns:
            The message ID.

        Raises:
            MessageTooLarge: the message does not fit in the RPC size bound.
        """
        _, router, _ = self._require()
        message, msg_id, out = router.publish(topic, data, anyio.current_time())
        self._counters.published += 1
        self._send_all(out)
        if self._deliver_own and topic in router.topics:
            self._deliver(
                PubsubMessage(
                    topic, message.data, message.from_, message.seqno_int, msg_id, None, message
                )
            )
        self._after_step()
        return msg_id

    def add_validator(self, topic: str, validator: Validator) -> None:
        """Validate received messages of ``topic`` with ``validator`` (after those added
        before). It returns a ``ValidationResult`` (or a bool: accept or reject), directly or
        as an awaitable; a rejected or ignored message is neither forwarded nor delivered.
        One that raises rejects; one that takes longer than ``validation_timeout`` ignores."""
        self._validation.add(topic, validator)

    def remove_validators(self, topic: str) -> None:
        """Drop the validators of ``topic``."""
        self._validation.remove(topic)

    def peers(self, topic: str | None = None) -> list[PeerId]:
        """The pubsub peers, or those known to be subscribed to ``topic``."""
        return self._require()[1].peers(topic)

    def mesh(self, topic: str) -> list[PeerId]:
        """The peers we forward ``topic`` to: the gossipsub mesh (floodsub: its peers)."""
        return self._require()[1].mesh(topic)

    def score(self, peer: PeerId) -> float:
        """``peer``'s gossipsub score (0 with scoring off and under floodsub)."""
        return self._require()[1].score(peer, anyio.current_time())

    @property
    def topics(self) -> frozenset[str]:
        """The topics we are subscribed to."""
        return self._require()[1].topics

    async def wait_until(self, predicate: Callable[[Pubsub], bool]) -> None:
        """Wait until ``predicate(self)`` holds; it is checked now and after each router step
        (received RPC, heartbeat, peer change). Bound the wait with a timeout.

        Args:
            predicate: the condition (on ``peers``, ``mesh``, ``statistics`` ...).
        """
        while not predicate(self):
            await self._changed.wait()

    async def flush(self, peers: Iterable[PeerId] | None = None) -> None:
        """Wait until every RPC queued for ``peers`` (default: every peer) has been written to
        its stream, or its link has ended. Bound the wait with a timeout.

        Args:
            peers: the peers (a peer without a link counts as flushed).
        """
        streams = self._require()[2]
        chosen = list(self.peers() if peers is None else peers)
        while not all(streams.idle(peer) for peer in chosen):
            await streams.progress.wait()

    def queue_statistics(self, peer: PeerId) -> QueueStats | None:
        """A snapshot of the outbound queue of ``peer`` (``None`` when it has no link)."""
        return self._require()[2].queue_statistics(peer)

    def statistics(self) -> PubsubStatistics:
        """A snapshot of the counters."""
        c = self._counters
        streams = self._streams
        return PubsubStatistics(
            peers=len(self.peers()) if self._router else 0,
            topics=len(self.topics) if self._router else 0,
            published=c.published,
            received=c.received,
            delivered=c.delivered,
            duplicates=c.duplicates,
            invalid=c.invalid,
            rejected=c.rejected,
            ignored=c.ignored,
            throttled=self._validation.throttled,
            malformed_rpcs=streams.counters.malformed_rpcs if streams else 0,
            dropped_outbound=streams.dropped_outbound if streams else 0,
            dropped_deliveries=c.dropped_deliveries,
            write_failures=streams.counters.write_failures if streams else 0,
            open_retries=streams.counters.open_retries if streams else 0,
        )
