"""Rendezvous (``/rendezvous/1.0.0``): a point where peers register in namespaces and discover
each other (https://github.com/libp2p/specs/blob/master/rendezvous/README.md).

Typical use::

    point = RendezvousPoint()                       # a service on the point's host
    client = Rendezvous(
        ["/ip4/10.0.0.1/tcp/4001/p2p/12D3KooW..."], register=["my-app"], discover=["my-app"]
    )                                               # a service and a PeerDiscovery
    async for found in client.discovered(): ...

Parts: ``_wire`` (messages, records), ``_registry`` (the point's sans-IO core), ``_point`` and
``_client`` (the drivers), ``_exchange`` (the client's single requests).
"""

from protocols.discovery.rendezvous._client import Rendezvous
from protocols.discovery.rendezvous._exchange import RendezvousRegistration
from protocols.discovery.rendezvous._point import PointStatistics, RendezvousPoint
from protocols.discovery.rendezvous._registry import (
    Registration,
    Registry,
    RegistryConfig,
    RegistryStatistics,
)
from protocols.discovery.rendezvous._wire import (
    DEFAULT_TTL,
    MAX_NAMESPACE_LENGTH,
    MAX_RECORD_SIZE,
    MAX_REQUEST_SIZE,
    MAX_RESPONSE_SIZE,
    PROTOCOL_ID,
    Discover,
    DiscoverResponse,
    Message,
    OpenedRecord,
    Register,
    RegisterResponse,
    RendezvousError,
    RendezvousRefused,
    Status,
    Unregister,
    decode_message,
    encode_message,
    encode_peer_info,
    open_record,
)

__all__ = [
    "DEFAULT_TTL",
    "MAX_NAMESPACE_LENGTH",
    "MAX_RECORD_SIZE",
    "MAX_REQUEST_SIZE",
    "MAX_RESPONSE_SIZE",
    "PROTOCOL_ID",
    "Discover",
    "DiscoverResponse",
    "Message",
    "OpenedRecord",
    "PointStatistics",
    "Register",
    "RegisterResponse",
    "Registration",
    "Registry",
    "RegistryConfig",
    "RegistryStatistics",
    "Rendezvous",
    "RendezvousError",
    "RendezvousPoint",
    "RendezvousRefused",
    "RendezvousRegistration",
    "Status",
    "Unregister",
    "decode_message",
    "encode_message",
    "encode_peer_info",
    "open_record",
]
