"""Circuit relay v2 (``/libp2p/circuit/relay/0.2.0/hop`` and ``/stop``;
https://github.com/libp2p/specs/blob/master/relay/circuit-v2.md): the client side as a
transport (``CircuitRelayTransport``: dial and listen through relays, relayed connections
marked limited) and auto-relay (``AutoRelay``). Message schema in :mod:`protocols.relay.pb`.
"""

from protocols.relay._addrs import circuit_addr, is_circuit, split_circuit
from protocols.relay._autorelay import AutoRelay, AutoRelayConfig, RelayCandidates
from protocols.relay._client_wire import (
    HOP_PROTOCOL_ID,
    STOP_PROTOCOL_ID,
    RelayStatusError,
    Reservation,
    status_name,
)
from protocols.relay._listener import CircuitConfig, CircuitListener
from protocols.relay._reserve import ReservationLost, ReservationMade, ReservationRefreshed
from protocols.relay._transport import CircuitRelayTransport

__all__ = [
    "HOP_PROTOCOL_ID",
    "STOP_PROTOCOL_ID",
    "AutoRelay",
    "AutoRelayConfig",
    "CircuitConfig",
    "CircuitListener",
    "CircuitRelayTransport",
    "RelayCandidates",
    "RelayStatusError",
    "Reservation",
    "ReservationLost",
    "ReservationMade",
    "ReservationRefreshed",
    "circuit_addr",
    "is_circuit",
    "split_circuit",
    "status_name",
]
