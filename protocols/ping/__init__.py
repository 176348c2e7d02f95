"""Ping (``/ipfs/ping/1.0.0``): liveness and round-trip time
(https://github.com/libp2p/specs/blob/master/ping/ping.md)."""

from protocols.ping._service import Ping, ping_round_trips, serve_ping
from protocols.ping._wire import PAYLOAD_SIZE, PROTOCOL_ID, PayloadBuffer, check_echo

__all__ = [
    "PAYLOAD_SIZE",
    "PROTOCOL_ID",
    "PayloadBuffer",
    "Ping",
    "check_echo",
    "ping_round_trips",
    "serve_ping",
]
