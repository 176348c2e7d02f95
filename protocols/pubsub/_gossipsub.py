"""The sans-IO gossipsub router core
(https://github.com/libp2p/specs/blob/master/pubsub/gossipsub/gossipsub-v1.0.md, v1.1 backoff,
peer exchange and peer scoring, v1.2 IDONTWANT): per-topic meshes joined by GRAFT and left by
PRUNE, fanout for topics we publish to without subscribing, and IHAVE/IWANT gossip from the
message cache. Scoring (``GossipsubConfig.score_params``) is off by default.

Like ``FloodsubRouter``, inputs are commands, received RPCs and the time; outputs are ``(peer,
RPC)`` pairs, one RPC per peer per call. ``heartbeat`` (``_heartbeat``) maintains the meshes;
call it every ``heartbeat_interval`` seconds (``next_deadline``). Randomness comes from the
``random.Random`` given, so runs are reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs

from p2pstack.identity import PeerId, PrivateKey
from protocols.pubsub import _gossip_select as _select
from protocols.pubsub import _heartbeat
from protocols.pubsub._gossip_score import RouterScore, ValidationResult
from protocols.pubsub._gossip_state import GossipsubConfig, Outbox, PeerState
from protocols.pubsub._mcache import MessageCache
from protocols.pubsub._message import SignaturePolicy, make_message
from protocols.pubsub._routing import (
    Outgoing,
    Received,
    RpcResult,
    SubscriptionChange,
    apply_subscriptions,
    ensure_fits,
    screen_messages,
)
from protocols.pubsub._seen import SeenCache
from protocols.pubsub._types import (
    RPC,
    Message,
    PeerInfo,
    PubsubProtocolError,
    SubOpts,
)

__all__ = ["GossipResult", "GossipsubRouter"]


@attrs.frozen
class GossipResult:
    """What one received RPC did.

    Attributes:
        rpc: new messages (validate, then ``forward``), subscription changes, duplicates,
            invalid messages.
        out: the replies to send now (IWANT answers, PRUNE for refused GRAFTs, IWANT requests,
            IDONTWANT announcements).
        px: peers offered by peer exchange in PRUNEs (the driver checks their signed records
            and may connect to them).
    """

    rpc: RpcResult
    out: list[Outgoing]
    px: tuple[PeerInfo, ...] = ()


class GossipsubRouter:
    """The gossipsub state of one node.

    Attributes:
        mesh: topic -> the mesh peers of each topic we are subscribed to.
        fanout: topic -> the peers we publish to on topics we are not subscribed to.
        fanout_published: topic -> when we last published on it (fanout expiry).
        backoff: topic -> peer -> time until which neither side may GRAFT.
        promises: message ID -> (peer that advertised it, deadline) for IWANTs we sent.
        broken_promises: peer -> IWANTs it did not answer in time (each also a P7 penalty).
        scoring: the peer scores and thresholds (every score 0 with scoring off).

    Args:
        local: our peer ID.
        rng: the randomness (peer selection).
        config: the parameters.
        private_key: our key, to sign what we publish (StrictSign).
        seqno: the first sequence number to publish with.
        now: the current time (the first heartbeat is due one interval later).
        peer_record: gives a peer's signed peer record (envelope bytes) for peer exchange.

    Raises:
        ValueError: StrictSign without ``local``'s private key, or inconsistent degrees or
            scoring parameters.
    """

    def __init__(
        self,
        local: PeerId,
        *,
        rng: random.Random,
        config: GossipsubConfig | None = None,
        private_key: PrivateKey | None = None,
        seqno: int = 0,
        now: float = 0.0,
        peer_record: Callable[[PeerId], bytes | None] | None = None,
    ) -> None:
        self.config = cfg = config or GossipsubConfig()
        if not (0 < cfg.d_lo <= cfg.d <= cfg.d_hi and 0 <= cfg.d_out <= cfg.d_lo):
            raise ValueError("need 0 < d_lo <= d <= d_hi and d_out <= d_lo")
        if cfg.d_score < 0 or cfg.opportunistic_graft_ticks <= 0:
            raise ValueError("need d_score >= 0 and opportunistic_graft_ticks > 0")
        signs = cfg.policy is SignaturePolicy.STRICT_SIGN
        if signs and (private_key is None or not local.matches(private_key.public_key)):
            raise ValueError("StrictSign needs the private key of the local peer")
        self.local = local
        self.rng = rng
        self._key = private_key
        self._seqno = seqno
        self.peer_record = peer_record
        self.peers: dict[PeerId, PeerState] = {}
        self.mesh: dict[str, set[PeerId]] = {}
        self.fanout: dict[str, set[PeerId]] = {}
        self.fanout_published: dict[str, float] = {}
        self.backoff: dict[str, dict[PeerId, float]] = {}
        self.promises: dict[bytes, tuple[PeerId, float]] = {}
        self.broken_promises: dict[PeerId, int] = {}
        self.mcache = MessageCache(cfg.history_length, cfg.history_gossip, cfg.max_cached_messages)
        self.seen = SeenCache(cfg.seen_ttl, cfg.seen_max)
        self.heartbeats = 0
        self.scoring = RouterScore(cfg.score_params, cfg.thresholds, now=now, seen_ttl=cfg.seen_ttl)
        self._next_heartbeat = now + cfg.heartbeat_interval

    def topic_peers(self, topic: str) -> list[PeerId]:
        """The peers subscribed to ``topic``, in the order they were added."""
        return [peer for peer, state in self.peers.items() if topic in state.topics]

    def add_peer(
        self,
        peer: PeerId,
        protocol: str,
        *,
        outbound: bool = False,
        ip: str | None = None,
        now: float = 0.0,
    ) -> list[Outgoing]:
        """A pubsub stream to ``peer`` speaking ``protocol`` is open: announce our topics.

        Args:
            peer: the peer.
            protocol: the negotiated protocol (``/meshsub/1.x.0`` or ``/floodsub/1.0.0``).
            outbound: whether we dialed the connection.
            ip: the peer's remote IP address (for the score's IP colocation factor, P6).
            now: the current time.

        Returns:
            The announcement (none when we have no topics or the peer was known).
        """
        if peer in self.peers or peer == self.local:
            return []
        self.peers[peer] = PeerState(protocol, outbound)
        self.scoring.add_peer(peer, ip, now)
        if not self.mesh:
            return []
        subs = tuple(SubOpts(True, topic) for topic in sorted(self.mesh))
        return [(peer, RPC(subscriptions=subs))]

    def remove_peer(self, peer: PeerId, now: float = 0.0) -> list[SubscriptionChange]:
        """``peer`` is gone: drop it from every mesh and fanout (its score is retained when
        not positive).

        Args:
            peer: the peer.
            now: the current time.

        Returns:
            Its subscriptions, as unsubscriptions.
        """
        state = self.peers.pop(peer, None)
        if state is not None:
            self.scoring.remove_peer(peer, now)
        self.broken_promises.pop(peer, None)
        for peers in (*self.mesh.values(), *self.fanout.values()):
            peers.discard(peer)
        topics = sorted(state.topics) if state else []
        return [SubscriptionChange(peer, topic, False) for topic in topics]

    def subscribe(self, topic: str, now: float) -> list[Outgoing]:
        """Join ``topic``: announce it and GRAFT up to D peers (fanout peers first).

        Args:
            topic: the topic.
            now: the current time.

        Returns:
            The announcements and GRAFTs.
        """
        if topic in self.mesh:
            return []
        out = Outbox()
        for peer in self.peers:
            out.subscription(peer, SubOpts(True, topic))
        fanout = self.fanout.pop(topic, set())
        # Fanout peers are above the publish threshold, which may be negative, and may be in a
        # backoff (a PRUNE when we left the topic, or theirs): keep only graftable ones (go's
        # Join); a GRAFT during the backoff would cost us a behaviour penalty at the peer.
        graftable = set(_select.graftable(self, topic, now, set()))
        kept = [p for p in self.ordered(fanout) if p in graftable]
        mesh = set(kept[: self.config.d])
        self.fanout_published.pop(topic, None)
        candidates = _select.graftable(self, topic, now, mesh)
        self.rng.shuffle(candidates)
        mesh.update(candidates[: self.config.d - len(mesh)])
        self.mesh[topic] = mesh
        for peer in self.ordered(mesh):
            self.scoring.graft(peer, topic, now)
            out.graft(peer, topic)
        return out.rpcs()

    def unsubscribe(self, topic: str, now: float) -> list[Outgoing]:
        """Leave ``topic``: announce it and PRUNE the mesh with the unsubscribe backoff.

        Args:
            topic: the topic.
            now: the current time.

        Returns:
            The announcements and PRUNEs.
        """
        mesh = self.mesh.pop(topic, None)
        if mesh is None:
            return []
        out = Outbox()
        for peer in self.peers:
            out.subscription(peer, SubOpts(False, topic))
        for peer in self.ordered(mesh):
            self.scoring.prune(peer, topic, now)
            backoff = self.config.unsubscribe_backoff
            _select.prune_peer(self, out, peer, topic, now, backoff=backoff, px=False)
        return out.rpcs()

    def publish(self, topic: str, data: bytes, now: float) -> tuple[Message, bytes, list[Outgoing]]:
        """Publish ``data`` on ``topic``: to every subscribed peer (flood publishing), else to
        the mesh, else to the topic's fanout (made of D peers when missing); never to peers
        below the publish threshold.

        Args:
            topic: the topic.
            data: the payload.
            now: the current time.

        Returns:
            The message, its ID and the RPCs.

        Raises:
            MessageTooLarge: the message does not fit in ``max_rpc_size``.
        """
        cfg = self.config
        message = make_message(
            topic, data, policy=cfg.policy, private_key=self._key, seqno=self._seqno
        )
        ensure_fits(message, cfg.max_rpc_size)
        self._seqno = (self._seqno + 1) % (1 << 64)
        msg_id = cfg.message_id(message)
        self.seen.add(msg_id, now)
        self.mcache.put(msg_id, message)
        targets = _select.publish_targets(self, topic, now)
        rpc = RPC(publish=(message,))
        return message, msg_id, [(peer, rpc) for peer in targets]

    def ordered(self, peers: set[PeerId]) -> list[PeerId]:
        """``peers`` in the order they were added: never iterate a set of peers where the order
        reaches the output, as set order follows string hashing, which differs per process."""
        return [peer for peer in self.peers if peer in peers]

    def forward(self, received: Received, now: float) -> list[Outgoing]:
        """Pass a validated message on to the topic's mesh (and its floodsub peers), except its
        source, its publisher and peers that sent IDONTWANT for it; cache it for gossip.

        Args:
            received: a message ``handle_rpc`` returned, accepted by validation.
            now: the current time.

        Returns:
            The RPCs to send.
        """
        message = received.message
        self.mcache.put(received.msg_id, message)
        self.scoring.validated(received.msg_id, ValidationResult.ACCEPT, now)
        targets = set(self.mesh.get(message.topic, ()))
        targets |= {
            p
            for p in self.topic_peers(message.topic)
            if self.peers[p].is_floodsub and not self.scoring.below_publish(p, now)
        }
        targets -= {received.source, message.from_}
        rpc = RPC(publish=(message,))  # one value for every peer: a driver may encode it once
        dont = received.msg_id
        return [(p, rpc) for p in self.ordered(targets) if dont not in self.peers[p].dont_send]

    def report_validation(self, msg_id: bytes, result: ValidationResult, now: float) -> None:
        """The topic validators' verdict on a message ``handle_rpc`` returned, for the score:
        accept credits its first sender (P2, P3; ``forward`` reports accept itself), reject
        costs it and everyone who sent it meanwhile P4, ignore costs nothing. Only the first
        report of a message counts.

        Args:
            msg_id: the message's ID (``Received.msg_id``).
            result: the verdict.
            now: the current time.
        """
        self.scoring.validated(msg_id, result, now)

    def _apply_subscriptions(
        self, peer: PeerId, subs: tuple[SubOpts, ...], now: float
    ) -> list[SubscriptionChange]:
        max_topics = self.config.max_peer_topics
        changes = apply_subscriptions(peer, self.peers[peer].topics, subs, max_topics)
        for change in changes:
            if not change.subscribed:
                mesh = self.mesh.get(change.topic, set())
                if peer in mesh:
                    mesh.discard(peer)
                    self.scoring.prune(peer, change.topic, now)
                self.fanout.get(change.topic, set()).discard(peer)
        return changes

    def _receive_messages(self, peer: PeerId, rpc: RPC, now: float, out: Outbox) -> RpcResult:
        result = screen_messages(
            rpc.publish,
            source=peer,
            local=self.local,
            topics=self.mesh,
            seen=self.seen,
            policy=self.config.policy,
            message_id=self.config.message_id,
            relay=self.config.relay_unsubscribed,
            now=now,
        )
        for received in result.received:
            self.promises.pop(received.msg_id, None)
            _select.announce_idontwant(self, received, out)
        return result

    def handle_rpc(self, peer: PeerId, rpc: RPC, now: float) -> GossipResult:
        """Take an RPC received from ``peer``. Of a graylisted peer (score below the graylist
        threshold) only the subscriptions are applied, as go does; the rest is ignored.

        Args:
            peer: the sender (must have been added).
            rpc: the RPC.
            now: the current time.

        Returns:
            New messages and changes, the replies to send, and peers offered by PX.

        Raises:
            PubsubProtocolError: ``peer`` was not added, or it exceeds ``max_peer_topics``.
        """
        if peer not in self.peers:
            raise PubsubProtocolError("RPC from a peer that has no pubsub stream")
        changes = self._apply_subscriptions(peer, rpc.subscriptions, now)
        if self.scoring.graylisted(peer, now):
            return GossipResult(RpcResult(changes=tuple(changes)), [])
        out = Outbox()
        result = self._receive_messages(peer, rpc, now, out)
        self.scoring.received(peer, result, now)
        px: tuple[PeerInfo, ...] = ()
        if rpc.control is not None and not self.peers[peer].is_floodsub:
            px = _heartbeat.handle_control(self, peer, rpc.control, now, out)
        if changes:  # most RPCs carry none: skip the copy on the hot path
            result = attrs.evolve(result, changes=tuple(changes))
        return GossipResult(result, out.rpcs(), px)

    def next_deadline(self) -> float:
        """When the next heartbeat or score decay tick is due."""
        decay = self.scoring.next_deadline()
        return self._next_heartbeat if decay is None else min(decay, self._next_heartbeat)

    def handle_timer(self, now: float) -> list[Outgoing]:
        """Run the score's decay and the heartbeat if due.

        Args:
            now: the current time.

        Returns:
            What the heartbeat sends (GRAFT, PRUNE, IHAVE), or nothing when not due.
        """
        self.scoring.handle_timer(now)
        if now < self._next_heartbeat:
            return []
        interval = self.config.heartbeat_interval
        self._next_heartbeat += interval
        if self._next_heartbeat <= now:  # late by more than an interval: skip, do not burst
            self._next_heartbeat = now + interval
        return self.heartbeat(now)

    def heartbeat(self, now: float) -> list[Outgoing]:
        """Maintain meshes and fanout, gossip, and age the caches (see ``_heartbeat``).

        Args:
            now: the current time.

        Returns:
            What it sends.
        """
        out = Outbox()
        _heartbeat.heartbeat(self, now, out)
        return out.rpcs()
