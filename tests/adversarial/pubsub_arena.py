"""The pubsub node under attack, an honest publisher -> node -> subscriber line through it, and
an attacker that speaks the pubsub wire itself (gossipsub spec:
https://github.com/libp2p/specs/blob/master/pubsub/gossipsub/gossipsub-v1.1.md).

Every host runs TCP + Noise + yamux with identify and, except the attacker, the ``Pubsub``
service. The node scores peers with counters that barely decay within a test, so that penalties
show as round numbers: n invalid messages cost -n^2 (P4: counter squared, weight -1), n
behaviour penalties -10 n^2 (P7: counter squared, weight -10); gossip stops below -10, the
node's own messages below -50, and RPCs are ignored (graylist) below -80.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import attrs

from p2pstack.builder import open_host
from p2pstack.errors import NETWORK_ERRORS
from p2pstack.host import Host, Stream
from p2pstack.identity import Identity, PeerId
from protocols.identify import Identify
from protocols.pubsub import (
    FLOODSUB_PROTOCOL_ID,
    GOSSIPSUB_V11_PROTOCOL_ID,
    RPC,
    FloodsubConfig,
    GossipsubConfig,
    GossipsubRouter,
    Message,
    PeerScoreParams,
    PeerScoreThresholds,
    Pubsub,
    PubsubMessage,
    RpcDecoder,
    ScoreBreakdown,
    SubOpts,
    Subscription,
    TopicScoreParams,
    frame_rpc,
    make_message,
)
from transports.noise import Noise
from transports.tcp import TcpTransport
from transports.yamux import Yamux

__all__ = [
    "MAX_RPC",
    "NODE_FLOOD",
    "NODE_GOSSIP",
    "THRESHOLDS",
    "TOPIC",
    "Attacker",
    "PubsubArena",
    "breakdown",
    "open_pubsub_arena",
    "router_sizes",
]

TOPIC = "adversarial"
#: The RPC bound of every host here (small, so that oversized RPCs are quick to send).
MAX_RPC = 64 * 1024
#: Seconds within which the node must act on an attack (reset a stream, answer a GRAFT).
PROMPT = 5.0

_TOPIC_SCORE = TopicScoreParams(
    topic_weight=1.0,
    time_in_mesh_weight=0.0,
    first_message_deliveries_weight=1.0,
    first_message_deliveries_decay=0.9,
    first_message_deliveries_cap=10.0,
    mesh_message_deliveries_weight=0.0,  # the honest peers publish too little for P3
    mesh_failure_penalty_weight=0.0,
    invalid_message_deliveries_weight=-1.0,
    invalid_message_deliveries_decay=0.999,
)
SCORE = PeerScoreParams(
    topics={TOPIC: _TOPIC_SCORE},
    ip_colocation_factor_weight=0.0,  # every peer here is on 127.0.0.1
    behaviour_penalty_weight=-10.0,
    behaviour_penalty_decay=0.999,
)
THRESHOLDS = PeerScoreThresholds(gossip=-10.0, publish=-50.0, graylist=-80.0)
#: The node's router: fast heartbeats (meshes form within the test), a short IWANT follow-up.
NODE_GOSSIP = GossipsubConfig(
    heartbeat_interval=0.2,
    iwant_followup=1.0,
    max_rpc_size=MAX_RPC,
    score_params=SCORE,
    thresholds=THRESHOLDS,
)
_HONEST_GOSSIP = GossipsubConfig(heartbeat_interval=0.2, max_rpc_size=MAX_RPC)
#: A floodsub node (the honest gossipsub peers speak floodsub to it).
NODE_FLOOD = FloodsubConfig(max_rpc_size=MAX_RPC)


@asynccontextmanager
async def _open(services: list[object], *, listen: bool) -> AsyncIterator[Host]:
    async with open_host(
        transports=[TcpTransport()],
        security=[Noise()],
        muxers=[Yamux()],
        # mypy: `services` is list[object] so that callers may pass any service object.
        services=[Identify(), *services],  # type: ignore[list-item]
        listen=["/ip4/127.0.0.1/tcp/0"] if listen else [],
    ) as host:
        yield host


def _full_addr(host: Host) -> str:
    return str(host.addrs[0].encapsulate(f"/p2p/{host.peer_id}"))


def ps(host: Host) -> Pubsub:
    return host.service(Pubsub)


def _core(node: Host) -> GossipsubRouter:
    core = ps(node)._require()[1].core
    assert isinstance(core, GossipsubRouter)
    return core


def breakdown(node: Host, peer: Host) -> ScoreBreakdown:
    """The node's score of ``peer`` with its components (P4 per topic, P7)."""
    score = _core(node).scoring.score
    assert score is not None
    found = score.breakdown(peer.peer_id, anyio.current_time())
    assert found is not None, "the node does not score this peer"
    return found


