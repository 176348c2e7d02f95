"""Default stacks (a composition root: the one core module allowed to import ``transports`` and
``protocols``): name → instance tables for the CLI and a ready-made TCP + Noise + yamux/mplex host.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from multiaddr import Multiaddr

from p2pstack.builder import open_host
from p2pstack.host import Host, HostConfig
from p2pstack.identity import Identity
from p2pstack.interfaces import Muxer, SecurityChannel, Service, Transport, UpgradedTransport
from p2pstack.resources import ResourceManager
from protocols.identify import Identify
from protocols.perf import Perf
from protocols.ping import Ping
from protocols.relay import CircuitRelayTransport
from transports.memory import MemoryTransport
from transports.mplex import Mplex
from transports.noise import Noise
from transports.plaintext import Plaintext
from transports.quic import QuicTransport
from transports.tcp import TcpTransport
from transports.yamux import Yamux

if TYPE_CHECKING:
    from p2pstack.discovery import PeerDiscovery
    from protocols.discovery import DiscoveryConfig
    from protocols.kad import KadConfig

__all__ = [
    "MUXERS",
    "SECURITY",
    "default_services",
    "make_muxers",
    "make_security",
    "open_default_host",
]


def _tls() -> SecurityChannel:
    # Imported on use: pyOpenSSL and X.509 cost start-up time that Noise users need not pay.
    from transports.tls import Tls

    return Tls()


#: Security channels by the name the CLI uses.
SECURITY: dict[str, Callable[[], SecurityChannel]] = {
    "noise": Noise,
    "plaintext": Plaintext,
    "tls": _tls,
}
#: Stream muxers by the name the CLI uses.
MUXERS: dict[str, Callable[[], Muxer]] = {"yamux": Yamux, "mplex": Mplex}


def make_security(names: Sequence[str]) -> list[SecurityChannel]:
    """Security channel instances in the given preference order (default: noise).

    Raises:
        ValueError: an unknown name.
    """
    out: list[SecurityChannel] = []
    for name in names or ["noise"]:
        if name not in SECURITY:
            choices = ", ".join(SECURITY)
            raise ValueError(f"unknown security channel {name!r} (choose from {choices})")
        out.append(SECURITY[name]())
    return out


def make_muxers(names: Sequence[str]) -> list[Muxer]:
    """Muxer instances in the given preference order (default: yamux, then mplex).

    Raises:
        ValueError: an unknown name.
    """
    out: list[Muxer] = []
    for name in names or ["yamux", "mplex"]:
        if name not in MUXERS:
            raise ValueError(f"unknown muxer {name!r} (choose from {', '.join(MUXERS)})")
        out.append(MUXERS[name]())
    return out


def default_services(*, serve_perf: bool = False) -> list[Service]:
    """Identify, ping and perf.

    Args:
        serve_perf: also serve ``/perf/1.0.0`` (with ``Perf``'s per-peer size caps and rate
            limit). Off by default: answering perf costs real bandwidth, so a library host
            opts in; ``p2pstack node`` does.
    """
    return [Identify(), Ping(), Perf(serve=serve_perf)]


@asynccontextmanager
async def open_default_host(
    *,
    identity: Identity | None = None,
    listen: Sequence[Multiaddr | str] = (),
    security: Sequence[str] = (),
    muxers: Sequence[str] = (),
    services: Sequence[Service] | None = None,
    config: HostConfig | None = None,
    serve_perf: bool = False,
    resource_manager: ResourceManager | None = None,
    kad: KadConfig | None = None,
    discovery: Sequence[PeerDiscovery] | None = None,
    discovery_config: DiscoveryConfig | None = None,
    circuit: CircuitRelayTransport | None = None,
    transports: Sequence[Transport | UpgradedTransport] | None = None,
) -> AsyncIterator[Host]:
    """A host with QUIC-v1, TCP, memory and circuit relay v2 transports, the named security
    channels and muxers (for TCP and relayed connections), and the default services.

    Args:
        identity: the host's identity (default: a fresh Ed25519 one).
        listen: addresses to listen on.
        security: security channel names in preference order (default: noise).
        muxers: muxer names in preference order (default: yamux, then mplex).
        services: the services (default: ``default_services(serve_perf=serve_perf)``).
        config: the host's settings.
        serve_perf: see ``default_services``.
        resource_manager: see ``open_host``.
        kad: also run the Kademlia DHT (``protocols.kad.Kad``) with this configuration, after
            the other services; ``host.service(Kad)`` returns it.
        discovery: also run the discovery service (``protocols.discovery.Discovery``) over
            these sources, after the other services, plus the DHT's random walk when ``kad``
            sets ``random_walk_interval``.
        discovery_config: the discovery service's settings (its defaults if ``None``).
        circuit: the circuit relay transport (dials and listens on ``/p2p-circuit``
            addresses; a fresh one if ``None``), for services that need it (``AutoRelay``).
        transports: replaces the default QUIC, TCP and memory transports (hole punching needs
            TCP with port reuse and QUIC with punch sockets); the circuit transport is added
            to them.

    Yields:
        The started host.

    Raises:
        ValueError: an unknown security channel or muxer name.
    """
    chosen = default_services(serve_perf=serve_perf) if services is None else list(services)
    if kad is not None:
        from protocols.kad import Kad  # imported only by the DHT's users: it costs start-up time

        identify = next((s for s in chosen if isinstance(s, Identify)), None)
        ready = None if identify is None else identify.identified_by
        chosen.append(Kad(kad, before_request=ready))
    if discovery is not None:
        chosen.append(_discovery_service(chosen, discovery, discovery_config))
    async with open_host(
        identity=identity,
        transports=[
            *(
                [QuicTransport(), TcpTransport(), MemoryTransport()]
                if transports is None
                else transports
            ),
            circuit or CircuitRelayTransport(),
        ],
        security=make_security(security),
        muxers=make_muxers(muxers),
        services=chosen,
        listen=listen,
        config=config,
        resource_manager=resource_manager,
    ) as host:
        yield host


def _discovery_service(
    services: Sequence[Service],
    sources: Sequence[PeerDiscovery],
    config: DiscoveryConfig | None,
) -> Service:
    """The discovery service over ``sources``, plus the random walk of a DHT among
    ``services`` that has one configured."""
    from protocols.discovery import Discovery
    from protocols.kad import Kad

    chosen = list(sources)
    for service in services:
        if isinstance(service, Kad) and service.config.random_walk_interval is not None:
            chosen.append(service.discovery)
    return Discovery(chosen, config)
