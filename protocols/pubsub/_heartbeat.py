"""Gossipsub control handling and the heartbeat, as functions of the router state and the time
(https://github.com/libp2p/specs/blob/master/pubsub/gossipsub/gossipsub-v1.0.md#control-messages,
#heartbeat; v1.1 backoff, peer exchange and the score thresholds, #score-thresholds; v1.2
IDONTWANT). Where the score decides, the choices are go-libp2p-pubsub's; with scoring off every
peer scores 0 and the thresholds never apply.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from p2pstack.identity import PeerId
from protocols.pubsub import _gossip_select as _select
from protocols.pubsub._types import ControlMessage, ControlPrune, PeerInfo

if TYPE_CHECKING:
    from protocols.pubsub._gossip_state import Outbox
    from protocols.pubsub._gossipsub import GossipsubRouter

__all__ = ["handle_control", "heartbeat"]


def _handle_graft(
    router: GossipsubRouter, peer: PeerId, topic: str, now: float, out: Outbox, *, px: bool
) -> None:
    mesh = router.mesh.get(topic)
    if mesh is None:
        # The v1.1 spec's spam protection: "GRAFT messages for unknown topics are ignored" (go,
        # js and rust too): no PRUNE to reflect, no backoff entry to keep.
        return
    if peer in mesh:
        return
    cfg = router.config
    expiry = router.backoff.get(topic, {}).get(peer, -1.0)
    if expiry > now:
        # GRAFT during backoff: refuse, restart the backoff, and (v1.1) a behaviour penalty,
        # doubled when it comes within graft_flood_threshold of the PRUNE that started it.
        router.scoring.penalise(peer)
        if now < expiry + cfg.graft_flood_threshold - cfg.prune_backoff:
            router.scoring.penalise(peer)
        _select.prune_peer(router, out, peer, topic, now, backoff=cfg.prune_backoff, px=False)
        return
    if router.scoring.value(peer, now) < 0:
        # We do not graft negative-score peers, but answer with PRUNE (without PX) and a
        # backoff, so that they do not GRAFT again as soon as their score recovers (go).
        _select.prune_peer(router, out, peer, topic, now, backoff=cfg.prune_backoff, px=False)
        return
    if len(mesh) >= cfg.d_hi and not router.peers[peer].outbound:
        _select.prune_peer(router, out, peer, topic, now, backoff=cfg.prune_backoff, px=px)
        return
    mesh.add(peer)
    router.scoring.graft(peer, topic, now)


def _handle_prune(
    router: GossipsubRouter, peer: PeerId, prune: ControlPrune, now: float
) -> tuple[PeerInfo, ...]:
    mesh = router.mesh.get(prune.topic)
    if mesh is None:
        return ()  # not our topic (go ignores it too): no backoff entry, no PX
    if peer in mesh:
        mesh.discard(peer)
        router.scoring.prune(peer, prune.topic, now)
    backoff = router.config.prune_backoff if prune.backoff is None else float(prune.backoff)
    router.backoff.setdefault(prune.topic, {})[peer] = now + backoff
    if not router.config.do_px or not router.scoring.accepts_px(peer, now):
        return ()
    return prune.peers[: router.config.prune_peers]


#: The most protobuf bytes around the IDs of one IWANT in an RPC of its own (the RPC's control
#: and the IWANT headers), with the outbound queue's allowance per control item.
_IWANT_OVERHEAD = 32


def _within_rpc(ids: list[bytes], max_rpc_size: int) -> list[bytes]:
    # The IDs that fit one IWANT within the RPC bound: the outbound queue drops a larger one,
    # and its promise would then cost the advertiser P7 for a request never sent.
    budget = max_rpc_size - _IWANT_OVERHEAD
    for n, msg_id in enumerate(ids):
        budget -= 1 + (max(len(msg_id).bit_length(), 1) + 6) // 7 + len(msg_id)
        if budget < 0:
            return ids[:n]
    return ids


def _handle_ihave(
    router: GossipsubRouter, peer: PeerId, control: ControlMessage, now: float, out: Outbox
) -> None:
    cfg = router.config
    state = router.peers[peer]
    if not control.ihave or router.scoring.below_gossip(peer, now):
        return
    # Counted per RPC, as go counts max_ihave_messages.
    state.ihaves += 1
    if state.ihaves > cfg.max_ihave_messages or state.asked >= cfg.max_ihave_length:
        return
    # A dict, not a list: one RPC may advertise ~100,000 IDs, and a membership test on a list
    # would make that quadratic (minutes of CPU for one 1 MiB IHAVE).
    unique: dict[bytes, None] = {}
    for ihave in control.ihave:
        if ihave.topic not in router.mesh:
            continue
        for msg_id in ihave.message_ids:
            if msg_id not in unique and not router.seen.has(msg_id, now):
                unique[msg_id] = None
    if not unique:
        return
    wanted = list(unique)
    room = cfg.max_ihave_length - state.asked
    if len(wanted) > room:
        wanted = router.rng.sample(wanted, room)  # O(room), where a shuffle is O(advertised)
    else:
        router.rng.shuffle(wanted)
    wanted = _within_rpc(wanted, cfg.max_rpc_size)
    if not wanted:
        return
    state.asked += len(wanted)
    # Track one of them, as go does: a peer that advertises and does not deliver breaks a promise.
    router.promises.setdefault(router.rng.choice(wanted), (peer, now + cfg.iwant_followup))
    out.iwant(peer, wanted)


def _handle_iwant(
    router: GossipsubRouter, peer: PeerId, control: ControlMessage, now: float, out: Outbox
) -> None:
    if control.iwant and router.scoring.below_gossip(peer, now):
        return
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
    _handle_iwant(router, peer, control, now, out)
    # An RPC that GRAFTs an unknown topic gets no PX at all, so as not to reveal our peers to
    # a prober (go).
    offer = all(graft.topic in router.mesh for graft in control.graft)
    for graft in control.graft:
        _handle_graft(router, peer, graft.topic, now, out, px=offer)
    px: list[PeerInfo] = []
    for prune in control.prune:
        px += _handle_prune(router, peer, prune, now)
    _handle_idontwant(router, peer, control)
    return tuple(px)


def _add(router: GossipsubRouter, topic: str, peer: PeerId, now: float, out: Outbox) -> None:
    router.mesh[topic].add(peer)
    router.scoring.graft(peer, topic, now)
    out.graft(peer, topic)


def _drop(
    router: GossipsubRouter, topic: str, peer: PeerId, now: float, out: Outbox, *, px: bool
) -> None:
    router.mesh[topic].discard(peer)
    router.scoring.prune(peer, topic, now)
    _select.prune_peer(router, out, peer, topic, now, backoff=router.config.prune_backoff, px=px)


def _shrink(
    router: GossipsubRouter, topic: str, mesh: set[PeerId], now: float, out: Outbox
) -> None:
    cfg = router.config
    peers = sorted(mesh, key=lambda p: p.to_bytes())
    router.rng.shuffle(peers)
    if router.scoring.enabled:
        # Keep the D_score best-scoring peers, the rest of D at random (the sort is stable, so
        # the shuffle breaks ties).
        peers.sort(key=lambda p: router.scoring.value(p, now), reverse=True)
        rest = peers[cfg.d_score :]
        router.rng.shuffle(rest)
        peers[cfg.d_score :] = rest
    keep = peers[: cfg.d]
    outbound = [p for p in peers[cfg.d :] if router.peers[p].outbound]
    # Keep the outbound quota: swap outbound peers in for inbound ones at the end of keep.
    shortfall = cfg.d_out - sum(router.peers[p].outbound for p in keep)
    inbound_kept = [p for p in reversed(keep) if not router.peers[p].outbound]
    for add, drop in zip(outbound[: max(shortfall, 0)], inbound_kept, strict=False):
        keep[keep.index(drop)] = add
    for peer in [p for p in peers if p not in keep]:
        _drop(router, topic, peer, now, out, px=True)


def _opportunistic_graft(
    router: GossipsubRouter, topic: str, mesh: set[PeerId], now: float, out: Outbox
) -> None:
    # v1.1: when the median mesh score is below the threshold, graft a few peers scoring above
    # the median, to get out of a mesh of poor (perhaps colluding) peers.
    scores = sorted(router.scoring.value(p, now) for p in mesh)
    median = scores[len(scores) // 2]
    if median >= router.config.thresholds.opportunistic_graft:
        return
    candidates = [
        p
        for p in _select.graftable(router, topic, now, mesh)
        if router.scoring.value(p, now) > median
    ]
    router.rng.shuffle(candidates)
    for peer in candidates[: router.config.opportunistic_graft_peers]:
        _add(router, topic, peer, now, out)


def _maintain_mesh(
    router: GossipsubRouter, topic: str, mesh: set[PeerId], now: float, out: Outbox
) -> None:
    cfg = router.config
    for peer in router.ordered(mesh):
        if router.scoring.value(peer, now) < 0:
            _drop(router, topic, peer, now, out, px=False)  # no PX to a negative score
    if len(mesh) < cfg.d_lo:
        candidates = _select.graftable(router, topic, now, mesh)
        router.rng.shuffle(candidates)
        for peer in candidates[: cfg.d - len(mesh)]:
            _add(router, topic, peer, now, out)
    elif len(mesh) >= cfg.d_hi:
        # At D_hi, not only above it (go's heartbeat): a mesh that GRAFTs have filled to D_hi
        # refuses every GRAFT over an inbound connection (the "mesh full" rule), so it is cut
        # back to D, keeping the best-scoring peers, rather than left full.
        _shrink(router, topic, mesh, now, out)
    outbound_count = sum(router.peers[p].outbound for p in mesh)
    if len(mesh) >= cfg.d_lo and outbound_count < cfg.d_out:
        candidates = [
            p for p in _select.graftable(router, topic, now, mesh) if router.peers[p].outbound
        ]
        router.rng.shuffle(candidates)
        for peer in candidates[: cfg.d_out - outbound_count]:
            _add(router, topic, peer, now, out)
    opportunistic = router.heartbeats % cfg.opportunistic_graft_ticks == 0
    if router.scoring.enabled and opportunistic and len(mesh) > 1:
        _opportunistic_graft(router, topic, mesh, now, out)


def _maintain_fanout(router: GossipsubRouter, now: float) -> None:
    cfg = router.config
    for topic in list(router.fanout):
        if router.fanout_published.get(topic, now) + cfg.fanout_ttl < now:
            del router.fanout[topic]
            router.fanout_published.pop(topic, None)
            continue
        peers = router.fanout[topic]
        allowed = [p for p in router.topic_peers(topic) if not router.scoring.below_publish(p, now)]
        peers.intersection_update(allowed)
        if len(peers) < cfg.d:
            candidates = [p for p in allowed if p not in peers and not router.peers[p].is_floodsub]
            router.rng.shuffle(candidates)
            peers.update(candidates[: cfg.d - len(peers)])


def _gossip(
    router: GossipsubRouter, topic: str, exclude: set[PeerId], now: float, out: Outbox
) -> None:
    cfg = router.config
    ids = router.mcache.gossip_ids(topic)
    if not ids:
        return
    candidates = [
        p
        for p in router.topic_peers(topic)
        if p not in exclude
        and not router.peers[p].is_floodsub
        and not router.scoring.below_gossip(p, now)
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
            router.scoring.penalise(advertiser)  # v1.1: a broken IWANT promise costs P7
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
    """One heartbeat: age promises (a broken one costs a behaviour penalty), backoffs and
    counters; prune negative-score mesh peers; graft up to D below D_lo and prune down to D
    at D_hi or above (keeping the D_score best, and the outbound quota); graft
    opportunistically every ``opportunistic_graft_ticks`` heartbeats; keep fanouts alive for
    ``fanout_ttl``; gossip IHAVE to D_lazy (or gossip-factor) non-mesh peers per topic above
    the gossip threshold; shift the message cache.

    Args:
        router: the router.
        now: the current time.
        out: collects GRAFT, PRUNE and IHAVE.
    """
    router.heartbeats += 1
    _age(router, now)
    router.scoring.hold()
    try:
        for topic, mesh in router.mesh.items():
            _maintain_mesh(router, topic, mesh, now, out)
        _maintain_fanout(router, now)
        for topic, mesh in router.mesh.items():
            _gossip(router, topic, mesh, now, out)
        for topic, fanout in router.fanout.items():
            _gossip(router, topic, fanout, now, out)
    finally:
        router.scoring.release()
    router.mcache.shift()
