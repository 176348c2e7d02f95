"""The ``nat_traversal`` workload: the RFC 4787/5382 expectations, the relay framing, and a
short population behind every kind of box whose hole punches (DCUtR's cores, TCP and QUIC dials
through the simulated NAT boxes) must land where the RFCs say, with relay capacity and mapping
timeouts visible, and the same seed giving the same metrics.json."""

from __future__ import annotations

import contextlib
import itertools
import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pstack.roots.scenarios import NatBoxConfig, ScenarioError, load_scenario, parse_scenario
from p2pstack.roots.scenarios._nat_expected import expected_quic, expected_tcp, nat_type
from p2pstack.roots.scenarios._nat_relay import FrameReader, Kind, encode
from p2pstack.roots.scenarios._report import metrics_values
from p2pstack.roots.scenarios._runner import _Sim, nat_spec
from p2pstack.roots.scenarios.testing import run_checked
from p2pstack.sim import TraceRecorder, VirtualClock
from transports.simnet import NatSpec

KINDS = ("full-cone", "restricted-cone", "port-restricted", "address-dependent", "symmetric")


def _t(kind: str | None) -> Any:
    return nat_type(None if kind is None else NatSpec.of_kind(kind))


def test_expected_outcomes_follow_mapping_and_filtering() -> None:
    eim = ("full-cone", "restricted-cone", "port-restricted", "firewall")
    for a in eim:
        for b in eim:
            assert expected_tcp(_t(a), _t(b)) and expected_quic(_t(a), _t(b)), (a, b)
    sym, adm = _t("symmetric"), _t("address-dependent")
    assert not expected_tcp(sym, sym) and not expected_quic(sym, sym)
    assert not expected_tcp(sym, _t("port-restricted")) and not expected_tcp(sym, adm)
    # A permissive filter lets the symmetric side's SYN from an unannounced port in.
    assert expected_tcp(sym, _t("full-cone")) and expected_tcp(_t("restricted-cone"), sym)
    # QUIC: only when the symmetric side is the client and the server's box lets it in.
    assert expected_quic(sym, _t("full-cone")) and not expected_quic(_t("full-cone"), sym)
    assert [_t(k).label for k in (None, "firewall", *KINDS)] == [
        "public",
        "firewall",
        "fullcone",
        "restricted",
        "portrestricted",
        "addrdep",
        "symmetric",
    ]


class _Chunks:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def receive(self) -> bytes:
        if not self.chunks:
            raise anyio.EndOfStream
        return self.chunks.pop(0)


def test_relay_frames_split_anywhere_and_bad_lengths_are_refused() -> None:
    async def main() -> None:
        frame = encode(Kind.DATA, 7, 9, b"hello")
        assert frame == b"\x00\x0e\x08\x00\x00\x00\x07\x00\x00\x00\x09hello"
        stream = frame + encode(Kind.KEEPALIVE, 7, 1)
        # (the ignore below: chunks stand in for the stream)
        reader = FrameReader(_Chunks([stream[:3], stream[3:12], stream[12:]]))  # type: ignore[arg-type]
        assert await reader.next() == (Kind.DATA, 7, 9, b"hello")
        assert await reader.next() == (Kind.KEEPALIVE, 7, 1, b"")
        with pytest.raises(anyio.EndOfStream):
            await reader.next()
        for bad in (b"\x00\x01\x08", b"\xff\xff" + bytes(20)):
            with pytest.raises(ValueError, match="bad frame length"):
                # (the ignore below: chunks stand in for the stream)
                await FrameReader(_Chunks([bad])).next()  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            encode(Kind.DATA, 1, 2, bytes(5000))

    anyio.run(main)


def test_box_settings_per_node_and_overrides() -> None:
    box = NatBoxConfig(
        kind="port-restricted",
        nodes=(2, 3),
        mapping="address-and-port-dependent",
        port_allocation="random",
        per_node=True,
    )
    spec = nat_spec(box)
    assert (spec.mapping, spec.filtering, spec.port_allocation) == (
        "address-and-port-dependent",
        "address-and-port-dependent",
        "random",
    )
    for per_node, boxes in ((True, 2), (False, 1)):
        sc = parse_scenario(
            {"nodes": 4, "network": {"nat_box": [{"nodes": [2, 3], "per_node": per_node}]}}
        )
        net = _Sim(sc, 1, TraceRecorder(VirtualClock()))._network()
        assert len(net.routing.boxes) == boxes
    for key, value in (("mapping", "cone"), ("filtering", "x"), ("port_allocation", "lucky")):
        with pytest.raises(ScenarioError, match=key):
            parse_scenario({"nodes": 4, "network": {"nat_box": [{"nodes": [2], key: value}]}})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"relays": [9]}, r"relays: 9 must be a node \(1..4\)"),
        ({"relays": [2]}, "relays: 2 must be a node .* not behind a NAT box"),
        ({"port": 4001}, "the hosts' listen port"),
        ({"attempts": 0}, "attempts >= 1"),
        ({"probe_at": 5.0, "punch_at": 10.0}, "probe_at must come after punch_at"),
    ],
)
def test_bad_nat_traversal_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(
            {
                "nodes": 4,
                "services": ["nat_traversal"],
                "network": {"nat_box": [{"nodes": [2]}]},
                "nat_traversal": {"relays": [1], **settings},
            }
        )


