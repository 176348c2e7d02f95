"""State of the gossipsub router core (https://github.com/libp2p/specs/blob/master/pubsub/gossipsub/gossipsub-v1.1.md#parameters):
its parameters (go-libp2p-pubsub's v1.1 defaults, except D_lo = 4 as this project chose), what it
knows of each peer, and an outbox that coalesces what one step sends each peer into one RPC.
"""

from __future__ import annotations

import attrs

from p2pstack.identity import PeerId
from protocols.pubsub._mcache import DEFAULT_MCACHE_MAX
from protocols.pubsub._message import MessageIdFn, SignaturePolicy, default_message_id
from protocols.pubsub._score_params import PeerScoreParams, PeerScoreThresholds
from protocols.pubsub._seen import DEFAULT_SEEN_MAX, DEFAULT_SEEN_TTL
from protocols.pubsub._types import (
    FLOODSUB_PROTOCOL_ID,
    GOSSIPSUB_V11_PROTOCOL_ID,
    GOSSIPSUB_V12_PROTOCOL_ID,
    RPC,
    ControlGraft,
    ControlIDontWant,
    ControlIHave,
    ControlIWant,
    ControlMessage,
    ControlPrune,
    Message,
    PeerInfo,
    SubOpts,
)
from protocols.pubsub._wire import DEFAULT_MAX_RPC_SIZE

__all__ = ["GossipsubConfig", "Outbox", "PeerState"]


@attrs.frozen(kw_only=True)
class GossipsubConfig:
    """Gossipsub parameters; names follow the spec, values go's defaults.

    Attributes:
        d: the desired mesh degree.
        d_lo: below this the heartbeat grafts up to ``d``.
        d_hi: above this the heartbeat prunes down to ``d``; GRAFTs beyond it are refused.
        d_lazy: the least peers gossip goes to per topic.
        d_out: the least outbound peers kept in each mesh (when the mesh has as many).
        heartbeat_interval: seconds between heartbeats.
        fanout_ttl: seconds a fanout topic lives after our last publish.
        gossip_factor: the share of non-mesh peers gossip goes to (when above ``d_lazy``).
        history_length: message-cache windows served to IWANT.
        history_gossip: message-cache windows advertised in IHAVE.
        max_cached_messages: the most messages the message cache holds.
        prune_backoff: seconds a pruned peer may not GRAFT again.
        unsubscribe_backoff: the backoff sent when we leave a topic.
        backoff_slack: extra seconds we wait before grafting a peer after its backoff.
        prune_peers: the most peers offered by peer exchange in one PRUNE.
        do_px: offer and accept peer exchange on PRUNE.
        flood_publish: publish to every subscribed peer, not only the mesh.
        max_ihave_length: the most message IDs we ask one peer for per heartbeat (and advertise
            in one IHAVE).
        max_ihave_messages: the most IHAVE messages taken from one peer per heartbeat.
        iwant_followup: seconds a peer has to deliver what it advertised and we asked for.
        gossip_retransmission: the most times one peer gets the same message by IWANT.
        idontwant_threshold: messages of at least this many bytes are announced by IDONTWANT to
            v1.2 mesh peers.
        idontwant_ttl: heartbeats an IDONTWANT is remembered.
        max_idontwant_messages: the most message IDs taken by IDONTWANT from one peer per
            heartbeat.
        policy: the signing policy.
        message_id: computes message IDs.
        seen_ttl: seconds a message ID is remembered.
        seen_max: the most message IDs remembered.
        max_peer_topics: the most topics tracked per peer.
        max_rpc_size: the largest RPC sent or accepted, in bytes (a published message must fit).
        relay_unsubscribed: take messages on topics we are not subscribed to (forwarded to
            nobody by gossipsub, which has no mesh for them; off, as go does).
        score_params: the peer-score parameters (``None``: scoring off, every peer scores 0).
        thresholds: the score thresholds (used only with ``score_params``).
        d_score: when pruning an oversized mesh, how many of the best-scoring peers are kept
            before the rest is chosen at random.
        opportunistic_graft_ticks: heartbeats between opportunistic grafting rounds.
        opportunistic_graft_peers: the most peers one round grafts.
        graft_flood_threshold: a GRAFT sooner than this many seconds after our PRUNE costs an
            extra behaviour penalty.
    """

    d: int = 6
    d_lo: int = 4
    d_hi: int = 12
    d_lazy: int = 6
    d_out: int = 2
    heartbeat_interval: float = 1.0
    fanout_ttl: float = 60.0
    gossip_factor: float = 0.25
    history_length: int = 5
    history_gossip: int = 3
    max_cached_messages: int = DEFAULT_MCACHE_MAX
    prune_backoff: float = 60.0
    unsubscribe_backoff: float = 10.0
    backoff_slack: float = 1.0
    prune_peers: int = 16
    do_px: bool = False
    flood_publish: bool = True
    max_ihave_length: int = 5000
    max_ihave_messages: int = 10
    iwant_followup: float = 3.0
    gossip_retransmission: int = 3
    idontwant_threshold: int = 1024
    idontwant_ttl: int = 3
    max_idontwant_messages: int = 1000
    policy: SignaturePolicy = SignaturePolicy.STRICT_SIGN
    message_id: MessageIdFn = default_message_id
    seen_ttl: float = DEFAULT_SEEN_TTL
    seen_max: int = DEFAULT_SEEN_MAX
    max_peer_topics: int = 1024
    max_rpc_size: int = DEFAULT_MAX_RPC_SIZE
    relay_unsubscribed: bool = False
    score_params: PeerScoreParams | None = None
    thresholds: PeerScoreThresholds = attrs.Factory(PeerScoreThresholds)
    d_score: int = 4
    opportunistic_graft_ticks: int = 60
    opportunistic_graft_peers: int = 2
    graft_flood_threshold: float = 10.0


