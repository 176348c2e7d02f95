"""The p2pd control protocol (go-libp2p-daemon's API, also spoken by js-libp2p's daemon,
https://github.com/libp2p/go-libp2p-daemon/blob/master/specs/CONTROL.md): its message schema in
:mod:`p2pstack.p2pd.pb`, a sans-IO codec and :class:`DaemonClient`, which drives any
p2pd-compatible daemon (docs/daemon.md, "The client library"). ``requests`` builds each request
the client sends (``encode_request(requests.identify())``)."""

from p2pstack.p2pd import _requests as requests
from p2pstack.p2pd._channel import ReplyStream
from p2pstack.p2pd._client import MAX_INBOUND, DaemonClient, StreamHandler
from p2pstack.p2pd._codec import (
    MAX_MESSAGE_SIZE,
    DaemonError,
    DaemonProtocolError,
    DhtItem,
    PeerInfo,
    PubsubMessage,
    StreamInfo,
    check_ok,
    decode_dht_item,
    decode_dht_response,
    decode_ps_message,
    decode_response,
    decode_stream_info,
    encode_request,
    peer_info,
)
from p2pstack.p2pd._services import ConnManagerClient, DhtClient, PeerstoreClient, PubsubClient
from p2pstack.p2pd._sockets import widen_buffers

__all__ = [
    "MAX_INBOUND",
    "MAX_MESSAGE_SIZE",
    "ConnManagerClient",
    "DaemonClient",
    "DaemonError",
    "DaemonProtocolError",
    "DhtClient",
    "DhtItem",
    "PeerInfo",
    "PeerstoreClient",
    "PubsubClient",
    "PubsubMessage",
    "ReplyStream",
    "StreamHandler",
    "StreamInfo",
    "check_ok",
    "decode_dht_item",
    "decode_dht_response",
    "decode_ps_message",
    "decode_response",
    "decode_stream_info",
    "encode_request",
    "peer_info",
    "requests",
    "widen_buffers",
]
