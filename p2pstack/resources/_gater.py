"""Source addresses and the connection gater: IP extraction from multiaddrs, subnet keys for the
per-prefix limits, an allow list, and a deny list of address ranges and peers with expiry.

Address ranges are written as CIDR text (``10.0.0.0/8``, ``2001:db8::/32``, a bare address) or as
a multiaddr (``/ip4/10.0.0.0/ipcidr/8``, ``/ip6/::1``); see
https://github.com/multiformats/multiaddr/blob/master/protocols.csv for ``ipcidr``.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from multiaddr import Multiaddr
from multiaddr.protocols import P_IP4, P_IP6

if TYPE_CHECKING:
    from p2pstack.identity import PeerId

__all__ = [
    "AddressRange",
    "BasicConnectionGater",
    "ConnectionGater",
    "IPAddress",
    "ip_of",
    "parse_range",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AddressRange = str | Multiaddr
Clock = Callable[[], float]


def ip_of(addr: Multiaddr) -> IPAddress | None:
    """The IP address in ``addr`` (IPv4-mapped IPv6 as IPv4), or ``None`` if it has none."""
    for proto, value in addr.items():
        if proto.code in (P_IP4, P_IP6) and value is not None:
            ip = ipaddress.ip_address(str(value))
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                return ip.ipv4_mapped
            return ip
    return None


def parse_range(value: AddressRange) -> IPNetwork:
    """Parse an address range.

    Args:
        value: CIDR text or an address (``"10.0.0.0/8"``, ``"::1"``), or a multiaddr with an IP
            and optional ``/ipcidr/<bits>`` (``/ip4/10.0.0.0/ipcidr/8``).

    Returns:
        The network (host bits are cleared: ``10.1.2.3/8`` is ``10.0.0.0/8``).

    Raises:
        ValueError: ``value`` is not an address range.
    """
    if isinstance(value, str) and not value.startswith("/"):
        return ipaddress.ip_network(value, strict=False)
    addr = value if isinstance(value, Multiaddr) else Multiaddr(value)
    ip = ip_of(addr)
    if ip is None:
        raise ValueError(f"no IP address in {addr}")
    bits: int = ip.max_prefixlen
    for proto, item in addr.items():
        if proto.name == "ipcidr" and item is not None:
            bits = int(str(item))
    return ipaddress.ip_network(f"{ip}/{bits}", strict=False)


class ConnectionGater(Protocol):
    """Decides which peers and addresses may connect at all, and which are exempt from the
    per-address limits. Calls are synchronous, never block and raise nothing."""

    def address_denied(self, addr: Multiaddr) -> str | None:
        """Why connections to or from ``addr`` are refused, or ``None`` if they are not."""
        ...

    def peer_denied(self, peer: PeerId) -> str | None:
        """Why connections with ``peer`` are refused, or ``None`` if they are not."""
        ...

    def allowlisted(self, addr: Multiaddr) -> bool:
        """Whether ``addr`` is exempt from the per-IP and per-subnet connection limits."""
        ...


class BasicConnectionGater:
    """An allow list of ranges, and a deny list of ranges and peers, each entry with an optional
    expiry (a temporary ban).

    Args:
        allow: ranges exempt from the per-IP limits.
        deny: ranges refused for good.
        clock: seconds on a monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        *,
        allow: Iterable[AddressRange] = (),
        deny: Iterable[AddressRange] = (),
        clock: Clock = time.monotonic,
    ) -> None:
        self._clock = clock
        self._allowed: set[IPNetwork] = {parse_range(r) for r in allow}
        self._denied: dict[IPNetwork, float] = {parse_range(r): math.inf for r in deny}
        self._banned: dict[PeerId, float] = {}

    # -- configuration ---------------------------------------------------------------------

    def allow(self, value: AddressRange) -> None:
        """Exempt a range from the per-IP limits.

        Raises:
            ValueError: ``value`` is not an address range.
        """
        self._allowed.add(parse_range(value))

    def disallow(self, value: AddressRange) -> None:
        """Remove a range from the allow list (no error if absent)."""
        self._allowed.discard(parse_range(value))

    def deny(self, value: AddressRange, *, duration: float | None = None) -> None:
        """Refuse connections with a range, for ``duration`` seconds or for good.

        Raises:
            ValueError: ``value`` is not an address range, or ``duration`` is negative.
        """
        self._denied[parse_range(value)] = self._expiry(duration)

    def undeny(self, value: AddressRange) -> None:
        """Lift a denial of a range (no error if absent)."""
        self._denied.pop(parse_range(value), None)

    def ban_peer(self, peer: PeerId, *, duration: float | None = None) -> None:
        """Refuse connections with ``peer``, for ``duration`` seconds or for good.

        Raises:
            ValueError: ``duration`` is negative.
        """
        self._banned[peer] = self._expiry(duration)

    def unban_peer(self, peer: PeerId) -> None:
        """Lift a ban of ``peer`` (no error if absent)."""
        self._banned.pop(peer, None)

    def banned_peers(self) -> list[PeerId]:
        """Peers banned now."""
        now = self._clock()
        return [peer for peer, until in self._banned.items() if until > now]

    def denied_ranges(self) -> list[IPNetwork]:
        """Ranges denied now."""
        now = self._clock()
        return [net for net, until in self._denied.items() if until > now]

    def _expiry(self, duration: float | None) -> float:
        if duration is None:
            return math.inf
        if duration < 0:
            raise ValueError("duration must not be negative")
        return self._clock() + duration

    # -- ConnectionGater ------------------------------------------------------------------

    def address_denied(self, addr: Multiaddr) -> str | None:
        ip = ip_of(addr)
        if ip is None or not self._denied:
            return None
        now = self._clock()
        for net, until in list(self._denied.items()):
            if until <= now:
                del self._denied[net]  # expired: forget it
            elif ip.version == net.version and ip in net:
                return f"address {ip} is in denied range {net}"
        return None

    def peer_denied(self, peer: PeerId) -> str | None:
        until = self._banned.get(peer)
        if until is None:
            return None
        if until <= self._clock():
            del self._banned[peer]
            return None
        return f"peer {peer} is banned"

    def allowlisted(self, addr: Multiaddr) -> bool:
        ip = ip_of(addr)
        return ip is not None and any(
            ip.version == net.version and ip in net for net in self._allowed
        )


def subnet_of(ip: IPAddress, prefix: int) -> IPNetwork:
    """The ``/prefix`` network containing ``ip``."""
    return ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
