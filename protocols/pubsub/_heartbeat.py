"""Gossipsub control handling and the heartbeat, as functions of the router state and the time
(https://github.com/libp2p/specs/blob/master/pubsub/gossipsub/gossipsub-v1.0.md#control-messages,
#heartbeat; v1.1 backoff and peer exchange; v1.2 IDONTWANT). Scoring is not applied yet: where
go consults the score (mesh selection, gossip and PX thresholds) every peer counts as 0.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from p2pstack.identity import PeerId
from protocols.pubsub._types import ControlMessage, ControlPrune, PeerInfo

if TYPE_CHECKING:
    from protocols.pubsub._gossip_state import Outbox
    from protocols.pubsub._gossipsub import GossipsubRouter

__all__ = ["handle_control", "heartbeat"]


def _handle_graft(
    router: GossipsubRouter, peer: PeerId, topic: str, now: float, out: Outbox
) -> None:
    mesh = router.mesh.get(topic)
    if mesh is None:
        # Unknown topic: refuse without PX, so as not to reveal peers, and without keeping a
        # backoff entry (go does the same), so that GRAFTs for made-up topics cost no memory.
        backoff = router.config.prune_backoff if router.peers[peer].does_px else None
        out.prune(peer, topic, backoff)
        return
    if peer in mesh:
        return
    if router.backoff.get(topic, {}).get(peer, -1.0) > now:
        # GRAFT during backoff: refuse and restart the backoff (v1.1; scoring adds P7).
        router.prune_peer(out, peer, topic, now, router.config.prune_backoff, px=False)
        return
    if len(mesh) >= router.config.d_hi and not router.peers[peer].outbound:
        router.prune_peer(out, peer, topic, now, router.config.prune_backoff, px=True)
        return
    mesh.add(peer)


def _handle_prune(
    router: GossipsubRouter, peer: PeerId, prune: ControlPrune, now: float
) -> tuple[PeerInfo, ...]:
    mesh = router.mesh.get(prune.topic)
    if mesh is None:
        return ()  # not our topic (go ignores it too): no backoff entry, no PX
    mesh.discard(peer)
    backoff = router.config.prune_backoff if prune.backoff is None else float(prune.backoff)
    router.backoff.setdefault(prune.topic, {})[peer] = now + backoff
    if not router.config.do_px:
        return ()
    return prune.peers[: router.config.prune_peers]


def _handle_ihave(
    router: GossipsubRouter, peer: PeerId, control: ControlMessage, now: float, out: Outbox
) -> None:
    cfg = router.config
    state = router.peers[peer]
    if not control.ihave:
        return
    # Counted per RPC, as go counts max_ihave_messages.
    state.ihaves += 1
    if state.ihaves > cfg.max_ihave_messages or state.asked >= cfg.max_ihave_length:
        return
    wanted: list[bytes] = []
    for ihave in control.ihave:
        if ihave.topic not in router.mesh:
            continue
        for msg_id in ihave.message_ids:
            if msg_id not in wanted and not router.seen.has(msg_id, now):
                wanted.append(msg_id)
    if not wanted:
        return
    router.rng.shuffle(wanted)
    wanted = wanted[: cfg.max_ihave_length - state.asked]
    state.asked += len(wanted)
    # Track one of them, as go does: a peer that advertises and does not deliver breaks a promise.
    router.promises.setdefault(router.rng.choice(wanted), (peer, now + cfg.iwant_followup))
    out.iwant(peer, wanted)


def _handle_iwant(
    router: GossipsubRouter, peer: PeerId, control: ControlMessage, out: Outbox
) -> None:
    for iwant in control.iwant:
        for msg_id in iwant.message_ids:
            found = router.mcache.get_for_peer(msg_id, peer)
            if found is not None and found[1] <= router.config.gossip_retransmission:
                out.message(peer, found[0])


def _handle_idontwant(router: GossipsubRouter, peer: PeerId, control: ControlMessage) -> None:
    state = router.peers[peer]
    until = router.heartbeats + router.config.idontwant_ttl
    for idontwant in control.idontwant:
        for msg_id in idontwant.message_ids:
            if state.idontwants >= router.config.max_idontwant_messages:
                return
            state.idontwants += 1
            state.dont_send[msg_id] = until


def handle_control(
    router: GossipsubRouter, peer: PeerId, control: ControlMessage, now: float, out: Outbox
) -> tuple[PeerInfo, ...]:
    """Apply the control part of an RPC from a gossipsub peer.

    Args:
        router: the router.
        peer: the sender.
        control: its control messages.
        now: the current time.
        out: collects the replies (IWANT, messages for IWANT, PRUNE for refused GRAFTs).

    Returns:
        The peers offered by peer exchange (when ``do_px``).
    """
    _handle_ihave(router, peer, control, now, out)
    _handle_iwant(router, peer, control, out)
    for graft in control.graft:
        _handle_graft(router, peer, graft.topic, now, out)
    px: list[PeerInfo] = []
    for prune in control.prune:
        px += _handle_prune(router, peer, prune, now)
    _handle_idontwant(router, peer, control)
    return tuple(px)


def _maintain_mesh(
    router: GossipsubRouter, topic: str, mesh: set[PeerId], now: float, out: Outbox
) -> None:
    cfg = router.config
    if len(mesh) < cfg.d_lo:
        candidates = router.graftable(topic, now, mesh)
        router.rng.shuffle(candidates)
        for peer in candidates[: cfg.d - len(mesh)]:
            mesh.add(peer)
            out.graft(peer, topic)
    elif len(mesh) > cfg.d_hi:
        peers = sorted(mesh, key=lambda p: p.to_bytes())
        router.rng.shuffle(peers)
        keep = peers[: cfg.d]
        outbound = [p for p in peers[cfg.d :] if router.peers[p].outbound]
        # Keep the outbound quota: swap outbound peers in for inbound ones at the end of keep.
        shortfall = cfg.d_out - sum(router.peers[p].outbound for p in keep)
        inbound_kept = [p for p in reversed(keep) if not router.peers[p].outbound]
        for add, drop in zip(outbound[: max(shortfall, 0)], inbound_kept, strict=False):
            keep[keep.index(drop)] = add
        for peer in [p for p in peers if p not in keep]:
            mesh.discard(peer)
            router.prune_peer(out, peer, topic, now, cfg.prune_backoff, px=True)
    outbound_count = sum(router.peers[p].outbound for p in mesh)
    if len(mesh) >= cfg.d_lo and outbound_count < cfg.d_out:
        candidates = [p for p in router.graftable(topic, now, mesh) if router.peers[p].outbound]
        router.rng.shuffle(candidates)
        for peer in candidates[: cfg.d_out - outbound_count]:
            mesh.add(peer)
            out.graft(peer, topic)


def _maintain_fanout(router: GossipsubRouter, now: float) -> None:
    cfg = router.config
    for topic in list(router.fanout):
        if router.fanout_published.get(topic, now) + cfg.fanout_ttl < now:
            del router.fanout[topic]
            router.fanout_published.pop(topic, None)
            continue
        peers = router.fanout[topic]
        peers.intersection_update(router.topic_peers(topic))
        if len(peers) < cfg.d:
            candidates = [
                p
                for p in router.topic_peers(topic)
                if p not in peers and not router.peers[p].is_floodsub
            ]
            router.rng.shuffle(candidates)
            peers.update(candidates[: cfg.d - len(peers)])


def _gossip(router: GossipsubRouter, topic: str, exclude: set[PeerId], out: Outbox) -> None:
    cfg = router.config
    ids = router.mcache.gossip_ids(topic)
    if not ids:
        return
    candidates = [
        p for p in router.topic_peers(topic) if p not in exclude and not router.peers[p].is_floodsub
    ]
    count = max(cfg.d_lazy, math.floor(cfg.gossip_factor * len(candidates)))
    router.rng.shuffle(candidates)
    for peer in candidates[:count]:
        advertised = list(ids)
        if len(advertised) > cfg.max_ihave_length:
            router.rng.shuffle(advertised)
            advertised = advertised[: cfg.max_ihave_length]
        out.ihave(peer, topic, advertised)


def _age(router: GossipsubRouter, now: float) -> None:
    for msg_id in [m for m, (_, deadline) in router.promises.items() if deadline <= now]:
        advertiser = router.promises.pop(msg_id)[0]
        if advertiser in router.peers:
            router.broken_promises[advertiser] = router.broken_promises.get(advertiser, 0) + 1
    slack = 2 * router.config.heartbeat_interval
    for topic, expiries in list(router.backoff.items()):
        for peer in [p for p, until in expiries.items() if until + slack < now]:
            del expiries[peer]
        if not expiries:
            del router.backoff[topic]
    for state in router.peers.values():
        state.ihaves = state.asked = state.idontwants = 0
        for msg_id in [m for m, until in state.dont_send.items() if until <= router.heartbeats]:
            del state.dont_send[msg_id]


def heartbeat(router: GossipsubRouter, now: float, out: Outbox) -> None:
    """One heartbeat: age promises, backoffs and counters; bring every mesh within
    D_lo..D_hi (and its outbound quota); keep fanouts alive for ``fanout_ttl``; gossip IHAVE
    to D_lazy (or gossip-factor) non-mesh peers per topic; shift the message cache.

    Args:
        router: the router.
        now: the current time.
        out: collects GRAFT, PRUNE and IHAVE.
    """
    router.heartbeats += 1
    _age(router, now)
    for topic, mesh in router.mesh.items():
        _maintain_mesh(router, topic, mesh, now, out)
    _maintain_fanout(router, now)
    for topic, mesh in router.mesh.items():
        _gossip(router, topic, mesh, out)
    for topic, fanout in router.fanout.items():
        _gossip(router, topic, fanout, out)
    router.mcache.shift()
