"""The relay fuzz targets: seeds run clean and reach the code under test, and the targets
report what they must catch."""

from __future__ import annotations

import pytest

from fuzz import _relay
from fuzz._registry import TARGETS, load
from protocols.relay import HopCore, decode_hop

NAMES = ["relay_message", "relay_core"]


@pytest.mark.parametrize("name", NAMES)
def test_seeds_run_clean(name: str) -> None:
    target = load(name)
    seeds = sorted(TARGETS[name].seed_dir.iterdir())
    assert seeds
    for path in seeds:
        target(path.read_bytes())
    target(b"")
    target(bytes(range(256)))


def test_core_seed_opens_a_circuit_and_relays(monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[int] = []
    real = HopCore.take_data

    def spy(self: HopCore, cid: int, direction: int, size: int) -> int:
        allowed = real(self, cid, direction, size)
        taken.append(allowed)
        return allowed

    monkeypatch.setattr(HopCore, "take_data", spy)
    _relay.fuzz_relay_core((TARGETS["relay_core"].seed_dir / "reserve-connect-expire").read_bytes())
    assert taken == [200, 255]


def test_core_target_catches_a_broken_data_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(HopCore, "take_data", lambda self, cid, direction, size: size)
    steps = bytes([0x08, 0, 0, 0x01, 1, 0]) + bytes([0x03, 0, 255]) * 4
    with pytest.raises(AssertionError, match="data limit"):
        _relay.fuzz_relay_core(b"\x00" + steps)


def test_message_target_catches_a_lossy_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_relay, "encode_hop", lambda message: b"\x08\x00")
    seed = (TARGETS["relay_message"].seed_dir / "connect").read_bytes()
    assert decode_hop(seed[1:]).peer is not None
    with pytest.raises(AssertionError, match="re-encoding"):
        _relay.fuzz_relay_message(seed)
