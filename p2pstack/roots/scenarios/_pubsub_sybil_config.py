"""Settings of the ``pubsub_sybil`` workload (the ``[pubsub_sybil]`` table) and the gossipsub
v1.1 score parameters its honest nodes use (docs/pubsub.md, "Sybil attacks").

The score parameters follow the spec's guidance for a topic of known rate
(https://github.com/libp2p/specs/blob/master/pubsub/gossipsub/gossipsub-v1.1.md#peer-scoring):
P3's threshold is a small share of what one mesh peer delivers at that rate, P3b and P4 are
sticky (minutes), one invalid message puts a peer below the publish threshold and two below
the graylist.
"""

from __future__ import annotations

import attrs

from protocols.pubsub import (
    GossipsubConfig,
    PeerScoreParams,
    PeerScoreThresholds,
    TopicScoreParams,
    score_parameter_decay,
)

__all__ = ["ROLES", "PubsubSybilConfig", "honest_config", "sybil_score_params"]

#: Sybil roles: never forward; never forward and send invalid messages; forward until the
#: flash, then stop at once.
ROLES = ("drop", "spam", "covert")


def _roles(value: object) -> tuple[str, ...]:
    roles = tuple(str(role) for role in value) if isinstance(value, (list, tuple)) else ()
    if not roles or any(role not in ROLES for role in roles):
        raise ValueError(f"roles must be a non-empty list of {', '.join(ROLES)}")
    return roles


@attrs.frozen(kw_only=True)
class PubsubSybilConfig:
    """``[pubsub_sybil]``: ``honest`` nodes, each dialing ``honest_peers`` random other honest
    nodes, and ``sybils`` Sybils, each connecting to ``sybil_peers`` random honest nodes at
    ``sybils_at`` (the honest network exists before the attack), the
    Sybils' roles cycling through ``roles`` (see ``ROLES``); covert Sybils stop forwarding at
    ``flash_at``. Links have a latency uniform in [``latency_min``, ``latency_max``] seconds.
    Every ``publish_interval`` seconds from ``publish_from`` a random honest node publishes
    ``message_size`` bytes on ``topic``; a message counts as delivered on time when it reaches
    an honest node within ``deadline`` seconds. Every ``spam_interval`` seconds each spamming
    Sybil sends ``spam_messages`` invalid messages to its mesh. The run lasts ``run_for``
    seconds, once with scoring and once without (same seed, same network). The mesh counts as
    recovered when ``recovered_fraction`` of the honest nodes hold at least D_lo honest mesh
    peers. With scoring, an oversized mesh keeps its ``d_score`` best-scoring peers (go's
    default is 4, the rest at random); ``p3_*`` set the mesh-delivery score (P3, P3b), the
    rest is in ``sybil_score_params``.
    """

    honest: int = 100
    honest_peers: int = 4
    sybils: int = 100
    sybil_peers: int = 80
    roles: tuple[str, ...] = attrs.field(default=ROLES, converter=_roles)
    sybils_at: float = 10.0
    flash_at: float = 30.0
    latency_min: float = 0.005
    latency_max: float = 0.050
    topic: str = "blocks"
    publish_interval: float = 0.5
    publish_from: float = 5.0
    message_size: int = 256
    deadline: float = 6.0
    spam_interval: float = 1.0
    spam_messages: int = 1
    run_for: float = 150.0
    recovered_fraction: float = 0.95
    score_sample_interval: float = 5.0
    d_score: int = 4
    p3_threshold: float = 1.0
    p3_weight: float = -40.0
    p3_window: float = 2.0
    p3_activation: float = 10.0
    p3_decay_time: float = 20.0

    def __attrs_post_init__(self) -> None:
        if self.honest < 2 or not 0 < self.honest_peers < self.honest:
            raise ValueError("need honest >= 2 and 0 < honest_peers < honest")
        if self.sybils < 0 or not 0 < self.sybil_peers <= self.honest:
            raise ValueError("need sybils >= 0 and 0 < sybil_peers <= honest")
        if not 0 <= self.latency_min <= self.latency_max:
            raise ValueError("need 0 <= latency_min <= latency_max")
        if min(self.publish_interval, self.spam_interval, self.score_sample_interval) <= 0:
            raise ValueError("intervals must be positive")
        if self.run_for <= self.publish_from + self.deadline:
            raise ValueError("run_for must leave room for publishing and the deadline")


def sybil_score_params(cfg: PubsubSybilConfig) -> PeerScoreParams:
    """The honest nodes' score parameters for ``cfg.topic``.

    Args:
        cfg: the workload settings.

    Returns:
        P1 up to +10 after 5 min in the mesh; P2 +1 per first delivery, decaying to zero in
        60 s, capped at 20; P3 (``p3_*``) and P3b sticky for 5 min; P4 -100 per invalid
        message squared, sticky for 5 min; P6 -10 above 10 peers per IP; P7 -10 per penalty
        squared, decaying in 60 s.
    """
    decay = score_parameter_decay
    topic = TopicScoreParams(
        topic_weight=1.0,
        time_in_mesh_weight=10.0 / 300.0,
        time_in_mesh_quantum=1.0,
        time_in_mesh_cap=300.0,
        first_message_deliveries_weight=1.0,
        first_message_deliveries_decay=decay(60.0),
        first_message_deliveries_cap=20.0,
        mesh_message_deliveries_weight=cfg.p3_weight,
        mesh_message_deliveries_decay=decay(cfg.p3_decay_time),
        mesh_message_deliveries_cap=10.0 * cfg.p3_threshold,
        mesh_message_deliveries_threshold=cfg.p3_threshold,
        mesh_message_deliveries_window=cfg.p3_window,
        mesh_message_deliveries_activation=cfg.p3_activation,
        mesh_failure_penalty_weight=cfg.p3_weight,
        mesh_failure_penalty_decay=decay(300.0),
        invalid_message_deliveries_weight=-100.0,
        invalid_message_deliveries_decay=decay(300.0),
    )
    return PeerScoreParams(
        topics={cfg.topic: topic},
        topic_score_cap=50.0,
        app_specific_weight=0.0,
        ip_colocation_factor_weight=-10.0,
        ip_colocation_factor_threshold=10,
        behaviour_penalty_weight=-10.0,
        behaviour_penalty_decay=decay(60.0),
    )


#: Thresholds of the honest nodes (go's example values: gossip -10, publish -50, graylist -80).
THRESHOLDS = PeerScoreThresholds(
    gossip=-10.0, publish=-50.0, graylist=-80.0, accept_px=10.0, opportunistic_graft=2.0
)


def honest_config(cfg: PubsubSybilConfig, *, scoring: bool) -> GossipsubConfig:
    """The honest nodes' router settings: the defaults (D=6, D_lo=4, D_hi=12, heartbeat 1 s),
    with or without the score.

    Args:
        cfg: the workload settings.
        scoring: whether the v1.1 peer score is on.

    Returns:
        The settings.
    """
    if not scoring:
        return GossipsubConfig()
    return GossipsubConfig(
        score_params=sybil_score_params(cfg), thresholds=THRESHOLDS, d_score=cfg.d_score
    )
