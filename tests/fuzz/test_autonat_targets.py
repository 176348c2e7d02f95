"""The AutoNAT fuzz targets: seeds run clean, and the targets catch a broken selection."""

from __future__ import annotations

import pytest

from fuzz import _autonat
from fuzz._registry import TARGETS, load

NAMES = ["autonat_v1", "autonat_v2"]


@pytest.mark.parametrize("name", NAMES)
def test_seeds_run_clean(name: str) -> None:
    target = load(name)
    seeds = sorted(TARGETS[name].seed_dir.iterdir())
    assert seeds
    for path in seeds:
        target(path.read_bytes())
    target(b"")
    target(bytes(range(256)))


def test_v1_target_catches_third_party_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        _autonat, "select_v1_addrs", lambda addrs, *a, **k: list(addrs)
    )  # a server that would dial anything
    seed = (TARGETS["autonat_v1"].seed_dir / "dial").read_bytes()
    with pytest.raises(AssertionError, match="third-party"):
        _autonat.fuzz_autonat_v1(seed)


def test_invalid_utf8_status_text_regression() -> None:
    # Found by the fuzzer: a statusText with invalid UTF-8 decoded but did not re-encode.
    data = bytes.fromhex("08011a100865" + "12026ef2" + "1a08047f000001040fa1")
    _autonat.fuzz_autonat_v1(data)
