"""The discovery fuzz target: its seeds run clean, and it reports what it must catch (an
exception other than ``DnsaddrError``, an oversized answer accepted)."""

from __future__ import annotations

import pytest
from multiaddr import Multiaddr

from fuzz import _discovery
from fuzz._registry import TARGETS, load
from protocols.discovery._dnsaddr import parse_answer


def test_seeds_run_clean() -> None:
    target = load("dnsaddr_answer")
    seeds = sorted(TARGETS["dnsaddr_answer"].seed_dir.iterdir())
    assert len(seeds) >= 4
    for path in seeds:
        target(path.read_bytes())
    target(b"")
    target(bytes(range(256)))


def test_the_records_seed_parses_to_addresses() -> None:
    data = (TARGETS["dnsaddr_answer"].seed_dir / "records").read_bytes()
    addrs = parse_answer(_discovery.QUERY, data)
    assert len(addrs) == 3


def test_other_exceptions_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(query: object, data: bytes) -> list[Multiaddr]:
        raise ValueError("not a DnsaddrError")

    monkeypatch.setattr(_discovery, "parse_answer", broken)
    with pytest.raises(ValueError):
        _discovery.fuzz_dnsaddr_answer(b"\x00")


def test_an_oversized_answer_accepted_is_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_discovery, "parse_answer", lambda query, data: [])
    with pytest.raises(AssertionError, match="oversized"):
        _discovery.fuzz_dnsaddr_answer(b"\x00" * 5000)
