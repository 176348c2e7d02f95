"""The DCUtR fuzz targets: their seeds run clean, and each reports what it must catch."""

from __future__ import annotations

import pytest

from fuzz import _dcutr
from fuzz._registry import TARGETS, load
from protocols.dcutr import AddressPolicy, DcutrMessage, MessageType

DCUTR_TARGETS = ["dcutr_message", "dcutr_core"]


@pytest.mark.parametrize("name", DCUTR_TARGETS)
def test_seeds_run_clean(name: str) -> None:
    target = load(name)
    seeds = sorted(TARGETS[name].seed_dir.iterdir())
    assert seeds
    for path in seeds:
        target(path.read_bytes())
    target(b"")
    target(bytes(range(256)))


def test_message_target_catches_a_changed_reencoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_dcutr, "encode_body", lambda msg: b"\x08\xac\x02")
    with pytest.raises(AssertionError, match="changed"):
        _dcutr.fuzz_dcutr_message((TARGETS["dcutr_message"].seed_dir / "connect").read_bytes())


def test_core_target_catches_a_dial_past_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    seed = (TARGETS["dcutr_core"].seed_dir / "responder-rounds").read_bytes()
    _dcutr.fuzz_dcutr_core(seed)  # the private QUIC address is filtered out
    monkeypatch.setattr(AddressPolicy, "filter", lambda self, addrs: addrs)
    with pytest.raises(AssertionError, match="undialable"):
        _dcutr.fuzz_dcutr_core(seed)


def test_message_target_lets_other_exceptions_through(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(body: bytes) -> DcutrMessage:
        raise ValueError("not a MalformedMessageError")

    monkeypatch.setattr(_dcutr, "decode_message", broken)
    with pytest.raises(ValueError):
        _dcutr.fuzz_dcutr_message(b"\x08\xac\x02")
    assert int(MessageType.SYNC) == 300
