"""Identify (``/ipfs/id/1.0.0``) and identify push (``/ipfs/id/push/1.0.0``): peers tell each
other their keys, addresses and protocols
(https://github.com/libp2p/specs/blob/master/identify/README.md)."""

from protocols.identify._service import (
    Identify,
    IdentifyInfo,
    PeerIdentified,
    read_identify_stream,
)
from protocols.identify._wire import (
    MAX_INBOUND_SIZE,
    MAX_MESSAGES,
    MAX_OUTBOUND_SIZE,
    PROTOCOL_ID,
    PUSH_PROTOCOL_ID,
    IdentifyMessage,
    decode_identify,
    decode_identify_stream,
    encode_identify,
    frame_identify,
)

__all__ = [
    "MAX_INBOUND_SIZE",
    "MAX_MESSAGES",
    "MAX_OUTBOUND_SIZE",
    "PROTOCOL_ID",
    "PUSH_PROTOCOL_ID",
    "Identify",
    "IdentifyInfo",
    "IdentifyMessage",
    "PeerIdentified",
    "decode_identify",
    "decode_identify_stream",
    "encode_identify",
    "frame_identify",
    "read_identify_stream",
]