def _box(kind: str, nodes: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "nodes": [nodes], "per_node": True, **extra}


SHORT = {
    "name": "nat-traversal-short",
    "nodes": 14,
    "duration": 80.0,
    "security": "plaintext",
    "services": ["nat_traversal"],
    "bootstrap": {"peers": 0},
    "network": {
        "latency": 0.02,
        "nat_box": [
            _box("firewall", "4-4"),
            _box("full-cone", "5-5"),
            _box("restricted-cone", "6-6"),
            _box("port-restricted", "7-8"),
            _box("address-dependent", "9-9"),
            _box("symmetric", "10-11"),
            _box("symmetric", "12-14", port_allocation="random", tcp_timeout=10.0),
        ],
    },
    "nat_traversal": {
        "relays": [1, 2],
        "max_reservations": 5,
        "keepalive_interval": 30.0,
        "punch_at": 5.0,
        "punch_spread": 20.0,
        "attempt_timeout": 3.0,
        "probe_at": 75.0,
    },
}


def _check_short(result: Any) -> None:
    m = metrics_values(result)
    assert m["pairs_total"] == 66 and m["pairs_direct_public"] == 11
    assert m["holepunch_matches_expected_rate"] == 1.0
    assert m["holepunch_quic_matches_expected_rate"] == 1.0
    assert m["holepunch_success_rate_eim_eim"] == 1.0
    assert m["holepunch_success_rate_sym_sym"] == 0.0
    assert m["holepunch_success_rate_fullcone_symmetric"] == 1.0
    assert m["holepunch_success_rate_portrestricted_symmetric"] == 0.0
    rate, quic = m["holepunch_success_rate"], m["holepunch_quic_success_rate"]
    assert isinstance(rate, float) and isinstance(quic, float) and 0.1 < quic < rate < 0.9
    p50, p95 = m["direct_connection_time_p50_s"], m["direct_connection_time_p95_s"]
    assert isinstance(p50, float) and isinstance(p95, float) and 0.1 <= p50 <= p95 < 2.0
    # 11 nodes behind boxes, 10 relay slots; the 10 s boxes lose theirs between keep-alives.
    refused = m["relay_reservations_refused"]
    assert isinstance(refused, int) and refused >= 1
    assert isinstance(m["relay_reservations_lost"], int) and m["relay_reservations_lost"] >= 1
    assert isinstance(m["relay_reservations_alive"], int) and m["relay_reservations_alive"] <= 8
    reach = m["reachable_pairs_rate"]
    assert isinstance(reach, float) and 0.8 < reach < 1.0


def test_short_population_matches_the_rfcs_and_repeats(request: pytest.FixtureRequest) -> None:
    sc = parse_scenario(SHORT)
    first = run_checked(sc, seed=3, check=_check_short, test_id=request.node.nodeid)
    again = run_checked(sc, seed=3, check=_check_short, test_id=request.node.nodeid)
    one, two = (json.dumps(metrics_values(r), sort_keys=True) for r in (first, again))
    assert one == two


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sim" / "nat-traversal.toml"


def test_the_example_is_the_documented_population() -> None:
    sc = load_scenario(EXAMPLE)
    cfg = sc.workload_settings("nat_traversal")
    assert (sc.nodes, cfg.relays, cfg.pairs, cfg.max_reservations) == (60, (1, 2, 3), 700, 17)
    boxed = [n for box in sc.network.nat_box for n in box.nodes]
    assert sorted(boxed) == list(range(7, 61)) and all(b.per_node for b in sc.network.nat_box)


@pytest.mark.long
def test_the_example_matches_the_rfcs(request: pytest.FixtureRequest) -> None:
    def check(result: Any) -> None:
        m = metrics_values(result)
        assert m["holepunch_matches_expected_rate"] == 1.0
        assert m["holepunch_quic_matches_expected_rate"] == 1.0
        assert m["holepunch_success_rate_eim_eim"] == 1.0
        assert m["holepunch_success_rate_sym_sym"] == 0.0
        reach = m["reachable_pairs_rate"]
        assert isinstance(reach, float) and 0.9 < reach < 1.0

    run_checked(EXAMPLE, seed=1, check=check, test_id=request.node.nodeid)


@given(data=st.binary(max_size=200), cuts=st.lists(st.integers(0, 200), max_size=5))
def test_any_bytes_give_frames_or_a_typed_error(data: bytes, cuts: list[int]) -> None:
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds) if data[a:b]]

    async def main() -> None:
        # (the ignore below: chunks stand in for the stream)
        reader = FrameReader(_Chunks(chunks))  # type: ignore[arg-type]
        with contextlib.suppress(ValueError, anyio.EndOfStream):
            for _ in range(len(data) + 1):
                kind, _src, _dst, body = await reader.next()
                assert 0 <= kind <= 255 and len(body) <= 4096

    anyio.run(main)
