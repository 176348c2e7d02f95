"""How the ``p2pstack pubsub`` commands join a pubsub network through their ``--bootstrap`` peers:
connect to each, wait for the pubsub links, then subscribe (with the SUBSCRIBE, and for
gossipsub the GRAFT, written to the bootstrap peers before returning) or publish (once enough
subscribers are known, returning after the message has been written).

Spec: https://github.com/libp2p/specs/blob/master/pubsub/README.md (subscriptions are announced
on each peer's stream) and gossipsub-v1.0.md (joining a topic GRAFTs up to D of its known peers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import anyio
import attrs
from multiaddr import Multiaddr

from p2pstack.errors import NETWORK_ERRORS
from p2pstack.events import PeerDisconnected, PeerProtocolsChanged
from p2pstack.host import Host
from p2pstack.identity import PeerId
from p2pstack.roots.cli._common import UserError
from p2pstack.roots.cli._errors import describe, describe_connect_failure
from p2pstack.sync import Signal
from protocols.pubsub import (
    FLOODSUB_PROTOCOL_ID,
    GOSSIPSUB_PROTOCOLS,
    GossipsubConfig,
    Pubsub,
    Subscription,
)

__all__ = [
    "TOPIC_WAIT",
    "Published",
    "connect_all",
    "is_gossipsub",
    "publish_through",
    "subscribe_through",
    "wait_for",
    "wait_links",
]

#: Seconds ``subscribe_through`` waits (within its caller's deadline) for the bootstrap peers'
#: own subscriptions to the topic. They come in the first RPC on the peer's stream to us, so
#: once they are known that stream is open: a peer may drop what it publishes before its stream
#: is up (js floodsub does, even to a peer it lists as a recipient), and gossipsub GRAFTs only
#: peers known to be in the topic. A bootstrap peer that has not announced the topic by then is
#: taken as not in it (it gets our SUBSCRIBE; the heartbeat grafts it later if it joins).
TOPIC_WAIT = 2.0


def is_gossipsub(pubsub: Pubsub) -> bool:
    """Whether the service runs the gossipsub router (else floodsub)."""
    return isinstance(pubsub.config, GossipsubConfig)


def _protocols(pubsub: Pubsub) -> tuple[str, ...]:
    """The protocols the service speaks (a gossipsub node serves floodsub peers too)."""
    return GOSSIPSUB_PROTOCOLS if is_gossipsub(pubsub) else (FLOODSUB_PROTOCOL_ID,)


async def connect_all(host: Host, addrs: Sequence[Multiaddr]) -> list[PeerId]:
    """Connect to every bootstrap peer at once.

    Args:
        host: the host.
        addrs: the bootstrap peers (``/p2p/`` addresses).

    Returns:
        The peers reached, in ``addrs`` order.

    Raises:
        UserError: none could be reached (naming the first failure).
    """
    reached: dict[int, PeerId] = {}
    failures: list[BaseException] = []

    async def connect(index: int, addr: Multiaddr) -> None:
        try:
            conn = await host.connect(addr)
        except NETWORK_ERRORS as exc:
            failures.append(exc)
        else:
            reached[index] = conn.remote_peer

    async with anyio.create_task_group() as tg:
        for index, addr in enumerate(addrs):
            tg.start_soon(connect, index, addr)
    if not reached:
        first = failures[0]
        raise UserError(describe_connect_failure(first) or describe(first)) from first
    return list(dict.fromkeys(reached[i] for i in sorted(reached)))


async def wait_for(host: Host, pubsub: Pubsub, predicate: Callable[[], bool]) -> None:
    """Wait until ``predicate()`` holds; it is checked now, after each pubsub step, and after
    each identify result and disconnection. Bound it with a timeout.

    Args:
        host: the host.
        pubsub: its pubsub service.
        predicate: the condition.
    """
    if predicate():
        return
    changed = Signal()
    handles = [
        host.events.on(PeerProtocolsChanged, lambda _event: changed.set()),
        host.events.on(PeerDisconnected, lambda _event: changed.set()),
    ]
    try:
        async with anyio.create_task_group() as tg:

            async def on_pubsub_steps() -> None:
                await pubsub.wait_until(lambda _pubsub: predicate())
                tg.cancel_scope.cancel()

            tg.start_soon(on_pubsub_steps)
            while not predicate():
                await changed.wait()
            tg.cancel_scope.cancel()
    finally:
        for handle in handles:
            handle.close()


async def wait_links(host: Host, pubsub: Pubsub, peers: Sequence[PeerId]) -> list[PeerId]:
    """Wait until each of ``peers`` is a pubsub peer, or is known not to be one (identify listed
    none of our pubsub protocols, or it disconnected). Bound it with a timeout.

    Args:
        host: the host.
        pubsub: its pubsub service.
        peers: the connected bootstrap peers.

    Returns:
        Those that are pubsub peers.

    Raises:
        UserError: none of them is.
    """
    protocols = _protocols(pubsub)

    def settled(peer: PeerId) -> bool:
        if peer in pubsub.peers():
            return True
        if not host.connections(peer):
            return True
        listed = host.peerstore.protocols(peer)  # empty until identify answered
        return bool(listed) and not set(protocols) & set(listed)

    await wait_for(host, pubsub, lambda: all(settled(p) for p in peers))
    joined = [p for p in peers if p in pubsub.peers()]
    if not joined:
        router = "gossipsub" if is_gossipsub(pubsub) else "floodsub"
        raise UserError(f"no {router} peer among the bootstrap peers ({', '.join(protocols)})")
    return joined


async def subscribe_through(
    host: Host, pubsub: Pubsub, topic: str, peers: Sequence[PeerId], topic_wait: float = TOPIC_WAIT
) -> Subscription:
    """Subscribe to ``topic`` and return once the SUBSCRIBE (and, for gossipsub, the GRAFT to
    each of ``peers`` in the topic) has been written to ``peers``, so that a message published
    after that reaches us. Bound it with a timeout.

    Args:
        host: the host.
        pubsub: its pubsub service.
        topic: the topic.
        peers: the bootstrap pubsub peers (see ``wait_links``).
        topic_wait: seconds to wait first for the peers' own subscriptions to the topic (see
            ``TOPIC_WAIT``).

    Returns:
        The subscription.
    """
    with anyio.move_on_after(topic_wait):
        await wait_for(host, pubsub, lambda: set(peers) <= set(pubsub.peers(topic)))
    subscription = pubsub.subscribe(topic)
    await pubsub.flush(peers)
    return subscription


@attrs.frozen
class Published:
    """A message ``publish_through`` sent.

    Attributes:
        msg_id: its message ID.
        peers: the subscribers of the topic it was sent to.
    """

    msg_id: bytes
    peers: int


async def publish_through(
    host: Host, pubsub: Pubsub, topic: str, data: bytes, *, wait_peers: int, timeout: float
) -> Published:
    """Wait until ``wait_peers`` subscribers of ``topic`` are known, publish ``data``, and return
    once it has been written to them.

    Args:
        host: the host.
        pubsub: its pubsub service.
        topic: the topic.
        data: the payload.
        wait_peers: the subscribers to wait for.
        timeout: seconds to wait for them, and then for the message to be written.

    Returns:
        The message ID and the number of peers it went to.

    Raises:
        UserError: fewer than ``wait_peers`` subscribers within ``timeout``.
        MessageTooLarge: ``data`` does not fit in an RPC.
    """
    with anyio.move_on_after(timeout):
        await wait_for(host, pubsub, lambda: len(pubsub.peers(topic)) >= wait_peers)
    known = pubsub.peers(topic)
    if len(known) < wait_peers:
        raise UserError(
            f"timed out after {timeout:g} s waiting for {wait_peers} subscriber"
            f"{'s' if wait_peers != 1 else ''} of {topic} ({len(known)} known)"
        )
    msg_id = pubsub.publish(topic, data)
    with anyio.fail_after(timeout):
        await pubsub.flush(known)
    return Published(msg_id, len(known))
