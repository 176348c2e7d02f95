"""Fuzz target for the circuit relay v2 client: what a relay sends us, a HopMessage answer
(status, reservation, limit) and a StopMessage CONNECT (source peer, limit), read by
``protocols.relay``'s client (``reservation_of``, ``limits_of``, ``status_error`` and the stop
handler's source-peer check).

The first byte picks the message: even a HopMessage, odd a StopMessage; the rest is its body.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from fuzz._common import check
from fuzz._swim import fuzz_peer
from p2pstack.errors import RemoteProtocolError
from p2pstack.identity import Identity
from protocols.relay._client_wire import (
    MAX_MESSAGE_SIZE,
    MAX_RESERVATION_ADDRS,
    limits_of,
    reservation_of,
    status_error,
)
from protocols.relay._transport import _source_peer
from protocols.relay.pb import circuit_pb2 as pb

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


def _limits(limit: pb.Limit | None) -> None:
    limits = limits_of(limit)
    if limits is not None:
        check(limits.duration is None or limits.duration > 0, "a zero duration limit")
        check(limits.data is None or limits.data > 0, "a zero data limit")


def _hop(body: bytes) -> None:
    message = pb.HopMessage()
    try:
        message.ParseFromString(body)
    except DecodeError:
        return
    _limits(message.limit if message.HasField("limit") else None)
    if message.status != pb.OK:
        error = status_error(message.status, "fuzz")
        check(error.name in str(error), "the status name is missing from the error")
        return
    try:
        reservation = reservation_of(RELAY, message)
    except RemoteProtocolError:
        return
    check(len(reservation.addrs) <= MAX_RESERVATION_ADDRS, "too many reservation addresses")
    for addr in reservation.addrs:
        check("p2p-circuit" not in str(addr), f"a relayed relay address {addr} was kept")


def _stop(body: bytes) -> None:
    message = pb.StopMessage()
    try:
        message.ParseFromString(body)
    except DecodeError:
        return
    _limits(message.limit if message.HasField("limit") else None)
    source = _source_peer(message)
    if source is not None:
        check(source.to_bytes() == message.peer.id, "the source peer changed on decoding")


def seeds() -> dict[str, dict[str, bytes]]:
    """The target's seeds: a reservation, a refusal, a stop CONNECT."""
    source = fuzz_peer(1)
    relay_addr = b"\x04\x7f\x00\x00\x01\x06\x0f\xa1"  # /ip4/127.0.0.1/tcp/4001
    reservation = pb.HopMessage(
        type=pb.HopMessage.STATUS,
        status=pb.OK,
        reservation=pb.Reservation(expire=1_900_000_000, addrs=[relay_addr], voucher=b"v"),
        limit=pb.Limit(duration=120, data=1 << 17),
    )
    refusal = pb.HopMessage(type=pb.HopMessage.STATUS, status=pb.NO_RESERVATION)
    stop = pb.StopMessage(
        type=pb.StopMessage.CONNECT,
        peer=pb.Peer(id=source.to_bytes()),
        limit=pb.Limit(duration=120, data=1 << 17),
    )
    return {
        "relay_client": {
            "reservation": b"\x00" + reservation.SerializeToString(),
            "no_reservation": b"\x00" + refusal.SerializeToString(),
            "stop_connect": b"\x01" + stop.SerializeToString(),
        }
    }
