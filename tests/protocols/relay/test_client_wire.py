"""The client's reading of relay messages and relayed addresses, with literal values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiaddr import Multiaddr

from p2pstack.errors import RemoteProtocolError, TransportError
from p2pstack.identity import Identity
from p2pstack.interfaces import ConnectionLimits
from protocols.relay import RelayStatusError, circuit_addr, split_circuit, status_name
from protocols.relay._client_wire import expect_ok, limits_of, reservation_of
from protocols.relay._listener import CircuitConfig, refresh_delay
from protocols.relay._wire import HopMessage, HopType, Limit, Reservation, Status

RELAY = Identity.generate().peer_id
TARGET = Identity.generate().peer_id


def test_status_names_come_from_the_spec() -> None:
    assert status_name(204) == "NO_RESERVATION"
    assert status_name(200) == "RESERVATION_REFUSED"
    assert status_name(999) == "STATUS_999"
    error = RelayStatusError(204, "relayed dial")
    assert error.name == "NO_RESERVATION" and "NO_RESERVATION (204)" in str(error)
    assert isinstance(error, TransportError)


def test_expect_ok_turns_refusals_into_typed_errors() -> None:
    expect_ok(HopMessage(type=HopType.STATUS, status=Status.OK), "RESERVE")
    with pytest.raises(RelayStatusError, match="NO_RESERVATION") as info:
        expect_ok(HopMessage(type=HopType.STATUS, status=Status.NO_RESERVATION), "CONNECT")
    assert info.value.status == 204
    with pytest.raises(RemoteProtocolError, match="other than STATUS"):
        expect_ok(HopMessage(type=HopType.RESERVE), "CONNECT")


def test_limits() -> None:
    assert limits_of(None) is None
    assert limits_of(Limit()) is None
    assert limits_of(Limit(duration=0, data=0)) is None
    assert limits_of(Limit(duration=120)) == ConnectionLimits(duration=120.0)
    assert limits_of(Limit(data=1 << 17)) == ConnectionLimits(data=1 << 17)


def test_reservation_reads_addresses_and_keeps_the_voucher() -> None:
    tcp = Multiaddr("/ip4/127.0.0.1/tcp/4001")
    with_id = Multiaddr(f"/ip4/127.0.0.1/tcp/4002/p2p/{RELAY}")
    relayed = Multiaddr(f"/ip4/127.0.0.1/tcp/1/p2p/{RELAY}/p2p-circuit")
    message = HopMessage(
        type=HopType.STATUS,
        status=Status.OK,
        reservation=Reservation(
            expire=1_900_000_000, addrs=(tcp, with_id, relayed), voucher=b"signed envelope bytes"
        ),
        limit=Limit(duration=60),
    )
    reservation = reservation_of(RELAY, message)
    assert reservation.addrs == (tcp, with_id)  # the relayed one dropped
    assert reservation.voucher == b"signed envelope bytes"
    assert reservation.expire == 1_900_000_000
    assert reservation.limits == ConnectionLimits(duration=60.0)
    with pytest.raises(RemoteProtocolError, match="expiry"):
        reservation_of(RELAY, HopMessage(type=HopType.STATUS, status=Status.OK))


def test_split_circuit() -> None:
    relay_addr = Multiaddr("/ip4/127.0.0.1/tcp/4001")
    assert split_circuit(circuit_addr(relay_addr, RELAY)) == (relay_addr, RELAY)
    assert split_circuit(circuit_addr(None, RELAY)) == (None, RELAY)
    assert str(circuit_addr(None, RELAY)) == f"/p2p/{RELAY}/p2p-circuit"
    nested = Multiaddr(f"/p2p/{RELAY}/p2p-circuit/p2p/{TARGET}/p2p-circuit")
    with pytest.raises(TransportError, match="circuit over a circuit"):
        split_circuit(nested)
    with pytest.raises(TransportError, match="missing"):
        split_circuit(Multiaddr("/ip4/127.0.0.1/tcp/1/p2p-circuit"))
    with pytest.raises(TransportError, match="nothing may follow"):
        split_circuit(Multiaddr(f"/p2p/{RELAY}/p2p-circuit/p2p/{TARGET}"))


def test_refresh_delay_like_js() -> None:
    config = CircuitConfig()
    assert refresh_delay(3600, config) == 3300  # 5 minutes before expiry
    assert refresh_delay(400, config) == 200  # short reservations: half the time left
    assert refresh_delay(-5, config) == config.min_refresh


@given(st.floats(min_value=-1e6, max_value=1e9, allow_nan=False))
def test_refresh_delay_bounds(remaining: float) -> None:
    delay = refresh_delay(remaining, CircuitConfig())
    assert delay >= CircuitConfig().min_refresh
    assert delay <= max(remaining, CircuitConfig().min_refresh)
