"""The relay core's decisions: reservation and circuit limits, expiry, loops, data budgets."""

from __future__ import annotations

import pytest

from p2pstack.identity import Identity
from protocols.relay import Granted, HopCore, Refused, RelayConfig, Status

PEERS = [Identity.generate().peer_id for _ in range(6)]
A, B, C, D, E, F = PEERS


def core(**changes: object) -> HopCore:
    return HopCore(RelayConfig(**changes))  # type: ignore[arg-type]  # test overrides


def test_reservation_limits_total_per_peer_and_per_ip() -> None:
    relay = core(max_reservations=4, max_reservations_per_peer=2, max_reservations_per_ip=2)
    assert isinstance(relay.reserve(A, 1, "10.0.0.1", 0.0), Granted)
    assert isinstance(relay.reserve(A, 2, "10.0.0.2", 0.0), Granted)
    per_peer = relay.reserve(A, 3, "10.0.0.3", 0.0)
    assert per_peer == Refused(Status.RESERVATION_REFUSED, "too many reservations for peer")
    assert isinstance(relay.reserve(B, 4, "10.0.0.1", 0.0), Granted)
    per_ip = relay.reserve(C, 5, "10.0.0.1", 0.0)
    assert isinstance(per_ip, Refused) and "10.0.0.1" in per_ip.reason
    assert isinstance(relay.reserve(C, 6, None, 0.0), Granted)
    total = relay.reserve(D, 7, "10.0.0.9", 0.0)
    assert isinstance(total, Refused) and total.reason == "too many reservations"
    stats = relay.statistics()
    assert stats.reservations == 4 and stats.reservations_refused == 3


def test_renewal_does_not_count_and_moves_the_expiry() -> None:
    relay = core(max_reservations=1, reservation_ttl=10.0)
    assert relay.reserve(A, 1, None, 0.0) == Granted(10.0, renewed=False)
    assert relay.reserve(A, 1, None, 5.0) == Granted(15.0, renewed=True)
    assert relay.next_deadline() == 15.0


def test_expiry_and_connection_close() -> None:
    relay = core(reservation_ttl=10.0)
    relay.reserve(A, 1, "10.0.0.1", 0.0)
    relay.reserve(B, 2, "10.0.0.1", 5.0)
    relay.handle_timer(10.0)
    assert relay.take_expired() == ([A], [])
    assert not relay.has_reservation(A) and relay.has_reservation(B)
    assert relay.next_deadline() == 15.0
    assert relay.connection_closed(B, 2) and not relay.connection_closed(B, 2)
    assert not relay.has_reservation(B) and relay.next_deadline() is None
    # The per-IP count went back down with both.
    relay2 = core(max_reservations_per_ip=1)
    relay2.reserve(A, 1, "10.0.0.1", 0.0)
    relay2.connection_closed(A, 1)
    assert isinstance(relay2.reserve(C, 3, "10.0.0.1", 0.0), Granted)


def test_relayed_requests_are_refused() -> None:
    relay = core()
    # (the ignore below: a refusal here)
    assert relay.reserve(A, 1, None, 0.0, relayed=True).status is Status.PERMISSION_DENIED  # type: ignore[union-attr]
    relay.reserve(B, 2, None, 0.0)
    loop = relay.open_circuit(A, B, 0.0, relayed=True)
    assert isinstance(loop, Refused) and loop.status is Status.PERMISSION_DENIED
    itself = relay.open_circuit(B, B, 0.0)
    assert isinstance(itself, Refused) and itself.status is Status.PERMISSION_DENIED


def test_circuit_limits() -> None:
    relay = core(max_circuits=3, max_circuits_per_peer=2)
    none = relay.open_circuit(A, B, 0.0)
    assert isinstance(none, Refused) and none.status is Status.NO_RESERVATION
    for peer, conn in ((B, 1), (D, 2), (F, 3)):
        relay.reserve(peer, conn, None, 0.0)
    first = relay.open_circuit(A, B, 0.0)
    second = relay.open_circuit(C, B, 0.0)
    assert isinstance(first, int) and isinstance(second, int)
    per_peer = relay.open_circuit(E, B, 0.0)
    assert isinstance(per_peer, Refused) and per_peer.status is Status.RESOURCE_LIMIT_EXCEEDED
    assert isinstance(relay.open_circuit(A, D, 0.0), int)
    total = relay.open_circuit(E, F, 0.0)
    assert isinstance(total, Refused) and total.reason == "too many circuits"
    relay.close_circuit(first)
    assert isinstance(relay.open_circuit(E, F, 0.0), int)


def test_data_budget_each_direction() -> None:
    relay = core(limit_data=100)
    relay.reserve(B, 1, None, 0.0)
    cid = relay.open_circuit(A, B, 0.0)
    assert isinstance(cid, int)
    assert relay.take_data(cid, 0, 60) == 60
    assert relay.take_data(cid, 0, 60) == 40
    assert relay.take_data(cid, 0, 1) == 0
    assert relay.take_data(cid, 1, 100) == 100
    assert relay.close_circuit(cid) == (100, 100)
    assert relay.statistics().circuits == 0


def test_unlimited_data_and_duration() -> None:
    relay = core(limit_data=None, limit_duration=None)
    relay.reserve(B, 1, None, 0.0)
    cid = relay.open_circuit(A, B, 0.0)
    assert isinstance(cid, int)
    assert relay.take_data(cid, 0, 1 << 40) == 1 << 40
    assert relay.next_deadline() == 3600.0


def test_duration_deadline_is_reported_once() -> None:
    relay = core(limit_duration=120)
    relay.reserve(B, 1, None, 0.0)
    cid = relay.open_circuit(A, B, 1.0)
    assert relay.next_deadline() == 121.0
    relay.handle_timer(121.0)
    assert relay.take_expired() == ([], [cid])
    assert relay.next_deadline() == 3600.0
    relay.handle_timer(121.0)
    assert relay.take_expired() == ([], [])


@pytest.mark.parametrize(
    "field", ["max_reservations", "limit_data", "reservation_ttl", "buffer_size"]
)
def test_config_refuses_non_positive_limits(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RelayConfig(**{field: 0})


def test_config_refuses_limits_the_wire_cannot_carry() -> None:
    with pytest.raises(ValueError, match="uint32"):
        RelayConfig(limit_duration=1 << 32)
