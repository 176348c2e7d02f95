"""Scenarios over IP addresses and NAT boxes: the TOML model, who can dial whom, the addresses
peers see, and same seed => same trace."""

from __future__ import annotations

import json

import pytest

from p2pstack.roots.scenarios import (
    NatBoxConfig,
    PingWorkload,
    ScenarioError,
    parse_scenario,
    run_scenario,
)

NAT_TOML = {
    "name": "nat",
    "nodes": 6,
    "duration": 30.0,
    "security": "plaintext",
    "network": {
        "latency": 0.01,
        "dial_timeout": 3.0,
        "nat_box": [
            {"kind": "port-restricted", "nodes": ["1-2"], "udp_timeout": 30},
            {"kind": "symmetric", "nodes": [3]},
        ],
    },
    "bootstrap": {"peers": 5, "spread": 1.0, "redial_interval": 0.0},
    "ping": {"interval": 5.0, "timeout": 2.0},
}


def _events(lines: tuple[str, ...], kind: str) -> list[dict[str, object]]:
    return [e for e in map(json.loads, lines) if e["ev"] == kind]


def test_nat_boxes_in_toml() -> None:
    sc = parse_scenario(NAT_TOML)
    assert sc.network.ip == "ip4"
    assert sc.network.nat_box == (
        NatBoxConfig(kind="port-restricted", nodes=(1, 2), udp_timeout=30.0),
        NatBoxConfig(kind="symmetric", nodes=(3,)),
    )


@pytest.mark.parametrize(
    ("network", "message"),
    [
        ({"nat_box": [{"kind": "cgnat", "nodes": [1]}]}, "kind must be one of"),
        ({"nat_box": [{"nodes": [1]}, {"nodes": [1, 2]}]}, r"nodes \[1\] are behind another box"),
        ({"nat_box": [{"nodes": [9]}]}, "nodes must be in 1..6"),
        ({"nat_box": [{"nodes": [1], "tcp_timeout": 0}]}, "timeouts must be positive"),
        ({"nat_box": [{"nodes": [1], "colour": "red"}]}, "unknown key 'colour'"),
        ({"nat_box": {"nodes": [1]}}, "expected an array of tables"),
        ({"ip": "ip5"}, "network.ip must be"),
    ],
)
def test_bad_nat_settings_are_refused(network: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario({"nodes": 6, "network": network})


def test_nodes_behind_nats_dial_out_and_are_seen_by_their_public_address() -> None:
    result = run_scenario(parse_scenario(NAT_TOML), keep_trace=100_000)
    opened = _events(result.trace_lines, "conn_opened")
    inbound = [
        (int(str(e["node"])), int(str(e["peer"])), str(e["addr"]))
        for e in opened
        if e["dir"] == "inbound"
    ]
    # Nobody outside a box opened a connection to a node behind it.
    assert not [c for c in inbound if c[0] in (1, 2, 3) and c[1] not in (1, 2)]
    # Public nodes see NATed peers at their box's public address; nodes behind the same box
    # reach each other at private addresses.
    for node, peer, addr in inbound:
        if peer in (1, 2) and node not in (1, 2):
            assert str(addr).startswith("/ip4/11.255.255.254/tcp/")
        elif peer == 3:
            assert str(addr).startswith("/ip4/11.255.255.253/tcp/")
        elif node in (1, 2):
            assert str(addr).startswith("/ip4/10.0.0.")
        else:
            assert str(addr).startswith(f"/ip4/11.0.0.{peer}/tcp/")
    assert {p for n, p, _ in inbound if n > 3} >= {1, 2, 3}
    failed = _events(result.trace_lines, "dial_failed")
    # Only dials into the boxes fail, from public nodes and from the other box alike.
    assert {e["peer"] for e in failed} == {1, 2, 3}
    assert {e["node"] for e in failed} & {4, 5, 6}
    assert all(e["err"] == "DialError:P2PTimeoutError" for e in failed)
    assert result.workload(PingWorkload).pings_between(0, 30)[0] > 0


@pytest.mark.parametrize("ip", ["ip4", "ip6"])
def test_same_seed_same_trace_with_nat_boxes(ip: str) -> None:
    data = {**NAT_TOML, "network": {**NAT_TOML["network"], "ip": ip}}  # type: ignore[dict-item]
    sc = parse_scenario(data)
    first = run_scenario(sc, seed=4, keep_trace=100_000)
    assert run_scenario(sc, seed=4).trace_hash == first.trace_hash
    assert run_scenario(sc, seed=5).trace_hash != first.trace_hash
    if ip == "ip6":
        assert any("/ip6/" in line for line in first.trace_lines)
