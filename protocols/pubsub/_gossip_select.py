"""Gossipsub peer selection shared by commands and the heartbeat
(https://github.com/libp2p/specs/blob/master/pubsub/gossipsub/gossipsub-v1.1.md#prune-backoff-and-peer-exchange,
#flood-publishing; v1.2 IDONTWANT): which peers may be grafted, what a PRUNE carries, where a
message we publish goes, and who hears IDONTWANT. Peers with negative score are never grafted
nor offered by PX; peers below the publish threshold never get our own messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from p2pstack.identity import PeerId
from protocols.pubsub._routing import Received
from protocols.pubsub._types import PeerInfo

if TYPE_CHECKING:
    from protocols.pubsub._gossip_state import Outbox
    from protocols.pubsub._gossipsub import GossipsubRouter

__all__ = ["announce_idontwant", "graftable", "prune_peer", "publish_targets"]


def graftable(
    router: GossipsubRouter, topic: str, now: float, exclude: set[PeerId]
) -> list[PeerId]:
    """Gossipsub peers of ``topic`` outside ``exclude`` whose backoff (plus slack) is over,
    without negative score.

    Args:
        router: the router.
        topic: the topic.
        now: the current time.
        exclude: peers not to return (the mesh).

    Returns:
        The peers, in the order they were added.
    """
    backoff = router.backoff.get(topic, {})
    slack = router.config.backoff_slack
    return [
        peer
        for peer in router.topic_peers(topic)
        if peer not in exclude
        and not router.peers[peer].is_floodsub
        and backoff.get(peer, -1.0) + slack <= now
        and router.scoring.value(peer, now) >= 0
    ]


def prune_peer(
    router: GossipsubRouter,
    out: Outbox,
    peer: PeerId,
    topic: str,
    now: float,
    *,
    backoff: float,
    px: bool,
) -> None:
    """Queue a PRUNE of ``topic`` to ``peer`` and start its backoff (the caller has taken it
    out of the mesh); v1.1 peers get the backoff and, with ``px`` and ``do_px``, up to
    ``prune_peers`` other subscribers without negative score.

    Args:
        router: the router.
        out: collects the PRUNE.
        peer: the peer.
        topic: the topic.
        now: the current time.
        backoff: seconds until it may GRAFT again.
        px: whether to offer peers.
    """
    router.backoff.setdefault(topic, {})[peer] = now + backoff
    if not router.peers[peer].does_px:
        out.prune(peer, topic, None)
        return
    offered: tuple[PeerInfo, ...] = ()
    if px and router.config.do_px:
        others = [
            p for p in router.topic_peers(topic) if p != peer and router.scoring.value(p, now) >= 0
        ]
        router.rng.shuffle(others)
        offered = tuple(
            PeerInfo(p, router.peer_record(p) if router.peer_record else None)
            for p in others[: router.config.prune_peers]
        )
    out.prune(peer, topic, backoff, offered)


def publish_targets(router: GossipsubRouter, topic: str, now: float) -> list[PeerId]:
    """Where a message we publish on ``topic`` goes: every subscribed peer (flood publishing),
    else the mesh, else the topic's fanout (made of D peers when missing) and floodsub peers.

    Args:
        router: the router.
        topic: the topic.
        now: the current time.

    Returns:
        The peers, in the order they were added.
    """
    cfg = router.config
    scoring = router.scoring
    subscribed = [p for p in router.topic_peers(topic) if not scoring.below_publish(p, now)]
    if cfg.flood_publish:
        targets = set(subscribed)
    elif topic in router.mesh:
        targets = set(router.mesh[topic])
    else:
        fanout = router.fanout.setdefault(topic, set())
        if not fanout:
            gossipers = [p for p in subscribed if not router.peers[p].is_floodsub]
            fanout.update(router.rng.sample(gossipers, min(cfg.d, len(gossipers))))
        router.fanout_published[topic] = now
        targets = fanout | {p for p in subscribed if router.peers[p].is_floodsub}
    return router.ordered(targets)


def announce_idontwant(router: GossipsubRouter, received: Received, out: Outbox) -> None:
    """v1.2: announce a large new message to the v1.2 mesh peers at once, before validation
    as the spec allows, so that they do not send it to us too.

    Args:
        router: the router.
        received: the new message.
        out: collects the IDONTWANTs.
    """
    if len(received.message.data) < router.config.idontwant_threshold:
        return
    for other in router.ordered(router.mesh.get(received.message.topic, set())):
        if other != received.source and router.peers[other].does_idontwant:
            out.idontwant(other, received.msg_id)
