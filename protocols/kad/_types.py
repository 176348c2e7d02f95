"""Plain values shared by the Kademlia core, its stores and its driver: message types, peers as the
DHT describes them, records, and the protocol's errors."""

from __future__ import annotations

import enum

import attrs
from multiaddr import Multiaddr

from p2pstack.errors import P2PError, P2PTimeoutError, RemoteProtocolError
from p2pstack.identity import PeerId

__all__ = [
    "PROTOCOL_ID",
    "ConnectionType",
    "KadError",
    "KadMessage",
    "KadPeer",
    "KadProtocolError",
    "KadTimeout",
    "MessageType",
    "NotFound",
    "Record",
    "RecordValidationError",
]

#: The protocol of the public libp2p DHT (the "Amino" DHT).
PROTOCOL_ID = "/ipfs/kad/1.0.0"


class MessageType(enum.IntEnum):
    """``Message.type`` of the spec."""

    PUT_VALUE = 0
    GET_VALUE = 1
    ADD_PROVIDER = 2
    GET_PROVIDERS = 3
    FIND_NODE = 4
    PING = 5


class ConnectionType(enum.IntEnum):
    """``Message.Peer.connection`` of the spec: the sender's view of its link to that peer."""

    NOT_CONNECTED = 0
    CONNECTED = 1
    CAN_CONNECT = 2
    CANNOT_CONNECT = 3


@attrs.frozen
class KadPeer:
    """A peer as DHT messages carry it: its ID, the addresses the sender knows, and the sender's
    connection state to it."""

    peer_id: PeerId
    addrs: tuple[Multiaddr, ...] = ()
    connection: ConnectionType = ConnectionType.NOT_CONNECTED


@attrs.frozen
class Record:
    """A DHT record. ``time_received`` is an RFC 3339 timestamp set by the storing node ("" when
    absent on the wire)."""

    key: bytes
    value: bytes
    time_received: str = ""


@attrs.frozen(kw_only=True)
class KadMessage:
    """One decoded DHT message (request or response)."""

    type: MessageType
    key: bytes = b""
    record: Record | None = None
    closer_peers: tuple[KadPeer, ...] = ()
    provider_peers: tuple[KadPeer, ...] = ()
    cluster_level: int = 0


class KadError(P2PError):
    """Base class of the DHT's errors."""


class KadProtocolError(KadError, RemoteProtocolError):
    """A peer sent a DHT message that is malformed, oversized or not allowed here."""


class RecordValidationError(KadError):
    """A record failed its namespace's validator (or its key has no known namespace)."""


class NotFound(KadError):
    """A lookup ended without finding what it looked for (a value, a peer)."""


class KadTimeout(KadError, P2PTimeoutError):
    """A DHT request or a whole query ran past its deadline."""
