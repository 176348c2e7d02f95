"""Settings and counters of mDNS discovery
(https://github.com/libp2p/specs/blob/master/discovery/mdns.md)."""

from __future__ import annotations

import attrs

from protocols.discovery.mdns._wire import DEFAULT_SERVICE

__all__ = ["MdnsConfig", "MdnsStatistics", "RateWindow"]


@attrs.frozen(kw_only=True)
class MdnsConfig:
    """Settings of mDNS discovery.

    Attributes:
        service: the DNS-SD service name (``_p2p._udp.local``).
        interval: seconds between our queries (js-libp2p's default is 10 s).
        ttl: TTL of our records (js-libp2p and go-libp2p use 120 s).
        response_interval: least time between two multicast responses (RFC 6762: 1 s).
        max_peers: instances remembered; beyond it the least recently seen is forgotten.
        max_addrs: addresses announced, and accepted per peer.
        max_unicast_per_interval: legacy unicast replies per ``response_interval`` (the rest
            of a flood of them is dropped).
        max_datagrams_per_second: datagrams read per second; the rest of a flood is dropped
            unread (counted in ``dropped``). With the next bound it caps the CPU a flood
            takes: a full 1.4 kB datagram costs dnspython about 1-4 ms.
        max_addr_parses_per_second: ``dnsaddr=`` values not seen recently parsed per second
            (a multiaddr and peer ID cost 0.5-1.5 ms); beyond it they are skipped (counted in
            ``skipped_addrs``) until the next second.
    """

    service: str = DEFAULT_SERVICE
    interval: float = 10.0
    ttl: int = 120
    response_interval: float = 1.0
    max_peers: int = 256
    max_addrs: int = 32
    max_unicast_per_interval: int = 8
    max_datagrams_per_second: int = 200
    max_addr_parses_per_second: int = 500

    def __attrs_post_init__(self) -> None:
        if not (self.interval > 0 and self.response_interval >= 0):
            raise ValueError("mDNS intervals must be positive")
        bounds = (
            self.ttl,
            self.max_peers,
            self.max_addrs,
            self.max_datagrams_per_second,
            self.max_addr_parses_per_second,
        )
        if min(bounds) < 1 or self.ttl > 0xFFFFFFFF or self.max_unicast_per_interval < 0:
            raise ValueError("mDNS ttl, max_peers, max_addrs and rates must be at least 1")


@attrs.frozen(kw_only=True)
class MdnsStatistics:
    """Counters of one mDNS core."""

    queries_sent: int
    responses_sent: int
    received: int
    dropped: int
    skipped_addrs: int
    malformed: int
    discoveries: int
    peers: int


class RateWindow:
    """Counts events in fixed windows of ``length`` seconds; ``admit(now)`` is false once
    ``limit`` events were admitted in the current window."""

    __slots__ = ("_count", "_length", "_limit", "_start")

    def __init__(self, limit: int, length: float) -> None:
        self._limit = limit
        self._length = length
        self._start = -float("inf")
        self._count = 0

    def admit(self, now: float) -> bool:
        if now - self._start >= self._length:
            self._start, self._count = now, 0
        if self._count >= self._limit:
            return False
        self._count += 1
        return True
