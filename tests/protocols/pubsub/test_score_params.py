import math
from typing import Any

import pytest

from protocols.pubsub._score_params import (
    PeerScoreParams,
    PeerScoreThresholds,
    TopicScoreParams,
    score_parameter_decay,
)


def test_defaults_are_valid() -> None:
    params = PeerScoreParams(topics={"t": TopicScoreParams()})
    assert params.topics["t"] == TopicScoreParams()
    PeerScoreThresholds()


def test_topics_mapping_is_read_only_copy() -> None:
    source = {"t": TopicScoreParams()}
    params = PeerScoreParams(topics=source)
    source["u"] = TopicScoreParams()
    assert list(params.topics) == ["t"]
    with pytest.raises(TypeError):
        params.topics["u"] = TopicScoreParams()  # type: ignore[index]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"topic_weight": -1.0},
        {"topic_weight": math.nan},
        {"time_in_mesh_quantum": 0.0},
        {"time_in_mesh_weight": -0.1},
        {"time_in_mesh_cap": 0.0},
        {"first_message_deliveries_weight": -1.0},
        {"first_message_deliveries_decay": 1.0},
        {"first_message_deliveries_decay": 0.0},
        {"first_message_deliveries_cap": 0.0},
        {"mesh_message_deliveries_weight": 1.0},
        {"mesh_message_deliveries_decay": 1.5},
        {"mesh_message_deliveries_cap": -1.0},
        {"mesh_message_deliveries_threshold": 0.0},
        {"mesh_message_deliveries_threshold": 200.0},  # above the cap of 100
        {"mesh_message_deliveries_window": -0.001},
        {"mesh_message_deliveries_activation": 0.5},
        {"mesh_failure_penalty_weight": 1.0},
        {"mesh_failure_penalty_decay": 0.0},
        {"invalid_message_deliveries_weight": 0.5},
        {"invalid_message_deliveries_decay": 1.0},
        {"invalid_message_deliveries_weight": -math.inf},
    ],
)
def test_topic_params_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TopicScoreParams(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        # A zero weight disables its component and waives the checks of its other fields.
        {"time_in_mesh_weight": 0.0, "time_in_mesh_cap": 0.0},
        {"first_message_deliveries_weight": 0.0, "first_message_deliveries_decay": 5.0},
        {"mesh_message_deliveries_weight": 0.0, "mesh_message_deliveries_activation": 0.0},
        {"mesh_failure_penalty_weight": 0.0, "mesh_failure_penalty_decay": 0.0},
    ],
)
def test_topic_params_disabled_components(kwargs: dict[str, Any]) -> None:
    TopicScoreParams(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"topic_score_cap": -1.0},
        {"app_specific_weight": math.inf},
        {"ip_colocation_factor_weight": 1.0},
        {"ip_colocation_factor_threshold": 0},
        {"behaviour_penalty_weight": 1.0},
        {"behaviour_penalty_decay": 1.0},
        {"behaviour_penalty_threshold": -1.0},
        {"decay_interval": 0.5},
        {"decay_to_zero": 0.0},
        {"decay_to_zero": 1.0},
        {"retain_score": -1.0},
        {"ip_colocation_factor_whitelist": ["not a network"]},
    ],
)
def test_peer_params_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PeerScoreParams(**kwargs)


def test_peer_params_topics_typed() -> None:
    with pytest.raises(TypeError):
        PeerScoreParams(topics={"t": TopicScoreParams(), "u": "nope"})  # type: ignore[dict-item]


def test_peer_params_disabled_components() -> None:
    PeerScoreParams(ip_colocation_factor_weight=0.0, ip_colocation_factor_threshold=0)
    PeerScoreParams(behaviour_penalty_weight=0.0, behaviour_penalty_decay=0.0)


def test_whitelist_parsed() -> None:
    params = PeerScoreParams(ip_colocation_factor_whitelist=["10.0.0.0/8", "2001:db8::/32"])
    assert [str(n) for n in params.ip_colocation_factor_whitelist] == [
        "10.0.0.0/8",
        "2001:db8::/32",
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"gossip": 1.0},
        {"gossip": -10.0, "publish": -5.0},
        {"publish": 1.0, "gossip": 0.0},
        {"graylist": -20.0},  # above publish (-50)
        {"graylist": math.nan},
        {"accept_px": -1.0},
        {"opportunistic_graft": -0.5},
    ],
)
def test_thresholds_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PeerScoreThresholds(**kwargs)


def test_thresholds_equal_values_allowed() -> None:
    t = PeerScoreThresholds(gossip=0.0, publish=0.0, graylist=0.0, accept_px=0.0)
    assert (t.gossip, t.publish, t.graylist) == (0.0, 0.0, 0.0)


def test_score_parameter_decay() -> None:
    factor = score_parameter_decay(10.0)
    assert factor == pytest.approx(0.01**0.1)
    assert factor**10 == pytest.approx(0.01)
    assert score_parameter_decay(60.0, 2.0, 0.1) ** 30 == pytest.approx(0.1)
    assert score_parameter_decay(1.0) == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("decay_time", "interval", "to_zero"),
    [(0.5, 1.0, 0.01), (10.0, 0.0, 0.01), (10.0, 1.0, 0.0), (10.0, 1.0, 1.0)],
)
def test_score_parameter_decay_rejected(decay_time: float, interval: float, to_zero: float) -> None:
    with pytest.raises(ValueError):
        score_parameter_decay(decay_time, interval, to_zero)
