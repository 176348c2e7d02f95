"""AutoNAT wiring for the default stacks (a composition root): the dialer hosts AutoNAT servers
dial back from, and the v1 + v2 services with them."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

from p2pstack.builder import open_host
from p2pstack.host import Host
from p2pstack.identity import Identity
from p2pstack.interfaces import Service
from p2pstack.roots.defaults import make_muxers, make_security
from protocols.autonat import AutoNAT, AutoNATConfig, AutoNATv2, DialerFactory
from transports.quic import QuicTransport
from transports.tcp import TcpTransport

__all__ = ["autonat_dialer", "autonat_services"]


def autonat_dialer(security: Sequence[str] = (), muxers: Sequence[str] = ()) -> DialerFactory:
    """A factory of dial-back hosts: TCP and QUIC, the named security channels and muxers, a
    fresh Ed25519 identity each time, no listeners and no services.

    Args:
        security: security channel names (default: noise).
        muxers: muxer names (default: yamux, then mplex).
    """

    def open_dialer() -> AbstractAsyncContextManager[Host]:
        return open_host(
            identity=Identity.generate(),
            transports=[QuicTransport(), TcpTransport()],
            security=make_security(security),
            muxers=make_muxers(muxers),
            services=[],
            listen=[],
        )

    return open_dialer


def autonat_services(
    config: AutoNATConfig | None = None,
    *,
    v2: bool = True,
    security: Sequence[str] = (),
    muxers: Sequence[str] = (),
) -> list[Service]:
    """AutoNAT v1 (and v2) with a dial-back host factory over the same security and muxers.

    Args:
        config: roles, limits and schedule (shared by both versions).
        v2: also run AutoNAT v2.
        security: security channel names of the dial-back hosts.
        muxers: muxer names of the dial-back hosts.
    """
    dialer = autonat_dialer(security, muxers)
    services: list[Service] = [AutoNAT(config, dialer=dialer)]
    if v2:
        services.append(AutoNATv2(config, dialer=dialer))
    return services
