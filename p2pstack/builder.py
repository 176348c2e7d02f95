"""``open_host``: assemble a host from transports, security channels, muxers and services.

List order is preference: the first security channel and muxer are proposed first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from p2pstack.host import Host, HostConfig
from p2pstack.identity import Identity
from p2pstack.peerstore import PeerStore, Peerstore
from p2pstack.upgrader import DefaultUpgrader

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.dialer import PeerRouting
    from p2pstack.interfaces import Muxer, SecurityChannel, Service, Transport, UpgradedTransport
    from p2pstack.resources import ResourceManager

__all__ = ["open_host"]


@asynccontextmanager
async def open_host(
    *,
    transports: Sequence[Transport | UpgradedTransport],
    security: Sequence[SecurityChannel],
    muxers: Sequence[Muxer],
    identity: Identity | None = None,
    services: Sequence[Service] = (),
    listen: Sequence[Multiaddr | str] = (),
    peerstore: PeerStore | None = None,
    config: HostConfig | None = None,
    resource_manager: ResourceManager | None = None,
    peer_routing: PeerRouting | None = None,
) -> AsyncIterator[Host]:
    """Start a host; leaving the block closes every connection, listener and task.

    Args:
        transports: transports to dial and listen with (the first that handles an address wins):
            raw ``Transport``s, upgraded by the host, or ``UpgradedTransport``s (QUIC, relay);
            a transport that is also a ``Service`` is started before the services.
        security: security channels, most preferred first.
        muxers: stream muxers, most preferred first.
        identity: our key pair (a fresh Ed25519 one if omitted).
        services: protocol services (``Ping()``, ``Identify()``, ...), started in order before
            listening; stopped in reverse order when the block exits, before connections close.
        listen: addresses to listen on (``/ip4/127.0.0.1/tcp/0``).
        peerstore: a peerstore to share or pre-fill (a fresh one if omitted).
        config: limits and timeouts.
        resource_manager: the limits on connections, streams and memory, shared with the
            dialer and the services (``p2pstack.resources``); if omitted, a
            ``LimitedResourceManager`` with ``Limits()`` and the caps of ``config``.
        peer_routing: asked for a peer's addresses when the peerstore has none (a DHT service
            may instead set ``host.dialer.peer_routing`` in its ``start``).

    Raises:
        ValueError: an argument is invalid (no transport, no security channel, no muxer, a bad
            listen address).
        TransportError: a listen address could not be bound.

    Example::

        async with open_host(transports=[TcpTransport()], security=[Noise()],
                             muxers=[Yamux()], services=[Ping()],
                             listen=["/ip4/127.0.0.1/tcp/0"]) as host:
            rtts = await host.service(Ping).ping(peer_id)
    """
    if not transports:
        raise ValueError("open_host needs at least one transport")
    config = config or HostConfig()
    identity = identity or Identity.generate()
    upgrader = DefaultUpgrader(
        identity,
        security,
        muxers,
        timeout=config.upgrade_timeout,
        first_byte_timeout=config.first_byte_timeout,
        security_timeout=config.security_timeout,
    )
    async with anyio.create_task_group() as tg:
        host = Host(
            identity=identity,
            transports=transports,
            upgrader=upgrader,
            peerstore=peerstore or Peerstore(),
            services=services,
            config=config,
            task_group=tg,
            resource_manager=resource_manager,
            peer_routing=peer_routing,
        )
        try:
            async with anyio.create_task_group() as service_tg:
                host._service_tg = service_tg
                try:
                    await host._start(listen)
                    yield host
                finally:
                    # Services leave while their connections are still up (a graceful leave
                    # is network work); then their tasks end; then the connections close.
                    try:
                        with anyio.CancelScope(shield=True):
                            await host._stop_services()
                    finally:
                        service_tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await host._close()
            tg.cancel_scope.cancel()
