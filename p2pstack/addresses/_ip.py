"""IP helpers for the host's addresses: which addresses are public, what identifies a listening
socket, how observers are grouped."""

from __future__ import annotations

import ipaddress
from typing import Literal

from multiaddr import Multiaddr

__all__ = ["Reachability", "ip_of", "is_public_addr", "observer_group", "transport_key"]

#: ``unknown`` until decided; ``public``: dialable from the Internet; ``private``: not.
Reachability = Literal["unknown", "public", "private"]

#: Networks js-libp2p and go-libp2p also treat as non-public besides Python's ``is_private``
#: (100.64/10 shared address space, 198.18/15 benchmarking; Python counts neither).
_NOT_PUBLIC = (ipaddress.ip_network("100.64.0.0/10"), ipaddress.ip_network("198.18.0.0/15"))
_IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def ip_of(addr: Multiaddr) -> _IP | None:
    """The IP address an ``/ip4`` or ``/ip6`` multiaddr starts with, else ``None``."""
    parts = str(addr).split("/")
    if len(parts) < 3 or parts[1] not in ("ip4", "ip6"):
        return None
    try:
        return ipaddress.ip_address(parts[2].split("%")[0])
    except ValueError:
        return None


def is_public_addr(addr: Multiaddr) -> bool:
    """Whether ``addr`` is an IP address routable on the Internet: not private (RFC 1918,
    ULA), loopback, link-local, unspecified, CGNAT (100.64/10), TEST-NET or benchmarking
    (198.18/15). Addresses without an IP (``/dns``, ``/memory``) are not public either."""
    ip = ip_of(addr)
    if ip is None:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in _NOT_PUBLIC if net.version == ip.version):
        return False
    return ip.is_global and not ip.is_multicast


def transport_key(addr: Multiaddr) -> tuple[str, ...] | None:
    """What identifies a listening socket in ``addr`` without its IP: the IP family, the
    transport, the port and the protocols after it (``("ip4", "tcp", "4001")``,
    ``("ip4", "udp", "4001", "quic-v1")``); ``/p2p`` parts are left out. ``None`` for an address
    that does not start with an IP and a TCP or UDP port."""
    parts = [p for p in str(addr).split("/")[1:] if p]
    if len(parts) < 4 or parts[0] not in ("ip4", "ip6") or parts[2] not in ("tcp", "udp"):
        return None
    rest: list[str] = []
    for part in parts[4:]:
        if part == "p2p":
            break
        rest.append(part)
    return (parts[0], parts[2], parts[3], *rest)


def observer_group(addr: Multiaddr) -> str | None:
    """The group an observer's address counts in: its IPv4 address, or its IPv6 /56 (one
    host usually holds a whole /64 or more), like go-libp2p."""
    ip = ip_of(addr)
    if ip is None:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 56), strict=False))
    return str(ip)
