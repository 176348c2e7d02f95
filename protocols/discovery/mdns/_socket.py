"""The multicast UDP socket of mDNS (RFC 6762 section 3 and 11): bound to port 5353 shared with
every other mDNS stack on the host, joined to the group, looping our own datagrams back (peers on
the same host), TTL 255."""

from __future__ import annotations

import ipaddress
import socket
import struct

__all__ = [
    "MDNS_GROUP_V4",
    "MDNS_GROUP_V6",
    "LocalAddresses",
    "open_multicast_socket",
    "open_multicast_socket_v6",
]

#: The IPv4 mDNS group (RFC 6762 section 3).
MDNS_GROUP_V4 = "224.0.0.251"
#: The IPv6 mDNS group, link-local scope (RFC 6762 section 3).
MDNS_GROUP_V6 = "ff02::fb"


def open_multicast_socket(
    *, group: str = MDNS_GROUP_V4, port: int = 5353, interface: str | None = None
) -> socket.socket:
    """A non-blocking IPv4 UDP socket bound to ``0.0.0.0:port`` and joined to ``group``.

    ``SO_REUSEADDR`` and ``SO_REUSEPORT`` let several nodes (ours, js-libp2p's multicast-dns,
    zeroconf) share the port. ``interface`` (an IPv4 address of one interface) selects where the
    group is joined and where our datagrams leave; ``None`` lets the routing table choose.

    Raises:
        OSError: the socket could not be bound or joined (no multicast route, port taken by a
            socket without address reuse).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("0.0.0.0", port))
        local = socket.inet_aton(interface or "0.0.0.0")
        membership = socket.inet_aton(group) + local
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        if interface is not None:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, local)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def open_multicast_socket_v6(
    *, interface: str, group: str = MDNS_GROUP_V6, port: int = 5353
) -> socket.socket:
    """A non-blocking IPv6-only UDP socket bound to ``[::]:port``, joined to ``group`` on the
    interface named ``interface`` (``ff02::fb`` is link-local: it needs one), sending there.

    Raises:
        OSError: no such interface, or the socket could not be bound or joined.
    """
    index = socket.if_nametoindex(interface)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("::", port))
        membership = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, membership)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class LocalAddresses:
    """Whether an IP address belongs to this host: one that a socket can bind to. Answers are
    cached (at most ``max_size`` addresses; the cache is cleared when full)."""

    def __init__(self, max_size: int = 64) -> None:
        self._max = max_size
        self._known: dict[str, bool] = {}

    def check(self, ip: str) -> bool:
        known = self._known.get(ip)
        if known is not None:
            return known
        try:
            parsed = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        family = socket.AF_INET if parsed.version == 4 else socket.AF_INET6
        local = parsed.is_loopback
        if not local:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind((ip, 0))
                    local = True
                except OSError:
                    local = False
        if len(self._known) >= self._max:
            self._known.clear()
        self._known[ip] = local
        return local
