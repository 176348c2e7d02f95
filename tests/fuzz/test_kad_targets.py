"""The Kademlia fuzz targets: their seeds run clean, and each target reports what it must catch
(an exception other than ``KadProtocolError``, a broken lookup invariant)."""

from __future__ import annotations

import pytest

from fuzz import _kad
from fuzz._registry import TARGETS, load
from protocols.kad._lookup import Lookup
from protocols.kad._types import KadPeer

KAD_TARGETS = ["kad_message", "kad_stream", "kad_lookup"]


@pytest.mark.parametrize("name", KAD_TARGETS)
def test_seeds_run_clean(name: str) -> None:
    target = load(name)
    seeds = sorted(TARGETS[name].seed_dir.iterdir())
    assert seeds
    for path in seeds:
        target(path.read_bytes())
    target(b"")
    target(bytes(range(256)))


def test_message_target_lets_other_exceptions_through(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: bytes, *, max_size: int) -> None:
        raise ValueError("not a KadProtocolError")

    monkeypatch.setattr(_kad, "decode_message", broken)
    with pytest.raises(ValueError):
        _kad.fuzz_kad_message(b"\x08\x04")
    with pytest.raises(ValueError):
        _kad.fuzz_kad_stream(b"\x00\x02\x08\x04")


def test_lookup_target_catches_a_peer_asked_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Lookup.next_requests

    def twice(self: Lookup, now: float) -> list[KadPeer]:
        out = original(self, now)
        return out + out

    monkeypatch.setattr(Lookup, "next_requests", twice)
    with pytest.raises(AssertionError, match="asked twice"):
        _kad.fuzz_kad_lookup(bytes([0x37, 0x00]))


def test_lookup_target_catches_a_lookup_that_never_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Lookup, "handle_timer", lambda self, now: None)
    with pytest.raises(AssertionError, match="deadline did not end"):
        _kad.fuzz_kad_lookup(bytes([0x37, 0x00]))
