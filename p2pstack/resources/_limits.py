"""Limit configuration of the resource manager: one ``ScopeLimit`` per scope kind, the per-subnet
connection limits and the file-descriptor budget derived from ``RLIMIT_NOFILE``.

Concepts and the subnet defaults follow go-libp2p's resource manager
(https://github.com/libp2p/go-libp2p/tree/master/p2p/host/resource-manager).
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping

import attrs

__all__ = ["Limits", "ScopeLimit", "SubnetLimit", "fd_connection_budget"]

MiB = 1024 * 1024


@attrs.frozen(kw_only=True)
class ScopeLimit:
    """The limits of one scope; ``None`` means unlimited.

    ``connections`` and ``streams`` bound both directions together; the ``_inbound`` and
    ``_outbound`` fields bound one direction. ``memory`` is in bytes.
    """

    connections: int | None = None
    connections_inbound: int | None = None
    connections_outbound: int | None = None
    streams: int | None = None
    streams_inbound: int | None = None
    streams_outbound: int | None = None
    memory: int | None = None


#: A scope with no limit at all.
UNLIMITED = ScopeLimit()


@attrs.frozen(kw_only=True)
class SubnetLimit:
    """At most ``connections`` inbound connections from one IPv``version`` ``/prefix`` network."""

    version: int = attrs.field(validator=attrs.validators.in_((4, 6)))
    prefix: int
    connections: int

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.prefix <= (32 if self.version == 4 else 128):
            raise ValueError(f"prefix /{self.prefix} is out of range for IPv{self.version}")


#: go-libp2p's defaults: 8 per IPv4 address, 8 per IPv6 /56 and 64 per IPv6 /48.
DEFAULT_SUBNET_LIMITS = (
    SubnetLimit(version=4, prefix=32, connections=8),
    SubnetLimit(version=6, prefix=56, connections=8),
    SubnetLimit(version=6, prefix=48, connections=64),
)


def _frozen_map(value: Mapping[str, ScopeLimit]) -> Mapping[str, ScopeLimit]:
    return types.MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class Limits:
    """The resource manager's configuration. Derive variants with ``attrs.evolve``.

    The defaults keep a node on a small machine serving honest peers: a few connections per
    peer and per source address, bounded pending upgrades, bounded streams per peer and per
    protocol for each peer. ``system.connections`` is further capped by the file-descriptor
    budget (``fd_fraction`` of the soft ``RLIMIT_NOFILE`` minus ``fd_reserve``) unless
    ``fd_fraction`` is ``None``.
    """

    #: The whole node.
    system: ScopeLimit = ScopeLimit(
        connections=4096, streams=16384, streams_inbound=8192, memory=1024 * MiB
    )
    #: Connections not yet upgraded (``connections_inbound`` is the pending-upgrade pool).
    transient: ScopeLimit = ScopeLimit(
        connections=256, connections_inbound=128, connections_outbound=128, memory=32 * MiB
    )
    #: Each remote peer (its connections once authenticated, and their streams).
    peer: ScopeLimit = ScopeLimit(
        connections=8, streams=512, streams_inbound=256, streams_outbound=512, memory=64 * MiB
    )
    #: Each connection (its streams and buffers).
    connection: ScopeLimit = ScopeLimit(streams=512, streams_inbound=256, memory=32 * MiB)
    #: Each stream (its buffers).
    stream: ScopeLimit = ScopeLimit(memory=16 * MiB)
    #: Each protocol, over all peers (unless ``protocols`` overrides it).
    protocol: ScopeLimit = ScopeLimit(streams=4096, streams_inbound=2048)
    #: Each protocol, for one peer (unless ``protocol_peers`` overrides it). As large as the
    #: peer scope by default: an application protocol may well run 100 streams to one peer
    #: at once (the interop echo test does); a service that costs more per stream sets its
    #: own (``set_stream_handler(max_inbound_per_peer=)``: ping 4, perf 2).
    protocol_peer: ScopeLimit = ScopeLimit(streams=512, streams_inbound=256, streams_outbound=512)
    #: Each service, over all peers (unless ``services`` overrides it).
    service: ScopeLimit = ScopeLimit(streams=4096, streams_inbound=2048)
    #: Each service, for one peer (unless ``service_peers`` overrides it).
    service_peer: ScopeLimit = ScopeLimit(streams=512, streams_inbound=256, streams_outbound=512)
    protocols: Mapping[str, ScopeLimit] = attrs.field(factory=dict, converter=_frozen_map)
    protocol_peers: Mapping[str, ScopeLimit] = attrs.field(factory=dict, converter=_frozen_map)
    services: Mapping[str, ScopeLimit] = attrs.field(factory=dict, converter=_frozen_map)
    service_peers: Mapping[str, ScopeLimit] = attrs.field(factory=dict, converter=_frozen_map)
    #: Inbound connections per source network.
    subnets: tuple[SubnetLimit, ...] = DEFAULT_SUBNET_LIMITS
    #: Loopback sources (127.0.0.0/8, ::1) are not counted against ``subnets``.
    exempt_loopback: bool = True
    #: Share of the soft ``RLIMIT_NOFILE`` connections may use (``None``: no descriptor cap).
    fd_fraction: float | None = 0.8
    #: Descriptors kept for listeners, files and the rest of the process.
    fd_reserve: int = 64

    @classmethod
    def unlimited(cls) -> Limits:
        """Limits that never refuse anything (usage is still counted)."""
        return cls(
            system=UNLIMITED,
            transient=UNLIMITED,
            peer=UNLIMITED,
            connection=UNLIMITED,
            stream=UNLIMITED,
            protocol=UNLIMITED,
            protocol_peer=UNLIMITED,
            service=UNLIMITED,
            service_peer=UNLIMITED,
            subnets=(),
            fd_fraction=None,
        )

    def protocol_limit(self, protocol: str) -> ScopeLimit:
        """The limit of ``protocol`` over all peers."""
        return self.protocols.get(protocol, self.protocol)

    def protocol_peer_limit(self, protocol: str) -> ScopeLimit:
        """The limit of ``protocol`` for one peer."""
        return self.protocol_peers.get(protocol, self.protocol_peer)

    def service_limit(self, service: str) -> ScopeLimit:
        """The limit of ``service`` over all peers."""
        return self.services.get(service, self.service)

    def service_peer_limit(self, service: str) -> ScopeLimit:
        """The limit of ``service`` for one peer."""
        return self.service_peers.get(service, self.service_peer)

    def effective(self) -> Limits:
        """These limits with ``system.connections`` capped by the file-descriptor budget.

        Returns:
            ``self`` when there is no cap to apply, else a copy with the capped system limit.
        """
        if self.fd_fraction is None:
            return self
        budget = fd_connection_budget(self.fd_fraction, self.fd_reserve)
        current = self.system.connections
        if budget is None or (current is not None and current <= budget):
            return self
        return attrs.evolve(self, system=attrs.evolve(self.system, connections=budget))


def fd_connection_budget(fraction: float = 0.8, reserve: int = 64) -> int | None:
    """How many connections the process's descriptor limit allows.

    The library only reads the limit; raising the soft limit is the application's choice.

    Args:
        fraction: share of the soft ``RLIMIT_NOFILE`` connections may use.
        reserve: descriptors subtracted for everything else.

    Returns:
        ``floor(soft * fraction) - reserve`` (at least 1), or ``None`` when the limit is
        unknown or infinite.
    """
    try:
        import resource
    except ImportError:  # not a POSIX system
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    return max(1, math.floor(soft * fraction) - reserve)
