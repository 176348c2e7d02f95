"""The daemon's control-protocol fuzz targets: their seeds run clean, and each reports what it
must catch (an exception other than ``ControlError``, a decoder that loses bytes)."""

from __future__ import annotations

import pytest

from fuzz import _daemon
from fuzz._registry import TARGETS, load
from p2pstack.roots.daemon import _wire


@pytest.mark.parametrize("name", ["p2pd_request", "p2pd_stream"])
def test_seeds_run_clean(name: str) -> None:
    target = load(name)
    seeds = sorted(TARGETS[name].seed_dir.iterdir())
    assert seeds
    for path in seeds:
        target(path.read_bytes())
    target(b"")
    target(bytes(range(256)))


def test_request_target_lets_other_exceptions_through(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: bytes) -> _wire.Command:
        raise KeyError("not a ControlError")

    monkeypatch.setattr(_daemon, "parse_request", broken)
    with pytest.raises(KeyError):
        _daemon.fuzz_p2pd_request(b"\x08\x00")


def test_stream_target_catches_a_decoder_that_drops_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    class Lossy(_wire.RequestDecoder):
        def take_remaining(self) -> bytes:
            return b""

    monkeypatch.setattr(_daemon, "RequestDecoder", Lossy)
    with pytest.raises(AssertionError, match="not the input"):
        _daemon.fuzz_p2pd_stream(b"\x00\x02\x08\x00tail")