def router_sizes(node: Host) -> dict[str, int]:
    """The sizes of every collection an attacker can grow in the node's gossipsub router."""
    core = _core(node)
    peers = core.peers
    return {
        "peers": len(peers),
        "peer_topics": sum(len(state.topics) for state in peers.values()),
        "dont_send": sum(len(state.dont_send) for state in peers.values()),
        "mesh": sum(len(m) for m in core.mesh.values()),
        "fanout": len(core.fanout),
        "backoff": sum(len(b) for b in core.backoff.values()),
        "promises": len(core.promises),
        "seen": len(core.seen),
        "mcache": len(core.mcache),
    }


@attrs.define
class Attacker:
    """A host without the ``Pubsub`` service that writes its own pubsub RPCs to the node and
    records what the node writes back on its outbound stream (or never reads it).

    Attributes:
        host: the attacker's host.
        received: the RPCs the node sent, in order.
        reading: whether the node's stream is read at all.
    """

    host: Host
    node: Host
    reading: bool = True
    protocol: str = GOSSIPSUB_V11_PROTOCOL_ID
    received: list[RPC] = attrs.Factory(list)
    inbound: list[Stream] = attrs.Factory(list)
    stream: Stream | None = None
    _got: anyio.Event = attrs.Factory(anyio.Event)
    _seqno: itertools.count[int] = attrs.Factory(lambda: itertools.count(1))

    @property
    def peer_id(self) -> object:
        return self.host.peer_id

    async def _serve(self, stream: Stream) -> None:
        self.inbound.append(stream)
        if not self.reading:
            await anyio.sleep_forever()
        decoder = RpcDecoder(MAX_RPC)
        try:
            while True:
                for rpc in decoder.feed(await stream.receive()):
                    self.received.append(rpc)
                    self._got.set()
                    self._got = anyio.Event()
        except NETWORK_ERRORS:
            return

    async def open(self) -> Stream:
        """A new pubsub stream to the node (``protocol``), now the one ``send`` uses."""
        self.stream = await self.host.new_stream(self.node.peer_id, [self.protocol])
        return self.stream

    async def send(self, rpc: RPC) -> None:
        """Write one RPC on the current stream (opened on first use)."""
        await self.send_raw(frame_rpc(rpc))

    async def send_raw(self, data: bytes) -> None:
        """Write raw bytes on the current stream (opened on first use)."""
        stream = self.stream or await self.open()
        await stream.send(data)

    def message(self, data: bytes, *, topic: str = TOPIC) -> Message:
        """A correctly signed message from the attacker (a fresh sequence number each)."""
        key = self.host.identity.private_key
        return make_message(topic, data, private_key=key, seqno=next(self._seqno))

    async def wait_for(
        self, predicate: Callable[[RPC], bool], *, start: int = 0, within: float = PROMPT
    ) -> RPC:
        """The first RPC received from the ``start``-th on (already, or within ``within`` s)
        that matches ``predicate``."""
        with anyio.fail_after(within):
            checked = start
            while True:
                for rpc in self.received[checked:]:
                    if predicate(rpc):
                        return rpc
                checked = len(self.received)
                await self._got.wait()

    async def barrier(self) -> None:
        """Return once the node has handled every RPC sent so far and what it queued for us
        meanwhile has arrived (as far as one RPC holds it: control goes first).

        The attacker announces a fresh topic and withdraws it, waiting until the node applied
        both (the node's peer state is as before); the node then announces a topic of its own
        that no peer has (no GRAFT, no PRUNE: subscriptions only), queued after its replies.
        """
        pubsub = ps(self.node)
        peer = self.host.peer_id
        ours, theirs = (f"barrier-{os.urandom(4).hex()}" for _ in range(2))
        heard = len(self.received)
        with anyio.fail_after(PROMPT):
            for joined in (True, False):

                def applied(service: Pubsub, joined: bool = joined) -> bool:
                    return (peer in service.peers(ours)) == joined

                await self.send(RPC(subscriptions=(SubOpts(joined, ours),)))
                await pubsub.wait_until(applied)
        pubsub.subscribe(theirs)
        try:
            await self.wait_for(lambda rpc: SubOpts(True, theirs) in rpc.subscriptions, start=heard)
        finally:
            pubsub.unsubscribe(theirs)


