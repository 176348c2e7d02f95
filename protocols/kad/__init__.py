"""Kademlia DHT (``/ipfs/kad/1.0.0``): peer routing, records and provider records
(https://github.com/libp2p/specs/blob/master/kad-dht/README.md)."""

from protocols.kad._config import KadConfig, KadMode
from protocols.kad._events import (
    KadEvent,
    KadModeChanged,
    KadPeerAdded,
    KadPeerRemoved,
    KadStatistics,
)
from protocols.kad._keyspace import closest, distance, key_of, peer_key
from protocols.kad._service import Kad
from protocols.kad._types import (
    PROTOCOL_ID,
    ConnectionType,
    KadError,
    KadMessage,
    KadPeer,
    KadProtocolError,
    KadTimeout,
    MessageType,
    NotFound,
    Record,
    RecordValidationError,
)

__all__ = [
    "PROTOCOL_ID",
    "ConnectionType",
    "Kad",
    "KadConfig",
    "KadError",
    "KadEvent",
    "KadMessage",
    "KadMode",
    "KadModeChanged",
    "KadPeer",
    "KadPeerAdded",
    "KadPeerRemoved",
    "KadProtocolError",
    "KadStatistics",
    "KadTimeout",
    "MessageType",
    "NotFound",
    "Record",
    "RecordValidationError",
    "closest",
    "distance",
    "key_of",
    "peer_key",
]
