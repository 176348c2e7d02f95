"""Gossipsub v1.1 peer-score parameters and thresholds
(https://github.com/libp2p/specs/blob/master/pubsub/gossipsub/gossipsub-v1.1.md#peer-scoring).

Validation follows go-libp2p-pubsub's ``validate()`` rule by rule (a weight of 0 disables its
component and waives the checks of that component's other fields), plus the spec's
"``MeshMessageDeliveriesCap`` must be >= ``MeshMessageDeliveriesThreshold``". Durations are
seconds (floats), like every time in this project.

go ships no default score parameters; the defaults here are moderate values of the kind the
spec's examples use (1 s decay interval, go's ``DefaultDecayToZero`` of 0.01, one hour of score
retention), so that ``PeerScoreParams()`` is valid and does something sensible; real deployments
set the topic parameters for their own message rates (see ``score_parameter_decay``).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType

import attrs

__all__ = [
    "IPNetwork",
    "PeerScoreParams",
    "PeerScoreThresholds",
    "TopicScoreParams",
    "score_parameter_decay",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_DECAY_INTERVAL = 1.0
DEFAULT_DECAY_TO_ZERO = 0.01


def score_parameter_decay(
    decay_time: float,
    decay_interval: float = DEFAULT_DECAY_INTERVAL,
    decay_to_zero: float = DEFAULT_DECAY_TO_ZERO,
) -> float:
    """The per-interval decay factor taking a counter of 1 to ``decay_to_zero`` in ``decay_time``.

    After n intervals a counter is ``factor ** n``; solving ``factor ** n = decay_to_zero`` for
    n = decay_time / decay_interval gives the factor (go's ``ScoreParameterDecayWithBase``, which
    truncates n to whole intervals; here n is exact).

    Args:
        decay_time: seconds for a counter of 1 to decay to ``decay_to_zero``.
        decay_interval: seconds between decay steps.
        decay_to_zero: the value below which a counter counts as 0, in (0, 1).

    Returns:
        The decay factor, in (0, 1).

    Raises:
        ValueError: if decay_time < decay_interval, the interval is not positive or
            decay_to_zero is not in (0, 1).
    """
    if not decay_interval > 0:
        raise ValueError("decay_interval must be positive")
    if not decay_time >= decay_interval:
        raise ValueError("decay_time must be at least one decay_interval")
    if not 0 < decay_to_zero < 1:
        raise ValueError("decay_to_zero must be between 0 and 1")
    return float(decay_to_zero ** (decay_interval / decay_time))


def _bad(value: float) -> bool:
    return math.isnan(value) or math.isinf(value)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _is_decay(value: float) -> bool:
    return not _bad(value) and 0 < value < 1


@attrs.frozen(kw_only=True)
class TopicScoreParams:
    """Score parameters of one topic (P1..P4 and the topic weight).

    Raises:
        ValueError: on construction, for any value go's ``TopicScoreParams.validate`` rejects.
    """

    topic_weight: float = 0.5
    # P1: time in mesh, in whole quanta, capped.
    time_in_mesh_weight: float = 0.01
    time_in_mesh_quantum: float = 1.0
    time_in_mesh_cap: float = 3600.0
    # P2: first message deliveries.
    first_message_deliveries_weight: float = 1.0
    first_message_deliveries_decay: float = 0.5
    first_message_deliveries_cap: float = 2000.0
    # P3: mesh message delivery rate (deficit squared below the threshold, after activation).
    mesh_message_deliveries_weight: float = -1.0
    mesh_message_deliveries_decay: float = 0.5
    mesh_message_deliveries_cap: float = 100.0
    mesh_message_deliveries_threshold: float = 20.0
    mesh_message_deliveries_window: float = 0.01
    mesh_message_deliveries_activation: float = 5.0
    # P3b: sticky mesh failure penalty, added on prune.
    mesh_failure_penalty_weight: float = -1.0
    mesh_failure_penalty_decay: float = 0.5
    # P4: invalid messages (counter squared).
    invalid_message_deliveries_weight: float = -1.0
    invalid_message_deliveries_decay: float = 0.3

    def __attrs_post_init__(self) -> None:
        _check(self.topic_weight >= 0 and not _bad(self.topic_weight), "topic_weight must be >= 0")
        self._validate_p1()
        self._validate_p2()
        self._validate_p3()
        w = self.mesh_failure_penalty_weight
        _check(w <= 0 and not _bad(w), "mesh_failure_penalty_weight must be <= 0")
        _check(
            w == 0 or _is_decay(self.mesh_failure_penalty_decay),
            "mesh_failure_penalty_decay must be between 0 and 1",
        )
        w = self.invalid_message_deliveries_weight
        _check(w <= 0 and not _bad(w), "invalid_message_deliveries_weight must be <= 0")
        _check(
            _is_decay(self.invalid_message_deliveries_decay),
            "invalid_message_deliveries_decay must be between 0 and 1",
        )

    def _validate_p1(self) -> None:
        w = self.time_in_mesh_weight
        _check(
            self.time_in_mesh_quantum > 0 and not _bad(self.time_in_mesh_quantum),
            "time_in_mesh_quantum must be positive",
        )
        _check(w >= 0 and not _bad(w), "time_in_mesh_weight must be >= 0")
        _check(
            w == 0 or (self.time_in_mesh_cap > 0 and not _bad(self.time_in_mesh_cap)),
            "time_in_mesh_cap must be positive",
        )

    def _validate_p2(self) -> None:
        w = self.first_message_deliveries_weight
        _check(w >= 0 and not _bad(w), "first_message_deliveries_weight must be >= 0")
        if w == 0:
            return
        _check(
            _is_decay(self.first_message_deliveries_decay),
            "first_message_deliveries_decay must be between 0 and 1",
        )
        cap = self.first_message_deliveries_cap
        _check(cap > 0 and not _bad(cap), "first_message_deliveries_cap must be positive")

    def _validate_p3(self) -> None:
        w = self.mesh_message_deliveries_weight
        _check(w <= 0 and not _bad(w), "mesh_message_deliveries_weight must be <= 0")
        window = self.mesh_message_deliveries_window
        _check(window >= 0 and not _bad(window), "mesh_message_deliveries_window must be >= 0")
        if w == 0:
            return
        _check(
            _is_decay(self.mesh_message_deliveries_decay),
            "mesh_message_deliveries_decay must be between 0 and 1",
        )
        cap = self.mesh_message_deliveries_cap
        threshold = self.mesh_message_deliveries_threshold
        _check(cap > 0 and not _bad(cap), "mesh_message_deliveries_cap must be positive")
        _check(
            threshold > 0 and not _bad(threshold),
            "mesh_message_deliveries_threshold must be positive",
        )
        # The spec: "MeshMessageDeliveriesCap must be >= MeshMessageDeliveriesThreshold",
        # otherwise even a perfect mesh peer carries a deficit.
        _check(cap >= threshold, "mesh_message_deliveries_cap must be >= the threshold")
        _check(
            self.mesh_message_deliveries_activation >= 1.0,
            "mesh_message_deliveries_activation must be at least 1 s",
        )


def _topics(value: Mapping[str, TopicScoreParams]) -> Mapping[str, TopicScoreParams]:
    topics = dict(value)
    for topic, params in topics.items():
        if not isinstance(topic, str) or not isinstance(params, TopicScoreParams):
            raise TypeError("topics maps topic strings to TopicScoreParams")
    return MappingProxyType(topics)


def _networks(value: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(net) for net in value)


@attrs.frozen(kw_only=True)
class PeerScoreParams:
    """Score parameters that apply to a peer as a whole (P5..P7, decay, retention, topics).

    ``ip_colocation_factor_whitelist`` takes CIDR strings or networks; addresses inside them
    never count towards P6.

    Raises:
        ValueError: on construction, for any value go's ``PeerScoreParams.validate`` rejects
            (including the topics' own checks), or an unparsable whitelist network.
        TypeError: if topics maps to anything but ``TopicScoreParams``.
    """

    topics: Mapping[str, TopicScoreParams] = attrs.field(factory=dict, converter=_topics)
    topic_score_cap: float = 10.0
    app_specific_weight: float = 10.0
    ip_colocation_factor_weight: float = -10.0
    ip_colocation_factor_threshold: int = 10
    ip_colocation_factor_whitelist: tuple[IPNetwork, ...] = attrs.field(
        default=(), converter=_networks
    )
    behaviour_penalty_weight: float = -10.0
    behaviour_penalty_threshold: float = 0.0
    behaviour_penalty_decay: float = 0.2
    decay_interval: float = DEFAULT_DECAY_INTERVAL
    decay_to_zero: float = DEFAULT_DECAY_TO_ZERO
    retain_score: float = 3600.0

    def __attrs_post_init__(self) -> None:
        cap = self.topic_score_cap
        _check(cap >= 0 and not _bad(cap), "topic_score_cap must be >= 0 (0: no cap)")
        _check(not _bad(self.app_specific_weight), "app_specific_weight must be a number")
        w = self.ip_colocation_factor_weight
        _check(w <= 0 and not _bad(w), "ip_colocation_factor_weight must be <= 0")
        _check(
            w == 0 or self.ip_colocation_factor_threshold >= 1,
            "ip_colocation_factor_threshold must be at least 1",
        )
        w = self.behaviour_penalty_weight
        _check(w <= 0 and not _bad(w), "behaviour_penalty_weight must be <= 0")
        _check(
            w == 0 or _is_decay(self.behaviour_penalty_decay),
            "behaviour_penalty_decay must be between 0 and 1",
        )
        threshold = self.behaviour_penalty_threshold
        _check(threshold >= 0 and not _bad(threshold), "behaviour_penalty_threshold must be >= 0")
        _check(
            self.decay_interval >= 1.0 and not _bad(self.decay_interval),
            "decay_interval must be at least 1 s",
        )
        _check(_is_decay(self.decay_to_zero), "decay_to_zero must be between 0 and 1")
        _check(self.retain_score >= 0 and not _bad(self.retain_score), "retain_score must be >= 0")


@attrs.frozen(kw_only=True)
class PeerScoreThresholds:
    """Score thresholds the router compares scores with.

    Below ``gossip`` no gossip goes to or is taken from the peer; below ``publish`` our own
    messages are not sent to it; below ``graylist`` its RPCs are ignored. PX is accepted only
    from peers at or above ``accept_px``, and opportunistic grafting triggers when the median
    mesh score falls below ``opportunistic_graft``.

    Raises:
        ValueError: unless graylist <= publish <= gossip <= 0 and accept_px,
            opportunistic_graft >= 0 (go's ``PeerScoreThresholds.validate``).
    """

    gossip: float = -10.0
    publish: float = -50.0
    graylist: float = -80.0
    accept_px: float = 10.0
    opportunistic_graft: float = 20.0

    def __attrs_post_init__(self) -> None:
        _check(self.gossip <= 0 and not _bad(self.gossip), "gossip threshold must be <= 0")
        _check(
            self.publish <= self.gossip and not _bad(self.publish),
            "publish threshold must be <= the gossip threshold",
        )
        _check(
            self.graylist <= self.publish and not _bad(self.graylist),
            "graylist threshold must be <= the publish threshold",
        )
        _check(self.accept_px >= 0 and not _bad(self.accept_px), "accept_px must be >= 0")
        _check(
            self.opportunistic_graft >= 0 and not _bad(self.opportunistic_graft),
            "opportunistic_graft must be >= 0",
        )
