"""Fuzz targets for circuit relay v2: the hop and stop message decoders (with re-encoding),
the voucher opener, and the relay's reservation and circuit tables driven by arbitrary
requests over time.
"""

from __future__ import annotations

from fuzz._common import check, split_control
from p2pstack.errors import IdentityError
from p2pstack.identity import PeerId
from protocols.relay import (
    HopCore,
    MalformedMessage,
    Refused,
    RelayConfig,
    decode_hop,
    decode_stop,
    encode_hop,
    encode_stop,
    open_voucher,
)

__all__ = ["CORE_PEERS", "fuzz_relay_core", "fuzz_relay_message"]

#: Small limits, so that short inputs reach them.
_CONFIG = RelayConfig(
    reservation_ttl=60.0, limit_duration=30, limit_data=1000, max_reservations=5,
    max_reservations_per_peer=2, max_reservations_per_ip=3, max_circuits=4,
    max_circuits_per_peer=2,
)  # fmt: skip
#: The peers of a core input: fixed keyless peer IDs.
CORE_PEERS = tuple(PeerId.from_bytes(b"\x12\x20" + bytes([i]) * 32) for i in range(8))


def fuzz_relay_message(data: bytes) -> None:
    """Control byte bit 0: decode as a ``StopMessage`` (1) or a ``HopMessage`` (0); bit 1: also
    open the bytes as a voucher. What decodes re-encodes to an equal message; anything else
    raises ``MalformedMessage`` (and a voucher, ``IdentityError``)."""
    control, body = split_control(data)
    if control & 2:
        try:
            open_voucher(body)
        except IdentityError:
            pass
    if control & 1:
        try:
            stop = decode_stop(body)
        except MalformedMessage:
            return
        check(decode_stop(encode_stop(stop)) == stop, "stop message changed on re-encoding")
        return
    try:
        hop = decode_hop(body)
    except MalformedMessage:
        return
    check(decode_hop(encode_hop(hop)) == hop, "hop message changed on re-encoding")


def _check_core(core: HopCore, now: float) -> None:
    stats = core.statistics()
    check(stats.reservations <= _CONFIG.max_reservations, "over the reservation limit")
    check(stats.circuits <= _CONFIG.max_circuits, "over the circuit limit")
    per_peer: dict[PeerId, int] = {}
    for peer, expires in core.reservations():
        check(expires > now, "an expired reservation is kept")
        per_peer[peer] = per_peer.get(peer, 0) + 1
    check(max(per_peer.values(), default=0) <= _CONFIG.max_reservations_per_peer, "peer limit")
    deadline = core.next_deadline()
    check(deadline is None or deadline > now, "a deadline in the past")


def fuzz_relay_core(data: bytes) -> None:
    """Drive a ``HopCore``: the control byte is ignored; then 3-byte steps: an operation byte
    (bits 0-2: reserve, connect, close a circuit, data, connection closed, time passes;
    bits 3-5: the peer; bits 6-7: its connection), an argument byte (the other peer, the
    IP, the circuit or the seconds) and a size byte. Invariants: the limits hold, the data
    budget is never exceeded, nothing expired is kept, the next deadline lies ahead."""
    _, wire = split_control(data)
    core = HopCore(_CONFIG)
    now = 0.0
    circuits: list[int] = []
    sent: dict[tuple[int, int], int] = {}
    for pos in range(0, len(wire) - 2, 3):
        op, arg, size = wire[pos], wire[pos + 1], wire[pos + 2]
        peer = CORE_PEERS[(op >> 3) & 7]
        conn = (peer, op >> 6)
        kind = op & 7
        if kind == 0:
            core.reserve(peer, conn, f"10.0.0.{arg & 3}", now, relayed=size == 255)
        elif kind == 1:
            cid = core.open_circuit(peer, CORE_PEERS[arg & 7], now)
            check(isinstance(cid, Refused) or cid not in circuits, "a circuit id reused")
            if not isinstance(cid, Refused):
                circuits.append(cid)
        elif kind == 2 and circuits:
            core.close_circuit(circuits.pop(arg % len(circuits)))
        elif kind == 3 and circuits:
            cid, direction = circuits[arg % len(circuits)], arg & 1
            allowed = core.take_data(cid, direction, size)
            check(0 <= allowed <= size, "allowed more than asked")
            sent[cid, direction] = sent.get((cid, direction), 0) + allowed
            check(sent[cid, direction] <= 1000, "over the data limit")
        elif kind == 4:
            core.connection_closed(peer, conn)
        elif kind >= 5:
            now += arg
            deadline = core.next_deadline()
            if deadline is not None and deadline <= now:
                core.handle_timer(now)
                core.take_expired()
        _check_core(core, now)
