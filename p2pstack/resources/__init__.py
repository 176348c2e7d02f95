"""Resource scopes and the resource manager: the one limit system for connections, streams and
memory (system, transient, peer, protocol, service, connection and stream scopes), the
pending-upgrade pool that evicts silent connections first, and the connection gater (allow list,
deny list, bans with expiry).

Concepts and defaults follow go-libp2p's resource manager:
https://github.com/libp2p/go-libp2p/blob/master/p2p/host/resource-manager/README.md

Typical use by a host::

    scope = manager.open_connection("inbound", raw.remote_multiaddr, on_evict=cancel_upgrade)
    ...                                   # ACTIVE_BYTES received: scope.mark_active()
    scope.set_peer(peer)                  # after the upgrade; may raise ResourceLimitExceeded
    stream = scope.open_stream("inbound")
    stream.set_protocol("/ipfs/ping/1.0.0")
    stream.done(); scope.done()

A muxer reserves its receive buffers in the connection's scope (``DefaultUpgrader`` passes it as
``memory=`` to a ``p2pstack.interfaces.MemoryBudgetedMuxer``) through one ``MuxerMemory`` per
connection and one ``BufferReservation`` per stream.
"""

from p2pstack.errors import ConnectionDenied, ResourceLimitExceeded
from p2pstack.resources._activity import ACTIVE_BYTES, ActivityWatcher
from p2pstack.resources._gater import (
    AddressRange,
    BasicConnectionGater,
    ConnectionGater,
    ip_of,
    parse_range,
)
from p2pstack.resources._limits import (
    DEFAULT_SUBNET_LIMITS,
    UNLIMITED,
    Limits,
    ScopeLimit,
    SubnetLimit,
    fd_connection_budget,
)
from p2pstack.resources._manager import (
    LimitedResourceManager,
    NullResourceManager,
    ResourceManager,
    ResourceStatistics,
)
from p2pstack.resources._reservation import DEFAULT_QUANTUM, BufferReservation, MuxerMemory
from p2pstack.resources._scopes import ConnectionScope, Direction, ScopeUsage, StreamScope

__all__ = [
    "ACTIVE_BYTES",
    "DEFAULT_QUANTUM",
    "DEFAULT_SUBNET_LIMITS",
    "UNLIMITED",
    "ActivityWatcher",
    "AddressRange",
    "BasicConnectionGater",
    "BufferReservation",
    "ConnectionDenied",
    "ConnectionGater",
    "ConnectionScope",
    "Direction",
    "LimitedResourceManager",
    "Limits",
    "MuxerMemory",
    "NullResourceManager",
    "ResourceLimitExceeded",
    "ResourceManager",
    "ResourceStatistics",
    "ScopeLimit",
    "ScopeUsage",
    "StreamScope",
    "SubnetLimit",
    "fd_connection_budget",
    "ip_of",
    "parse_range",
]
