"""The SWIM fuzz targets: their seeds run clean, and each reports what it must catch."""

from __future__ import annotations

import pytest

from fuzz import _swim
from fuzz._registry import TARGETS, load
from protocols.membership import SwimCore

SWIM_TARGETS = ["swim_message", "swim_core"]


@pytest.mark.parametrize("name", SWIM_TARGETS)
def test_seeds_run_clean(name: str) -> None:
    target = load(name)
    seeds = sorted(TARGETS[name].seed_dir.iterdir())
    assert seeds
    for path in seeds:
        target(path.read_bytes())
    target(b"")
    target(bytes(range(256)))


def test_message_target_lets_other_exceptions_through(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: bytes, limits: object) -> None:
        raise ValueError("not a SwimProtocolError")

    monkeypatch.setattr(_swim, "decode_message", broken)
    with pytest.raises(ValueError):
        _swim.fuzz_swim_message(b"\x12\x02\x08\x01")


def test_core_target_catches_an_unbounded_table(monkeypatch: pytest.MonkeyPatch) -> None:
    seed = (TARGETS["swim_core"].seed_dir / "claims").read_bytes()
    monkeypatch.setattr(SwimCore, "members", lambda self: [object()] * 9)
    with pytest.raises(AssertionError, match="9 members"):
        _swim.fuzz_swim_core(seed)


def test_core_seed_reaches_the_member_table() -> None:
    seed = (TARGETS["swim_core"].seed_dir / "claims").read_bytes()
    core_members: list[int] = []
    original = SwimCore.handle_message

    def spy(self: SwimCore, now: float, sender: object, data: bytes) -> None:
        try:
            original(self, now, sender, data)  # type: ignore[arg-type]  # the wrapper forwards the sender as it got it
        finally:
            core_members.append(len(self.members()))

    with pytest.MonkeyPatch.context() as m:
        m.setattr(SwimCore, "handle_message", spy)
        _swim.fuzz_swim_core(seed)
    assert max(core_members) == 1  # the signed alive claim got past verification
