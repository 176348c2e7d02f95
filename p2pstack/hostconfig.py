"""The host's configuration (``HostConfig``), its statistics snapshot (``HostStatistics``) and
the resource manager a host builds when it is given none."""

from __future__ import annotations

import attrs

from p2pstack import __version__
from p2pstack.addresses import AddressConfig
from p2pstack.connmgr import ConnectionManagerConfig
from p2pstack.dialer import DialPolicy
from p2pstack.resources import LimitedResourceManager, Limits

__all__ = ["HostConfig", "HostStatistics", "default_resource_manager"]


@attrs.frozen(kw_only=True)
class HostConfig:
    """Host limits and timeouts (seconds). Derive variants with ``attrs.evolve``."""

    #: Time for one transport dial (TCP connect) to one address.
    dial_timeout: float = 10.0
    #: Time for the whole upgrade (security and muxer negotiation and handshake), counted
    #: from the start of the upgrade like the two stage deadlines below.
    upgrade_timeout: float = 15.0
    #: Time until the remote's first byte of an upgrade: silent connections go fast.
    first_byte_timeout: float = 3.0
    #: Time until the security handshake of an upgrade is done.
    security_timeout: float = 10.0
    #: Time for multistream-select on a new stream.
    negotiate_timeout: float = 10.0
    #: Most connections held at once, inbound and outbound (also capped by the descriptor
    #: budget from ``RLIMIT_NOFILE``). Used when ``open_host`` is given no resource manager.
    max_connections: int = 4096
    #: Most inbound connections mid-upgrade at once; when full, the oldest one that has sent
    #: nothing is closed to admit a newcomer. Used when no resource manager is given.
    max_pending_upgrades: int = 256
    #: Events an event subscription buffers by default (``host.events.subscribe``).
    event_buffer: int = 1024
    #: Time each service's ``stop()`` is given when the host closes.
    service_stop_timeout: float = 5.0
    #: Time given to connections to close gracefully when the host closes.
    close_timeout: float = 5.0
    #: How long the losing connection of a simultaneous dial may finish its streams.
    drain_timeout: float = 10.0
    #: The least time a losing connection stays open (within ``drain_timeout``): if the peer
    #: closes the connection we kept meanwhile (it may not apply our rule), the loser is kept.
    drain_grace: float = 2.0
    #: Which addresses to dial, stagger between attempts, per-peer backoff.
    dial_policy: DialPolicy = attrs.field(factory=DialPolicy)
    #: Watermarks for trimming connections; ``None``: trim back to ``max_connections`` only
    #: when it is exceeded (outbound dials are not refused).
    connection_manager: ConnectionManagerConfig | None = None
    #: Observed-address confirmation threshold, expiry and bounds (``host.addresses``).
    addresses: AddressConfig = attrs.field(factory=AddressConfig)
    agent_version: str = f"p2pstack/{__version__}"
    protocol_version: str = "ipfs/0.1.0"


@attrs.frozen(kw_only=True)
class HostStatistics:
    """A snapshot of the host's state.

    Attributes:
        dropped_events: events dropped by lossy event subscriptions that were full.
        handler_failures: stream handlers that raised a non-network error.
        event_callback_failures: event callbacks that raised.
    """

    connections: int
    streams: int
    pending_upgrades: int
    listeners: int
    dropped_events: int
    handler_failures: int = 0
    event_callback_failures: int = 0


def default_resource_manager(config: HostConfig) -> LimitedResourceManager:
    """The resource manager a host uses when given none: ``Limits()`` with the system
    connection cap and the pending-upgrade pool taken from ``config``.

    Args:
        config: the host's configuration.

    Returns:
        A fresh ``LimitedResourceManager``.
    """
    base = Limits()
    return LimitedResourceManager(
        attrs.evolve(
            base,
            system=attrs.evolve(base.system, connections=config.max_connections),
            transient=attrs.evolve(
                base.transient,
                connections=None,
                connections_inbound=config.max_pending_upgrades,
            ),
        )
    )