@attrs.define
class PubsubArena:
    """The node under attack and its honest neighbours.

    Attributes:
        node: the node (subscribed to ``TOPIC``, scoring on).
        publisher: an honest host connected only to the node.
        subscriber: an honest host connected only to the node, subscribed to ``TOPIC``.
        node_sub: the node's own subscription.
        subscription: the subscriber's subscription.
    """

    node: Host
    publisher: Host
    subscriber: Host
    node_sub: Subscription
    subscription: Subscription
    stack: AsyncExitStack
    _count: itertools.count[int] = attrs.Factory(itertools.count)

    async def attacker(self, *, reading: bool = True) -> Attacker:
        """A connected attacker whose pubsub stream the node has taken as a peer's (speaking
        ``/meshsub/1.1.0``, or ``/floodsub/1.0.0`` to a floodsub node)."""
        host = await self.stack.enter_async_context(_open([], listen=False))
        floodsub = isinstance(ps(self.node).config, FloodsubConfig)
        protocol = FLOODSUB_PROTOCOL_ID if floodsub else GOSSIPSUB_V11_PROTOCOL_ID
        attacker = Attacker(host, self.node, reading=reading, protocol=protocol)
        host.set_stream_handler(protocol, attacker._serve)
        await self.reconnect(attacker)
        return attacker

    async def reconnect(self, attacker: Attacker) -> None:
        """Close the attacker's connections (the node forgets it as a peer), then connect and
        open a pubsub stream again."""
        peer = attacker.host.peer_id
        pubsub = ps(self.node)
        with anyio.fail_after(PROMPT):
            if attacker.host.connections(self.node.peer_id):
                await attacker.host.disconnect(self.node.peer_id)
                await pubsub.wait_until(lambda p: peer not in p.peers())
            await attacker.host.connect(_full_addr(self.node))
            await attacker.open()
            await pubsub.wait_until(lambda p: peer in p.peers())

    def node_backoff(self, peer: PeerId) -> float:
        """Until when the node backs ``peer`` off in ``TOPIC`` (-inf without a backoff)."""
        return _core(self.node).backoff.get(TOPIC, {}).get(peer, float("-inf"))

    async def honest_delivery(self, count: int = 1, size: int = 64) -> list[PubsubMessage]:
        """Publish ``count`` messages at the publisher; check that the node and the subscriber
        (through the node) each get every one, exactly once and unaltered."""
        sent = {}
        for _ in range(count):
            data = f"honest-{next(self._count)}-".encode().ljust(size, b".")
            sent[ps(self.publisher).publish(TOPIC, data)] = data
        got: list[PubsubMessage] = []
        with anyio.fail_after(PROMPT * 2):
            for sub in (self.node_sub, self.subscription):
                seen: dict[bytes, PubsubMessage] = {}
                while len(seen) < len(sent):
                    message = await sub.receive()
                    assert message.msg_id not in seen, "delivered twice"
                    seen[message.msg_id] = message
                assert {k: m.data for k, m in seen.items()} == sent
                got += seen.values()
        assert all(m.from_peer == self.publisher.peer_id for m in got)
        return got


@asynccontextmanager
async def open_pubsub_arena(
    config: GossipsubConfig | FloodsubConfig = NODE_GOSSIP, **node_options: object
) -> AsyncIterator[PubsubArena]:
    """The node (``Pubsub(config, **node_options)``), the honest publisher and subscriber
    connected to it, meshes formed and one honest message delivered."""
    async with AsyncExitStack() as stack:
        node = await stack.enter_async_context(
            # mypy: node_options holds mixed option types; Pubsub checks them when built.
            _open([Pubsub(config, **node_options)], listen=True)  # type: ignore[arg-type]
        )
        publisher = await stack.enter_async_context(_open([Pubsub(_HONEST_GOSSIP)], listen=False))
        subscriber = await stack.enter_async_context(_open([Pubsub(_HONEST_GOSSIP)], listen=False))
        node_sub = ps(node).subscribe(TOPIC)
        subscription = ps(subscriber).subscribe(TOPIC)
        with anyio.fail_after(PROMPT * 2):
            await publisher.connect(_full_addr(node))
            await subscriber.connect(_full_addr(node))
            await ps(publisher).wait_until(lambda p: node.peer_id in p.peers(TOPIC))
            await ps(node).wait_until(lambda p: subscriber.peer_id in p.mesh(TOPIC))
            # A floodsub node is no gossipsub mesh member: the subscriber floods to it.
            meshed = isinstance(config, GossipsubConfig)
            await ps(subscriber).wait_until(
                lambda p: node.peer_id in (p.mesh(TOPIC) if meshed else p.peers(TOPIC))
            )
        arena = PubsubArena(node, publisher, subscriber, node_sub, subscription, stack)
        await arena.honest_delivery()
        yield arena


def identity() -> Identity:
    """A fresh identity (a key the attacker signs with instead of its own)."""
    return Identity.generate()


__all__ += ["PROMPT", "SCORE", "identity", "ps"]