@attrs.define
class PeerState:
    """What the router knows of one peer.

    Attributes:
        protocol: the pubsub protocol its stream speaks.
        outbound: whether we dialed it (the D_out quota counts these).
        topics: the topics it announced.
        dont_send: message IDs it said it has (IDONTWANT) -> heartbeat count when forgotten.
        ihaves: IHAVE messages taken from it this heartbeat.
        asked: message IDs asked from it by IWANT this heartbeat.
        idontwants: IDONTWANT IDs taken from it this heartbeat.
    """

    protocol: str
    outbound: bool
    topics: set[str] = attrs.Factory(set)
    dont_send: dict[bytes, int] = attrs.Factory(dict)
    ihaves: int = 0
    asked: int = 0
    idontwants: int = 0

    @property
    def is_floodsub(self) -> bool:
        """Whether it speaks floodsub (gets messages, never control)."""
        return self.protocol == FLOODSUB_PROTOCOL_ID

    @property
    def does_px(self) -> bool:
        """Whether it understands peer exchange and backoff (v1.1 and later)."""
        return self.protocol in (GOSSIPSUB_V11_PROTOCOL_ID, GOSSIPSUB_V12_PROTOCOL_ID)

    @property
    def does_idontwant(self) -> bool:
        """Whether it understands IDONTWANT (v1.2)."""
        return self.protocol == GOSSIPSUB_V12_PROTOCOL_ID


@attrs.define
class _Pending:
    subscriptions: list[SubOpts] = attrs.Factory(list)
    publish: list[Message] = attrs.Factory(list)
    ihave: list[ControlIHave] = attrs.Factory(list)
    iwant: list[bytes] = attrs.Factory(list)
    graft: list[ControlGraft] = attrs.Factory(list)
    prune: list[ControlPrune] = attrs.Factory(list)
    idontwant: list[bytes] = attrs.Factory(list)

    def rpc(self) -> RPC:
        """The RPC holding everything queued for the peer (one IWANT and one IDONTWANT)."""
        control = ControlMessage(
            ihave=tuple(self.ihave),
            iwant=(ControlIWant(tuple(self.iwant)),) if self.iwant else (),
            graft=tuple(self.graft),
            prune=tuple(self.prune),
            idontwant=(ControlIDontWant(tuple(self.idontwant)),) if self.idontwant else (),
        )
        return RPC(
            subscriptions=tuple(self.subscriptions),
            publish=tuple(self.publish),
            control=control if control else None,
        )


class Outbox:
    """What one step of the router sends, one RPC per peer in the order peers were first named."""

    def __init__(self) -> None:
        self._pending: dict[PeerId, _Pending] = {}

    def _to(self, peer: PeerId) -> _Pending:
        pending = self._pending.get(peer)
        if pending is None:
            pending = self._pending[peer] = _Pending()
        return pending

    def subscription(self, peer: PeerId, sub: SubOpts) -> None:
        """Announce a subscription change."""
        self._to(peer).subscriptions.append(sub)

    def message(self, peer: PeerId, message: Message) -> None:
        """Send a message."""
        self._to(peer).publish.append(message)

    def graft(self, peer: PeerId, topic: str) -> None:
        """Send GRAFT."""
        self._to(peer).graft.append(ControlGraft(topic))

    def prune(
        self, peer: PeerId, topic: str, backoff: float | None, px: tuple[PeerInfo, ...] = ()
    ) -> None:
        """Send PRUNE (``backoff`` ``None`` for v1.0 peers, which know neither it nor PX)."""
        seconds = None if backoff is None else int(backoff)
        self._to(peer).prune.append(ControlPrune(topic, px, seconds))

    def ihave(self, peer: PeerId, topic: str, ids: list[bytes]) -> None:
        """Send IHAVE."""
        self._to(peer).ihave.append(ControlIHave(topic, ids))

    def iwant(self, peer: PeerId, ids: list[bytes]) -> None:
        """Send IWANT."""
        self._to(peer).iwant.extend(ids)

    def idontwant(self, peer: PeerId, msg_id: bytes) -> None:
        """Send IDONTWANT."""
        self._to(peer).idontwant.append(msg_id)

    def rpcs(self) -> list[tuple[PeerId, RPC]]:
        """The RPCs, one per peer."""
        return [(peer, pending.rpc()) for peer, pending in self._pending.items()]
