"""Expanding unspecified listen addresses (``/ip4/0.0.0.0``, ``/ip6/::``) into the addresses of
the machine's interfaces, which is what a node listening everywhere can be dialed at.

Linux: IPv4 addresses come from the ``SIOCGIFADDR`` ioctl on each interface, IPv6 from
``/proc/net/if_inet6``. Elsewhere (or if those fail): the host name's addresses. Loopback is
always included. IPv6 link-local addresses are left out: they are not dialable without a zone.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

from multiaddr import Multiaddr

__all__ = ["expand_unspecified", "interface_addresses"]

_SIOCGIFADDR = 0x8915
_IF_INET6 = Path("/proc/net/if_inet6")
_UNSPECIFIED = {"/ip4/0.0.0.0/": 4, "/ip6/::/": 6}
#: The binary forms of those prefixes (protocol code, then the all-zero address): a cheap test
#: that spares formatting every address as text.
_UNSPECIFIED_BYTES = (b"\x04" + bytes(4), b"\x29" + bytes(16))


def _ipv4_by_ioctl() -> list[str]:
    try:
        import fcntl
    except ImportError:  # not a Unix
        return []
    found: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _index, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                reply = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
            except OSError:  # no IPv4 address on this interface, or not Linux
                continue
            found.append(socket.inet_ntoa(reply[20:24]))
    return found


def _ipv6_from_proc(path: Path = _IF_INET6) -> list[str]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    found: list[str] = []
    for line in lines:
        fields = line.split()
        if fields and len(fields[0]) == 32:
            found.append(str(ipaddress.IPv6Address(bytes.fromhex(fields[0]))))
    return found


def _by_hostname() -> list[str]:
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        return []
    return [str(info[4][0]) for info in infos]


def interface_addresses(
    sources: Iterable[Callable[[], list[str]]] = (_ipv4_by_ioctl, _ipv6_from_proc),
) -> tuple[list[str], list[str]]:
    """The machine's IPv4 and IPv6 addresses, loopback first, without duplicates or IPv6
    link-local addresses.

    Args:
        sources: functions returning address strings; the host name's addresses are used
            when they find nothing.

    Returns:
        ``(ipv4, ipv6)`` address strings.
    """
    found = [addr for source in sources for addr in source()] or _by_hostname()
    ips = {ipaddress.ip_address(a.split("%")[0]) for a in [*found, "127.0.0.1", "::1"]}
    usable = sorted(
        (ip for ip in ips if not ip.is_link_local and not ip.is_unspecified),
        key=lambda ip: (not ip.is_loopback, ip.packed),
    )
    return (
        [str(ip) for ip in usable if ip.version == 4],
        [str(ip) for ip in usable if ip.version == 6],
    )


def expand_unspecified(
    addrs: Iterable[Multiaddr], interfaces: tuple[list[str], list[str]] | None = None
) -> list[Multiaddr]:
    """Replace each ``/ip4/0.0.0.0/...`` and ``/ip6/::/...`` address with one per interface
    address of that family; other addresses are kept as they are.

    Args:
        addrs: bound addresses.
        interfaces: ``(ipv4, ipv6)`` addresses to expand to (``interface_addresses()`` if
            ``None``; only looked up when an address needs it).

    Returns:
        The expanded addresses, in order, without duplicates.
    """
    out: list[Multiaddr] = []
    for addr in addrs:
        if not addr.to_bytes().startswith(_UNSPECIFIED_BYTES):
            out.append(addr)
            continue
        text = str(addr)
        prefix = next((p for p in _UNSPECIFIED if text.startswith(p)), None)
        if prefix is None:
            out.append(addr)
            continue
        if interfaces is None:
            interfaces = interface_addresses()
        family = _UNSPECIFIED[prefix]
        ips = interfaces[0] if family == 4 else interfaces[1]
        rest = text[len(prefix) :]
        out.extend(Multiaddr(f"/ip{family}/{ip}/{rest}") for ip in ips)
    return list(dict.fromkeys(out)) if len(out) > 1 else out
