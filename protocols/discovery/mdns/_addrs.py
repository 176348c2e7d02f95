"""Which addresses mDNS announces and accepts, and reading ``dnsaddr=`` values
(https://github.com/libp2p/specs/blob/master/discovery/mdns.md)."""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Sequence

import attrs
from multiaddr import Multiaddr
from multiaddr.exceptions import Error as MultiaddrError

from p2pstack.identity import PeerId
from p2pstack.multiaddrs import parse_multiaddr, split_peer_id
from protocols.discovery.mdns._config import RateWindow

__all__ = [
    "Dnsaddr",
    "DnsaddrReader",
    "announceable",
    "ip_of",
    "is_loopback_addr",
    "is_loopback_ip",
    "parse_dnsaddr",
    "srv_port",
]

#: Protocols a LAN peer cannot use from an mDNS announcement (as go-libp2p's
#: isSuitableForMDNS: relayed addresses and browser transports).
_UNSUITABLE = frozenset({"p2p-circuit", "ws", "wss", "webrtc", "webrtc-direct", "webtransport"})
_IP = ("ip4", "ip6")
_DNS = ("dns", "dns4", "dns6")


def is_loopback_ip(text: str) -> bool:
    """Whether ``text`` is a loopback IP address (``False`` for anything unparsable)."""
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def ip_of(addr: Multiaddr) -> str | None:
    """The IP of an ``/ip4/...`` or ``/ip6/...`` address, else ``None``."""
    first = _first(addr)
    return first[1] if first is not None and first[0] in _IP else None


def is_loopback_addr(addr: Multiaddr) -> bool:
    ip = ip_of(addr)
    return ip is not None and is_loopback_ip(ip)


def announceable(addr: Multiaddr, *, loopback: bool) -> bool:
    """Whether to put ``addr`` in an mDNS response: an IP address (or a ``.local`` DNS name)
    that is not unspecified, not loopback unless ``loopback``, over no relay or browser
    transport."""
    first = _first(addr)
    if first is None:
        return False
    name, value = first
    if name in _DNS:
        ok = value.lower().endswith(".local")
    elif name in _IP:
        ip = ipaddress.ip_address(value)
        ok = not ip.is_unspecified and not ip.is_multicast and (loopback or not ip.is_loopback)
    else:
        ok = False
    return ok and not any(p.name in _UNSUITABLE for p in addr.protocols())


def srv_port(addrs: Sequence[Multiaddr]) -> int:
    """The port for the SRV record: the first TCP port, else the first UDP port, else 0."""
    for proto in ("tcp", "udp"):
        for addr in addrs:
            try:
                value = addr.value_for_protocol(proto)
            except (MultiaddrError, ValueError):
                continue
            if value is not None and value.isdigit():
                return int(value)
    return 0


@attrs.frozen
class Dnsaddr:
    """One ``dnsaddr=`` value read: the address (without ``/p2p/``), its peer, and whether
    the address is a loopback one."""

    addr: Multiaddr
    peer: PeerId
    loopback: bool


def parse_dnsaddr(value: bytes) -> Dnsaddr | None:
    """Read the text after ``dnsaddr=``: a multiaddr ending in ``/p2p/<id>``; ``None`` for
    anything else."""
    try:
        addr = parse_multiaddr(value.decode("ascii"))
        rest, peer = split_peer_id(addr)
    except (ValueError, UnicodeError, MultiaddrError):
        return None
    if rest is None or peer is None or _first(rest) is None:
        return None
    return Dnsaddr(rest, peer, is_loopback_addr(rest))


class DnsaddrReader:
    """``parse_dnsaddr`` with a cache and a budget.

    Reading a multiaddr and a peer ID costs about 0.5-1.5 ms in Python, so the values seen
    last (peers repeat theirs every query) are kept (``cache_size``, least recently used out),
    and at most ``per_second`` new values are parsed per second; beyond it ``read`` returns
    ``None`` and counts the value in ``skipped`` (a flood of unique strings then costs bounded
    CPU; a real peer's addresses are read at its next response).
    """

    def __init__(self, *, cache_size: int = 1024, per_second: int = 500) -> None:
        self._cache: OrderedDict[bytes, Dnsaddr | None] = OrderedDict()
        self._size = cache_size
        self._budget = RateWindow(per_second, 1.0)
        self.skipped = 0

    def read(self, value: bytes, now: float) -> Dnsaddr | None:
        if value in self._cache:
            self._cache.move_to_end(value)
            return self._cache[value]
        if not self._budget.admit(now):
            self.skipped += 1
            return None
        parsed = self._cache[value] = parse_dnsaddr(value)
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return parsed


def _first(addr: Multiaddr) -> tuple[str, str] | None:
    try:
        items = addr.items()
    except (ValueError, MultiaddrError):
        return None
    if not items:
        return None
    proto, value = items[0]
    return proto.name, str(value)
