"""Circuit relay v2 (``/libp2p/circuit/relay/0.2.0/hop`` and ``/stop``,
https://github.com/libp2p/specs/blob/master/relay/circuit-v2.md): the wire messages, reservation
vouchers, the relay (hop) service, the client side as a transport (``CircuitRelayTransport``:
dial and listen through relays, relayed connections marked limited) and auto-relay
(``AutoRelay``). Message schema in :mod:`protocols.relay.pb`."""

from protocols.relay._addrs import circuit_addr, is_circuit, split_circuit
from protocols.relay._autorelay import AutoRelay, AutoRelayConfig, RelayCandidates
from protocols.relay._client_wire import HeldReservation, RelayStatusError, status_name
from protocols.relay._hop_config import (
    CircuitClosed,
    CircuitOpened,
    CircuitRefused,
    RelayConfig,
    RelayEvent,
    ReservationAccepted,
    ReservationRefused,
)
from protocols.relay._hop_core import Granted, HopCore, Refused, RelayStatistics
from protocols.relay._hop_service import PROTECTION_TAG, RelayService, is_relayed, remote_ip
from protocols.relay._listener import CircuitConfig, CircuitListener
from protocols.relay._reserve import ReservationLost, ReservationMade, ReservationRefreshed
from protocols.relay._transport import CircuitRelayTransport
from protocols.relay._unreserved import ANY_RELAY, UnreservedListener
from protocols.relay._voucher import (
    VOUCHER_DOMAIN,
    VOUCHER_PAYLOAD_TYPE,
    Voucher,
    VoucherError,
    make_voucher,
    open_voucher,
)
from protocols.relay._wire import (
    HOP_PROTOCOL_ID,
    MAX_ADDRS,
    MAX_MESSAGE_SIZE,
    STOP_PROTOCOL_ID,
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
    read_hop,
    read_stop,
    write_hop,
    write_stop,
)

__all__ = [
    "ANY_RELAY",
    "HOP_PROTOCOL_ID",
    "MAX_ADDRS",
    "MAX_MESSAGE_SIZE",
    "PROTECTION_TAG",
    "STOP_PROTOCOL_ID",
    "VOUCHER_DOMAIN",
    "VOUCHER_PAYLOAD_TYPE",
    "AutoRelay",
    "AutoRelayConfig",
    "CircuitClosed",
    "CircuitConfig",
    "CircuitListener",
    "CircuitOpened",
    "CircuitRefused",
    "CircuitRelayTransport",
    "Granted",
    "HeldReservation",
    "HopCore",
    "HopMessage",
    "HopType",
    "Limit",
    "MalformedMessage",
    "Peer",
    "Refused",
    "RelayCandidates",
    "RelayConfig",
    "RelayEvent",
    "RelayService",
    "RelayStatistics",
    "RelayStatusError",
    "Reservation",
    "ReservationAccepted",
    "ReservationLost",
    "ReservationMade",
    "ReservationRefreshed",
    "ReservationRefused",
    "Status",
    "StopMessage",
    "StopType",
    "UnreservedListener",
    "Voucher",
    "VoucherError",
    "circuit_addr",
    "decode_hop",
    "decode_stop",
    "encode_hop",
    "encode_stop",
    "is_circuit",
    "is_relayed",
    "make_voucher",
    "open_voucher",
    "read_hop",
    "read_stop",
    "remote_ip",
    "split_circuit",
    "status_name",
    "write_hop",
    "write_stop",
]
