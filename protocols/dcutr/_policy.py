"""Which addresses learned from a remote DCUtR peer we may dial
(https://github.com/libp2p/specs/blob/master/relay/DCUtR.md: peers exchange "observed (and
possibly predicted) addresses", which only make sense when they are public).

A remote peer chooses what it puts in ``ObsAddrs``; dialing them blindly would let it aim our
host at our own LAN, loopback services or anything else. So, by default, only global unicast
IP addresses with TCP or QUIC-v1 are dialed. ``allow_private`` admits private, loopback,
link-local, shared (100.64/10) and documentation/benchmark ranges too (for tests in network
namespaces and on loopback); unspecified and multicast addresses are never dialed.
"""

from __future__ import annotations

import ipaddress

import attrs
from multiaddr import Multiaddr
from multiaddr.protocols import (
    P_DNS,
    P_DNS4,
    P_DNS6,
    P_IP4,
    P_IP6,
    P_P2P,
    P_QUIC1,
    P_TCP,
    P_UDP,
)

__all__ = ["AddressPolicy", "transport_of"]


def transport_of(addr: Multiaddr, *, dns: bool = False) -> str | None:
    """``"tcp"`` for ``/ip4|ip6/../tcp/..``, ``"quic-v1"`` for ``/ip4|ip6/../udp/../quic-v1``
    (a trailing ``/p2p/<id>`` allowed), else ``None`` (relayed, other transports; DNS names
    unless ``dns``)."""
    try:
        codes = [proto.code for proto, _ in addr.items()]
    except ValueError:  # the multiaddr library's parse errors are ValueErrors
        return None
    if codes and codes[-1] == P_P2P:
        codes = codes[:-1]
    hosts = (P_IP4, P_IP6, P_DNS, P_DNS4, P_DNS6) if dns else (P_IP4, P_IP6)
    if len(codes) < 2 or codes[0] not in hosts:
        return None
    if codes[1:] == [P_TCP]:
        return "tcp"
    if codes[1:] == [P_UDP, P_QUIC1]:
        return "quic-v1"
    return None


@attrs.frozen(kw_only=True)
class AddressPolicy:
    """Filters the addresses a remote peer sent before we dial any of them.

    Attributes:
        allow_private: also dial non-global addresses (private, loopback, link-local, shared,
            test and benchmark ranges). Off by default: never enable it on a host that talks
            to untrusted peers outside a test network.
        transports: the transports we can hole-punch with.
    """

    allow_private: bool = False
    transports: frozenset[str] = frozenset({"tcp", "quic-v1"})

    def dialable(self, addr: Multiaddr) -> bool:
        """Whether ``addr`` may be dialed for a hole punch."""
        if transport_of(addr) not in self.transports:
            return False
        value = addr.items()[0][1]
        try:
            ip = ipaddress.ip_address(str(value))
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_unspecified or ip.is_multicast:
            return False
        if ip.is_global:
            return True
        # 240/4 and the like are "reserved" (never assigned); ::1 sits in a reserved block too.
        if ip.is_reserved and not ip.is_loopback:
            return False
        return self.allow_private

    def filter(self, addrs: tuple[Multiaddr, ...]) -> tuple[Multiaddr, ...]:
        """The dialable addresses of ``addrs``, in order, without duplicates."""
        seen: set[bytes] = set()
        out: list[Multiaddr] = []
        for addr in addrs:
            key = addr.to_bytes()
            if key not in seen and self.dialable(addr):
                seen.add(key)
                out.append(addr)
        return tuple(out)
