"""The relay client fuzz target: its seeds run clean and it reports what it must catch."""

from __future__ import annotations

import pytest

from fuzz import _relay_client
from fuzz._registry import TARGETS, load
from p2pstack.interfaces import ConnectionLimits


def test_seeds_run_clean() -> None:
    target = load("relay_client")
    seeds = sorted(TARGETS["relay_client"].seed_dir.iterdir())
    assert len(seeds) == 3
    for path in seeds:
        target(path.read_bytes())
    for data in (b"", b"\x00", b"\x01", bytes(range(256)), b"\x00" + b"\xff" * 64):
        target(data)


def test_other_exceptions_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(relay: object, message: object) -> None:
        raise KeyError("not a RemoteProtocolError")

    monkeypatch.setattr(_relay_client, "reservation_of", broken)
    seed = (TARGETS["relay_client"].seed_dir / "reservation").read_bytes()
    with pytest.raises(KeyError):
        _relay_client.fuzz_relay_client(seed)


def test_a_zero_limit_is_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_relay_client, "limits_of", lambda limit: ConnectionLimits(data=0))
    seed = (TARGETS["relay_client"].seed_dir / "stop_connect").read_bytes()
    with pytest.raises(AssertionError, match="zero data"):
        _relay_client.fuzz_relay_client(seed)
