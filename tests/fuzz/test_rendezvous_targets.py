"""The rendezvous fuzz targets: seeds run clean and reach the registry, and the targets report
what they must catch."""

from __future__ import annotations

import pytest

from fuzz import _rendezvous
from fuzz._registry import TARGETS, load
from p2pstack.errors import RemoteProtocolError
from p2pstack.framing import encode_lp
from protocols.discovery.rendezvous import Registry, Status, decode_message

NAMES = ["rendezvous_message", "rendezvous_point"]


@pytest.mark.parametrize("name", NAMES)
def test_seeds_run_clean(name: str) -> None:
    target = load(name)
    seeds = sorted(TARGETS[name].seed_dir.iterdir())
    assert seeds
    for path in seeds:
        target(path.read_bytes())
    target(b"")
    target(bytes(range(256)))


def test_point_seeds_get_past_the_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    statuses: list[Status] = []
    real = Registry.handle_request

    def spy(self: Registry, peer: object, data: bytes, now: float) -> bytes | None:
        answer = real(self, peer, data, now)  # type: ignore[arg-type]  # the spy forwards the peer as it got it
        if answer is not None:
            statuses.append(decode_message(answer).status)  # type: ignore[union-attr]  # a None there fails the test as well
        return answer

    monkeypatch.setattr(Registry, "handle_request", spy)
    load("rendezvous_point")(
        (TARGETS["rendezvous_point"].seed_dir / "register-discover").read_bytes()
    )
    assert statuses == [Status.OK, Status.OK, Status.OK]


def test_point_target_catches_a_kept_expired_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Registry, "handle_timer", lambda self, now: None)
    seed = (TARGETS["rendezvous_point"].seed_dir / "expire-unregister").read_bytes()
    with pytest.raises(AssertionError, match="expired"):
        _rendezvous.fuzz_rendezvous_point(seed)


def test_message_target_lets_other_exceptions_through(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: bytes) -> None:
        raise ValueError("not a RemoteProtocolError")

    monkeypatch.setattr(_rendezvous, "decode_message", broken)
    with pytest.raises(ValueError):
        _rendezvous.fuzz_rendezvous_message(b"\x08\x03")


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("08032a030a01e6"),  # DISCOVER, namespace not UTF-8 (found by fuzzing)
        bytes.fromhex("080012050a0361ff62"),  # REGISTER, the same
    ],
)
def test_regression_invalid_utf8_namespace(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="UTF-8"):
        decode_message(data)
    load("rendezvous_message")(data)
    load("rendezvous_point")(b"\x00" + encode_lp(b"\x00" + data))
