"""Fuzz target for the circuit relay v2 client: what a relay sends us, a HopMessage answer
(status, reservation, limit) and a StopMessage CONNECT (source peer, limit), decoded by
``protocols.relay._wire`` and read by the client (``expect_ok``, ``reservation_of``,
``limits_of``, the stop handler's source-peer check).

The first byte picks the message: even a HopMessage, odd a StopMessage; the rest is its body.
"""

from __future__ import annotations

from multiaddr import Multiaddr

from fuzz._common import check
from fuzz._swim import fuzz_peer
from p2pstack.errors import RemoteProtocolError
from p2pstack.identity import Identity
from protocols.relay import RelayStatusError
from protocols.relay._client_wire import expect_ok, limits_of, reservation_of
from protocols.relay._wire import (
    MAX_ADDRS,
    MAX_MESSAGE_SIZE,
    HopMessage,
    HopType,
    Limit,
    MalformedMessage,
    Peer,
    Reservation,
    Status,
    StopMessage,
    StopType,
    decode_hop,
    decode_stop,
    encode_hop,
    encode_stop,
)

__all__ = ["fuzz_relay_client", "seeds"]

#: The relay the reservations come from (any peer ID will do).
RELAY = Identity.generate().peer_id


def fuzz_relay_client(data: bytes) -> None:
    """Parse a relay's message the way the client does; only documented errors may escape."""
    if not data or len(data) > MAX_MESSAGE_SIZE + 1:
        return
    body = data[1:]
    if data[0] % 2 == 0:
        _hop(body)
    else:
        _stop(body)


def _limits(limit: Limit | None) -> None:
    limits = limits_of(limit)
    if limits is not None:
        check(limits.duration is None or limits.duration > 0, "a zero duration limit")
        check(limits.data is None or limits.data > 0, "a zero data limit")


def _hop(body: bytes) -> None:
    try:
        message = decode_hop(body)
    except MalformedMessage:
        return
    _limits(message.limit)
    try:
        expect_ok(message, "fuzz")
    except RelayStatusError as error:
        check(error.name in str(error), "the status name is missing from the error")
        check(message.status is not Status.OK, "an OK status was refused")
        return
    except RemoteProtocolError:
        check(message.type is not HopType.STATUS, "a STATUS answer was called malformed")
        return
    try:
        reservation = reservation_of(RELAY, message)
    except RemoteProtocolError:
        return
    check(len(reservation.addrs) <= MAX_ADDRS, "too many reservation addresses")
    for addr in reservation.addrs:
        check("p2p-circuit" not in str(addr), f"a relayed relay address {addr} was kept")


def _stop(body: bytes) -> None:
    try:
        message = decode_stop(body)
    except MalformedMessage:
        return
    _limits(message.limit)
    if message.type is StopType.CONNECT:
        check(message.peer is not None, "a CONNECT without a source peer was accepted")


def seeds() -> dict[str, dict[str, bytes]]:
    """The target's seeds: a reservation, a refusal, a stop CONNECT."""
    source = fuzz_peer(1)
    reservation = HopMessage(
        type=HopType.STATUS,
        status=Status.OK,
        reservation=Reservation(
            expire=1_900_000_000, addrs=(Multiaddr("/ip4/127.0.0.1/tcp/4001"),), voucher=b"v"
        ),
        limit=Limit(duration=120, data=1 << 17),
    )
    refusal = HopMessage(type=HopType.STATUS, status=Status.NO_RESERVATION)
    stop = StopMessage(
        type=StopType.CONNECT, peer=Peer(id=source), limit=Limit(duration=120, data=1 << 17)
    )
    return {
        "relay_client": {
            "reservation": b"\x00" + encode_hop(reservation),
            "no_reservation": b"\x00" + encode_hop(refusal),
            "stop_connect": b"\x01" + encode_stop(stop),
        }
    }
