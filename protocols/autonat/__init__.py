"""AutoNAT: peers dial each other back to tell whether they are reachable from the outside.
v1 (``/libp2p/autonat/1.0.0``) and v2 (``/libp2p/autonat/2/dial-request`` with
``/libp2p/autonat/2/dial-back``), client and server; the decisions land in
``host.addresses.reachability`` (https://github.com/libp2p/specs/tree/master/autonat)."""

from protocols.autonat._dialer import DialerFactory
from protocols.autonat._policy import (
    RateLimiter,
    ReachabilityTracker,
    ServerLimits,
    dialable,
    select_v1_addrs,
    select_v2_addr,
)
from protocols.autonat._schedule import ClientSchedule
from protocols.autonat._server import DialDataCounter, Requester, V2Target, screen_v1, screen_v2
from protocols.autonat._v1 import AutoNAT, AutoNATConfig, local_test_addrs
from protocols.autonat._v2 import AutoNATv2, DialDataRefused, NoDialResponse, V2Result
from protocols.autonat._wire import (
    DIAL_BACK_PROTOCOL_ID,
    DIAL_REQUEST_PROTOCOL_ID,
    MAX_DIAL_DATA_CHUNK,
    MAX_MESSAGE_SIZE,
    PROTOCOL_ID,
    DialDataRequest,
    DialDataResponse,
    DialRequest,
    DialResponse,
    DialStatus,
    ResponseStatus,
    V1Dial,
    V1DialResponse,
    V1Status,
    decode_dial_back,
    decode_dial_back_response,
    decode_v1,
    decode_v2,
    encode_dial_back,
    encode_dial_back_response,
    encode_v1,
    encode_v2,
)

__all__ = [
    "DIAL_BACK_PROTOCOL_ID",
    "DIAL_REQUEST_PROTOCOL_ID",
    "MAX_DIAL_DATA_CHUNK",
    "MAX_MESSAGE_SIZE",
    "PROTOCOL_ID",
    "AutoNAT",
    "AutoNATConfig",
    "AutoNATv2",
    "ClientSchedule",
    "DialDataCounter",
    "DialDataRefused",
    "DialDataRequest",
    "DialDataResponse",
    "DialRequest",
    "DialResponse",
    "DialStatus",
    "DialerFactory",
    "NoDialResponse",
    "RateLimiter",
    "ReachabilityTracker",
    "Requester",
    "ResponseStatus",
    "ServerLimits",
    "V1Dial",
    "V1DialResponse",
    "V1Status",
    "V2Result",
    "V2Target",
    "decode_dial_back",
    "decode_dial_back_response",
    "decode_v1",
    "decode_v2",
    "dialable",
    "encode_dial_back",
    "encode_dial_back_response",
    "encode_v1",
    "encode_v2",
    "local_test_addrs",
    "screen_v1",
    "screen_v2",
    "select_v1_addrs",
    "select_v2_addr",
]
