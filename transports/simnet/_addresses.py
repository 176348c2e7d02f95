"""The simulated network's address plan: which IPv4/IPv6 address each node and NAT box has, and
the ``/ip4|ip6/<addr>/tcp|udp/<port>`` multiaddrs it speaks
(https://github.com/multiformats/multiaddr/blob/master/protocols.csv)."""

from __future__ import annotations

import ipaddress
from typing import Literal

import attrs
from multiaddr import Multiaddr
from multiaddr.protocols import P_IP4, P_IP6, P_P2P, P_TCP, P_UDP

__all__ = ["AddressPlan", "Endpoint", "IPAddress", "Proto", "format_endpoint", "parse_endpoint"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: An (address, port) pair.
Endpoint = tuple[IPAddress, int]
Proto = Literal["tcp", "udp"]

_IP_CODES = {P_IP4: 4, P_IP6: 6}
_PROTO_CODES: dict[int, Proto] = {P_TCP: "tcp", P_UDP: "udp"}


def parse_endpoint(addr: Multiaddr) -> tuple[Proto, IPAddress, int] | None:
    """``("tcp" | "udp", address, port)`` of ``/ip4|ip6/<a>/tcp|udp/<p>`` (a trailing
    ``/p2p/<id>`` is ignored), or ``None`` for any other address."""
    items = addr.items()
    if len(items) == 3 and items[2][0].code == P_P2P:
        items = items[:2]
    if len(items) != 2:
        return None
    (ip_proto, ip_text), (l4_proto, port_text) = items
    proto = _PROTO_CODES.get(l4_proto.code)
    if ip_proto.code not in _IP_CODES or proto is None or ip_text is None or port_text is None:
        return None
    return proto, ipaddress.ip_address(ip_text), int(port_text)


def format_endpoint(proto: Proto, endpoint: Endpoint) -> Multiaddr:
    """``/ip4/<a>/<proto>/<p>`` or ``/ip6/<a>/<proto>/<p>``."""
    ip, port = endpoint
    return Multiaddr(f"/ip{ip.version}/{ip}/{proto}/{port}")


def _network(
    text: str | None, version: int
) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if text is None:
        return None
    net = ipaddress.ip_network(text)
    if net.version != version:
        raise ValueError(f"{text} is not an IPv{version} network")
    return net


@attrs.frozen(kw_only=True)
class AddressPlan:
    """Deterministic addresses: node *n* has host number *n* of each pool, NAT box *k* has the
    *k*-th address from the top of the public pools. ``None`` leaves a family out.

    The public pools default to ranges that ``ipaddress`` counts as global, so that address
    policies that skip private ranges treat simulated public nodes as public. Nodes behind a
    translating NAT get host number *n* of the private pools instead (unique network-wide,
    reachable only from behind the same NAT box).

    Attributes:
        ipv4: public IPv4 pool of nodes and NAT boxes.
        ipv6: public IPv6 pool.
        private_ipv4: IPv4 pool behind NAT boxes.
        private_ipv6: IPv6 pool behind NAT boxes.
    """

    ipv4: str | None = "11.0.0.0/8"
    ipv6: str | None = "2600::/16"
    private_ipv4: str = "10.0.0.0/8"
    private_ipv6: str = "fd00::/8"

    def __attrs_post_init__(self) -> None:
        for text, version in ((self.ipv4, 4), (self.ipv6, 6)):
            _network(text, version)
        _network(self.private_ipv4, 4)
        _network(self.private_ipv6, 6)

    def pools(self, private: bool) -> dict[int, ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The pools by IP version (4, 6) of public or private hosts, families left out absent."""
        v4 = self.private_ipv4 if private else self.ipv4
        v6 = self.private_ipv6 if private else self.ipv6
        out: dict[int, ipaddress.IPv4Network | ipaddress.IPv6Network] = {}
        for text, version in ((v4, 4), (v6, 6)):
            net = _network(text, version)
            if net is not None and (self.ipv4 if version == 4 else self.ipv6) is not None:
                out[version] = net
        return out

    def host(self, version: int, index: int, *, private: bool = False) -> IPAddress | None:
        """Address of node ``index`` in family ``version`` (``None``: family left out).

        Raises:
            ValueError: the pool is too small for ``index``.
        """
        net = self.pools(private).get(version)
        if net is None:
            return None
        if not 0 < index < net.num_addresses - 1:
            raise ValueError(f"node {index} does not fit in {net}")
        return net[index]

    def gateway(self, version: int, index: int) -> IPAddress | None:
        """Public address of NAT box ``index`` (1, 2, ...): from the top of the public pool."""
        net = self.pools(False).get(version)
        return None if net is None else net[net.num_addresses - 1 - index]

    def host_index(self, ip: IPAddress, *, private: bool = False) -> int | None:
        """The node number an address of a pool stands for, or ``None`` outside the pools."""
        net = self.pools(private).get(ip.version)
        if net is None or ip not in net:
            return None
        index = int(ip) - int(net.network_address)
        return index if index > 0 else None
