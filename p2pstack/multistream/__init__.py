"""multistream-select 1.0 (``/multistream/1.0.0``): agree on the protocol spoken on a connection
or stream (https://github.com/libp2p/specs/blob/master/connections/README.md#protocol-negotiation).

``negotiate_outbound`` / ``negotiate_inbound`` run it on a ``ByteStream``; ``DialerCore`` and
``ListenerCore`` are the sans-IO state machines underneath; ``LazyOutbound`` proposes one
protocol optimistically (its data follows the proposal without waiting for the echo).
"""

from p2pstack.multistream._core import (
    LS,
    MAX_MESSAGE_LENGTH,
    MAX_REJECTED_PROPOSALS,
    NA,
    PROTOCOL_ID,
    DialerCore,
    ListenerCore,
    decode_message,
    encode_message,
)
from p2pstack.multistream._driver import LazyOutbound, negotiate_inbound, negotiate_outbound

__all__ = [
    "LS",
    "MAX_MESSAGE_LENGTH",
    "MAX_REJECTED_PROPOSALS",
    "NA",
    "PROTOCOL_ID",
    "DialerCore",
    "LazyOutbound",
    "ListenerCore",
    "decode_message",
    "encode_message",
    "negotiate_inbound",
    "negotiate_outbound",
]
