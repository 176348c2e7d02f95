"""DCUtR, Direct Connection Upgrade through Relay (``/libp2p/dcutr``): hole punching
coordinated over a relayed connection
(https://github.com/libp2p/specs/blob/master/relay/DCUtR.md).

``InitiatorCore`` / ``ResponderCore`` are the sans-IO exchange (CONNECT, SYNC, RTT, attempts);
``Dcutr`` is the service that runs them and makes the direct connection; ``AddressPolicy``
decides which of the peer's addresses may be dialed; ``PunchSockets`` sends the QUIC punch
packets from the listen socket.
"""

from protocols.dcutr._core import (
    DcutrEvent,
    DialRequested,
    InitiatorCore,
    ResponderCore,
    UpgradeFailed,
)
from protocols.dcutr._events import HolePunchFinished
from protocols.dcutr._policy import AddressPolicy, transport_of
from protocols.dcutr._punch import PunchSocket, PunchSockets, punch_target
from protocols.dcutr._service import Dcutr, host_addrs
from protocols.dcutr._wire import (
    MAX_ADDRS,
    MAX_MESSAGE_SIZE,
    PROTOCOL_ID,
    DcutrMessage,
    MalformedMessageError,
    MessageType,
    UnexpectedMessageError,
    decode_message,
    encode_body,
    encode_message,
)

__all__ = [
    "MAX_ADDRS",
    "MAX_MESSAGE_SIZE",
    "PROTOCOL_ID",
    "AddressPolicy",
    "Dcutr",
    "DcutrEvent",
    "DcutrMessage",
    "DialRequested",
    "HolePunchFinished",
    "InitiatorCore",
    "MalformedMessageError",
    "MessageType",
    "PunchSocket",
    "PunchSockets",
    "ResponderCore",
    "UnexpectedMessageError",
    "UpgradeFailed",
    "decode_message",
    "encode_body",
    "encode_message",
    "host_addrs",
    "punch_target",
    "transport_of",
]
