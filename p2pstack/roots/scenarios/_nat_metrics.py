"""Metrics and summary of the ``nat_traversal`` workload: flat ``metrics.json`` numbers
(reachable pairs, hole-punch success overall, per NAT-type combination, per mapping class and
per type, the RFC expectation next to each, direct-connection times)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import attrs

from p2pstack.roots.scenarios._nat_expected import MAPPING_CLASS, TYPE_ORDER, NatType
from p2pstack.roots.scenarios._workload import MetricValue

__all__ = ["PROBELAB_SUCCESS_RATE", "PairRecord", "combo", "nat_metrics", "nat_summary"]

#: DCUtR success rate measured in the wild by ProbeLab (IPFS network, 2023): about 70%.
PROBELAB_SUCCESS_RATE = 0.7


@attrs.frozen(kw_only=True)
class PairRecord:
    """What happened to one pair. ``outcome``: ``public`` (one side public, dialed directly),
    ``public_failed``, ``punch`` (a relayed connection, then hole punching: ``attempt`` is
    the attempt that worked, 0 if none; ``quic_*`` the same for QUIC), ``no_relay``
    (neither has a reservation), ``relay_failed`` (the relayed connection could not be
    opened)."""

    a: int
    b: int
    type_a: str
    type_b: str
    outcome: str = ""
    attempt: int = 0
    seconds: float | None = None
    expected: bool | None = None
    quic_attempt: int = 0
    quic_seconds: float | None = None
    quic_expected: bool | None = None


def combo(x: str, y: str) -> str:
    """``<type>_<type>`` in ``TYPE_ORDER`` (or mapping-class) order."""
    order = {t: i for i, t in enumerate((*TYPE_ORDER, "eim", "adm", "sym"))}
    first, second = sorted((x, y), key=lambda t: order[t])
    return f"{first}_{second}"


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 6) if total else None


def _pct(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(p * len(ordered)) - 1)], 6)


def _tally(groups: dict[str, list[int]], key: str, hit: bool) -> None:
    counts = groups.setdefault(key, [0, 0])
    counts[0] += hit
    counts[1] += 1


def _punch_metrics(
    punched: Sequence[PairRecord], prefix: str, times_key: str, quic: bool
) -> dict[str, MetricValue]:
    """Hole-punch rates of one transport: overall, per type pair, per mapping class, per type."""
    hits, expected_hits, matches, first = 0, 0, 0, 0
    times: list[float] = []
    by_combo: dict[str, list[int]] = {}
    expected_combo: dict[str, list[int]] = {}
    by_class: dict[str, list[int]] = {}
    by_type: dict[str, list[int]] = {}
    for r in punched:
        attempt = r.quic_attempt if quic else r.attempt
        expected = bool(r.quic_expected if quic else r.expected)
        seconds = r.quic_seconds if quic else r.seconds
        ok = attempt > 0
        hits += ok
        first += attempt == 1
        expected_hits += expected
        matches += ok == expected
        if ok and seconds is not None:
            times.append(seconds)
        pair = combo(r.type_a, r.type_b)
        _tally(by_combo, pair, ok)
        _tally(expected_combo, pair, expected)
        _tally(by_class, combo(MAPPING_CLASS[r.type_a], MAPPING_CLASS[r.type_b]), ok)
        for t in {r.type_a, r.type_b}:
            _tally(by_type, t, ok)
    out: dict[str, MetricValue] = {
        f"{prefix}_pairs": len(punched),
        f"{prefix}_successes": hits,
        f"{prefix}_success_rate": _rate(hits, len(punched)),
        f"{prefix}_expected_rate": _rate(expected_hits, len(punched)),
        f"{prefix}_matches_expected_rate": _rate(matches, len(punched)),
        f"{prefix}_first_attempt_rate": _rate(first, hits),
        f"{times_key}_p50_s": _pct(times, 0.5),
        f"{times_key}_p95_s": _pct(times, 0.95),
    }
    for key, (n_ok, total) in sorted(by_combo.items()):
        out[f"{prefix}_success_rate_{key}"] = _rate(n_ok, total)
        out[f"{prefix}_expected_rate_{key}"] = _rate(*expected_combo[key])
        out[f"{prefix}_pairs_{key}"] = total
    for key, (n_ok, total) in sorted(by_class.items()):
        out[f"{prefix}_success_rate_{key}"] = _rate(n_ok, total)
    for label in TYPE_ORDER:
        if label in by_type:
            out[f"{prefix}_success_rate_{label}"] = _rate(*by_type[label])
    return out


def nat_metrics(
    records: Iterable[PairRecord],
    nodes: Sequence[int],
    types: Mapping[int, NatType],
    alive: Mapping[int, bool],
    *,
    lost: int,
    refused: int,
) -> dict[str, MetricValue]:
    """The workload's ``metrics.json`` entries.

    Args:
        records: one per pair tried.
        nodes: the non-relay nodes.
        types: every node's NAT type.
        alive: reservations that answered the relays' probe.
        lost: reservations found dead by a keep-alive (and made again).
        refused: reservation requests refused by full relays.
    """
    records = list(records)
    reach_hits = 0
    reach_type: dict[str, list[int]] = {}
    for r in records:
        direct = (r.outcome == "public") or r.attempt > 0 or r.quic_attempt > 0
        reachable = direct or alive.get(r.a, False) or alive.get(r.b, False)
        reach_hits += reachable
        for t in {r.type_a, r.type_b}:
            _tally(reach_type, t, reachable)
    punched = [r for r in records if r.outcome == "punch"]
    out: dict[str, MetricValue] = {
        "nat_traversal_nodes": len(nodes),
        "pairs_total": len(records),
        "reachable_pairs": reach_hits,
        "reachable_pairs_rate": _rate(reach_hits, len(records)),
        "pairs_direct_public": sum(r.outcome == "public" for r in records),
        "pairs_no_relay": sum(r.outcome == "no_relay" for r in records),
        "pairs_relay_failed": sum(r.outcome == "relay_failed" for r in records),
        "relay_reservations_alive": sum(alive.values()),
        "relay_reservations_lost": lost,
        "relay_reservations_refused": refused,
        "holepunch_probelab_rate": PROBELAB_SUCCESS_RATE,
    }
    out.update(_punch_metrics(punched, "holepunch", "direct_connection_time", quic=False))
    quic = [r for r in punched if r.quic_expected is not None]
    if quic:
        out.update(_punch_metrics(quic, "holepunch_quic", "direct_connection_time_quic", True))
    for label in TYPE_ORDER:
        if label in reach_type:
            out[f"reachable_pairs_rate_{label}"] = _rate(*reach_type[label])
    return out


def nat_summary(m: Mapping[str, MetricValue]) -> list[tuple[str, str]]:
    """Rows of ``summary.txt``: the headline rates, then measured vs expected per combination."""
    rows = [
        (
            "reachable pairs",
            f"{m['reachable_pairs']} / {m['pairs_total']} ({m['reachable_pairs_rate']})",
        ),
        (
            "reservations alive / lost / refused",
            f"{m['relay_reservations_alive']} / {m['relay_reservations_lost']}"
            f" / {m['relay_reservations_refused']}",
        ),
    ]
    for name, prefix, times in (
        ("TCP", "holepunch", "direct_connection_time"),
        ("QUIC", "holepunch_quic", "direct_connection_time_quic"),
    ):
        if f"{prefix}_pairs" not in m:
            continue
        rows += [
            (
                f"{name} hole punch success",
                f"{m[f'{prefix}_successes']} / {m[f'{prefix}_pairs']}"
                f" ({m[f'{prefix}_success_rate']}; RFC expects {m[f'{prefix}_expected_rate']};"
                f" ProbeLab DCUtR in the wild ~{m['holepunch_probelab_rate']})",
            ),
            (f"{name} matches the RFC expectation", str(m[f"{prefix}_matches_expected_rate"])),
            (
                f"{name} direct connection p50 / p95 (s)",
                f"{m[f'{times}_p50_s']} / {m[f'{times}_p95_s']}",
            ),
        ]
    rows.append(("pair: TCP (expected), QUIC (expected)", "pairs"))
    marker = "holepunch_pairs_"
    for key in (k for k in m if k.startswith(marker)):
        c = key[len(marker) :]
        tcp = f"{m[f'holepunch_success_rate_{c}']} ({m[f'holepunch_expected_rate_{c}']})"
        quic = (
            f", {m[f'holepunch_quic_success_rate_{c}']} ({m[f'holepunch_quic_expected_rate_{c}']})"
            if f"holepunch_quic_success_rate_{c}" in m
            else ""
        )
        rows.append((f"  {c}", f"{tcp}{quic}: {m[key]}"))
    return rows
