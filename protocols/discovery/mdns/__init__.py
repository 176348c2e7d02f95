"""mDNS peer discovery on the local network
(https://github.com/libp2p/specs/blob/master/discovery/mdns.md): a sans-IO core
(``MdnsCore``) and the host service that runs it over a multicast UDP socket (``Mdns``)."""

from protocols.discovery.mdns._config import MdnsConfig, MdnsStatistics
from protocols.discovery.mdns._core import MDNS_PORT, Destination, MdnsCore
from protocols.discovery.mdns._service import Mdns, random_peer_name
from protocols.discovery.mdns._wire import (
    DEFAULT_SERVICE,
    MAX_PACKET_IN,
    MAX_PACKET_OUT,
    Announcement,
    MdnsPacketError,
    Message,
    Question,
    build_query,
    build_response,
    parse_message,
)

__all__ = [
    "DEFAULT_SERVICE",
    "MAX_PACKET_IN",
    "MAX_PACKET_OUT",
    "MDNS_PORT",
    "Announcement",
    "Destination",
    "Mdns",
    "MdnsConfig",
    "MdnsCore",
    "MdnsPacketError",
    "MdnsStatistics",
    "Message",
    "Question",
    "build_query",
    "build_response",
    "parse_message",
    "random_peer_name",
]
