"""The sans-IO core of libp2p mDNS discovery
(https://github.com/libp2p/specs/blob/master/discovery/mdns.md): datagrams and time in,
datagrams to send and discovered peers out. No sockets, no clock, no randomness (the peer-name
is given).

What it does:

* queries ``_p2p._udp.local PTR`` at start and every ``interval`` (js-libp2p: 10 s);
* answers queries about our service, instance or host name (our own queries too: the spec says
  a peer answers its own query so that others discover it passively) with a multicast response,
  at most one per ``response_interval`` (RFC 6762 section 6: "MUST NOT multicast a record ...
  until at least one second has elapsed"; queries in between are answered together when it
  ends), unless the query already lists our PTR as a known answer (section 7.1); a legacy
  unicast query (source port not 5353) gets a unicast reply (section 6.7);
* reads responses into ``DiscoveredPeer``s, ignoring our own, keeping at most ``max_peers``
  instances (oldest first out) so that a flood of responses holds bounded state, and reporting
  an instance again only when its peer or addresses change or its TTL ran out.

Loopback addresses are announced only in answer to a query from this host (the driver tells;
by default a loopback source address), and accepted only from such a source.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict, deque
from collections.abc import Sequence

import attrs
import dns.rdatatype
from multiaddr import Multiaddr

from p2pstack.discovery import DiscoveredPeer
from p2pstack.identity import PeerId
from p2pstack.multiaddrs import with_peer_id
from protocols.discovery.mdns._addrs import (
    DnsaddrReader,
    announceable,
    ip_of,
    is_loopback_ip,
    srv_port,
)
from protocols.discovery.mdns._config import MdnsConfig, MdnsStatistics, RateWindow
from protocols.discovery.mdns._wire import (
    META_QUERY,
    Host,
    MdnsPacketError,
    Message,
    build_query,
    build_response,
    parse_message,
    txt_strings,
)

__all__ = ["MDNS_PORT", "Destination", "MdnsCore"]

#: The mDNS port (RFC 6762 section 3).
MDNS_PORT = 5353
#: Where a datagram goes: ``None`` is the multicast group, otherwise ``(ip, port)``.
Destination = tuple[str, int] | None
#: ``dnsaddr=`` (the spec) and py-libp2p's extra keys ``dnsaddr2=``, ``dnsaddr3=``, ...
_DNSADDR = re.compile(rb"^dnsaddr[0-9]{0,3}=")
_ASKED = {
    dns.rdatatype.PTR,
    dns.rdatatype.SRV,
    dns.rdatatype.TXT,
    dns.rdatatype.A,
    dns.rdatatype.AAAA,
    dns.rdatatype.ANY,
}


@attrs.define
class _Seen:
    peer: PeerId
    addrs: tuple[Multiaddr, ...]
    expires: float


class MdnsCore:
    """mDNS discovery for one node (see the module docstring).

    Args:
        peer_id: our peer ID (announced in ``/p2p/`` and used to ignore ourselves).
        peer_name: our random instance label (at most 63 bytes).
        config: settings.
        now: the current time; the first query is due at once.

    Raises:
        ValueError: ``peer_name`` is empty, longer than 63 bytes or contains a dot.
    """

    def __init__(
        self, *, peer_id: PeerId, peer_name: str, config: MdnsConfig | None = None, now: float
    ) -> None:
        if not 0 < len(peer_name.encode()) <= 63 or "." in peer_name:
            raise ValueError("an mDNS peer-name is one DNS label of 1 to 63 bytes")
        self.peer_id = peer_id
        self.peer_name = peer_name
        self.config = config or MdnsConfig()
        self._addrs: tuple[Multiaddr, ...] = ()
        self._out: deque[tuple[bytes, Destination]] = deque()
        self._events: deque[DiscoveredPeer] = deque(maxlen=self.config.max_peers)
        self._seen: OrderedDict[str, _Seen] = OrderedDict()
        self._next_query = now
        self._last_response = -math.inf
        self._respond_at: float | None = None
        self._respond_loopback = False
        self._respond_meta = False
        self._unicast = RateWindow(
            self.config.max_unicast_per_interval, self.config.response_interval
        )
        self._receiving = RateWindow(self.config.max_datagrams_per_second, 1.0)
        self._dnsaddrs = DnsaddrReader(per_second=self.config.max_addr_parses_per_second)
        self._stats = dict.fromkeys(
            ("queries_sent", "responses_sent", "received", "dropped", "malformed", "discoveries"),
            0,
        )

    # -- inputs ----------------------------------------------------------------------------

    def set_addrs(self, addrs: Sequence[Multiaddr]) -> None:
        """Our dialable addresses (with or without ``/p2p/``), read at each response."""
        self._addrs = tuple(addrs)

    def receive_datagram(
        self, data: bytes, source: tuple[str, int], now: float, *, local: bool | None = None
    ) -> None:
        """Take one datagram received from ``source`` (ip, port). ``local`` says whether the
        sender is on this host (default: whether its address is a loopback one): loopback
        addresses are exchanged only with local peers. Malformed datagrams are counted and
        dropped; nothing here raises for bad input."""
        self._stats["received"] += 1
        if not self._receiving.admit(now):
            self._stats["dropped"] += 1
            return
        try:
            msg = parse_message(data, self.config.service)
        except MdnsPacketError:
            self._stats["malformed"] += 1
            return
        loopback = is_loopback_ip(source[0]) if local is None else local
        if msg.is_response:
            if source[1] == MDNS_PORT:  # RFC 6762 section 11: other source ports are ignored
                self._read_response(msg, loopback, now)
        else:
            self._read_query(msg, source, loopback, now)

    def handle_timer(self, now: float) -> None:
        """Send the periodic query and any response that waited for ``response_interval``."""
        if now >= self._next_query:
            self._out.append((build_query(self.config.service), None))
            self._stats["queries_sent"] += 1
            self._next_query += self.config.interval
            if self._next_query <= now:  # late by a period or more: skip the missed ones
                self._next_query = now + self.config.interval
        if self._respond_at is not None and now >= self._respond_at:
            self._send_response(now)

    def goodbye(self) -> None:
        """Queue a response with TTL 0 so that caches drop us (RFC 6762 section 10.1)."""
        wire = self._response(loopback=True, ttl=0, meta=False, reply_to=None)
        if wire is not None:
            self._out.append((wire, None))

    # -- outputs ---------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        if self._respond_at is None:
            return self._next_query
        return min(self._next_query, self._respond_at)

    def datagrams_to_send(self) -> list[tuple[bytes, Destination]]:
        """Datagrams queued since the last call, with where each goes."""
        out = list(self._out)
        self._out.clear()
        return out

    def next_event(self) -> DiscoveredPeer | None:
        """The next discovered peer, or ``None``."""
        return self._events.popleft() if self._events else None

    def statistics(self) -> MdnsStatistics:
        return MdnsStatistics(
            **self._stats, skipped_addrs=self._dnsaddrs.skipped, peers=len(self._seen)
        )

    # -- queries ---------------------------------------------------------------------------

    def _read_query(
        self, msg: Message, source: tuple[str, int], loopback: bool, now: float
    ) -> None:
        service = self.config.service.lower()
        instance = f"{self.peer_name}.{service}".lower()
        hostname = f"{self.peer_name}.local".lower()
        ours = meta = False
        only_ptr = True
        for q in msg.questions:
            if q.rdtype not in _ASKED:
                continue
            if q.name == service and q.rdtype in (dns.rdatatype.PTR, dns.rdatatype.ANY):
                ours = True
            elif q.name == META_QUERY and q.rdtype in (dns.rdatatype.PTR, dns.rdatatype.ANY):
                ours = meta = True
                only_ptr = False
            elif q.name in (instance, hostname):
                ours = True
                only_ptr = False
        if not ours:
            return
        if only_ptr and self._known_by_querier(msg):
            return
        if source[1] != MDNS_PORT:
            self._unicast_reply(msg, source, loopback, now)
            return
        self._respond_loopback |= loopback
        self._respond_meta |= meta
        if self._respond_at is None:
            self._respond_at = max(now, self._last_response + self.config.response_interval)
        if now >= self._respond_at:
            self._send_response(now)

    def _known_by_querier(self, msg: Message) -> bool:
        label = self.peer_name.lower()
        half = self.config.ttl / 2
        return any(name.lower() == label and ttl >= half for name, ttl in msg.known_answers)

    def _unicast_reply(
        self, msg: Message, source: tuple[str, int], loopback: bool, now: float
    ) -> None:
        if not self._unicast.admit(now):
            return
        wire = self._response(loopback=loopback, ttl=self.config.ttl, meta=False, reply_to=msg)
        if wire is not None:
            self._out.append((wire, source))
            self._stats["responses_sent"] += 1

    def _send_response(self, now: float) -> None:
        wire = self._response(
            loopback=self._respond_loopback,
            ttl=self.config.ttl,
            meta=self._respond_meta,
            reply_to=None,
        )
        self._respond_at = None
        self._respond_loopback = self._respond_meta = False
        if wire is None:
            return
        self._last_response = now
        self._out.append((wire, None))
        self._stats["responses_sent"] += 1

    def _response(
        self, *, loopback: bool, ttl: int, meta: bool, reply_to: Message | None
    ) -> bytes | None:
        addrs = [a for a in self._addrs if announceable(a, loopback=loopback)][
            : self.config.max_addrs
        ]
        if not addrs:
            return None
        texts = [str(with_peer_id(a, self.peer_id)) for a in addrs]
        host = Host(
            peer_name=self.peer_name,
            txt=txt_strings(texts),
            port=srv_port(addrs),
            ips=tuple(dict.fromkeys(ip for a in addrs if (ip := ip_of(a)) is not None)),
        )
        return build_response(
            host, service=self.config.service, ttl=ttl, meta=meta, reply_to=reply_to
        )

    # -- responses -------------------------------------------------------------------------

    def _read_response(self, msg: Message, loopback: bool, now: float) -> None:
        own = self.peer_name.lower()
        for ann in msg.announcements:
            key = ann.instance.lower()
            if key == own:
                continue
            if ann.ttl == 0:
                self._seen.pop(key, None)
                continue
            found = self._peer_of(ann.strings, loopback, now)
            if found is not None:
                self._remember(key, *found, ann.ttl, now)

    def _peer_of(
        self, strings: Sequence[bytes], loopback: bool, now: float
    ) -> tuple[PeerId, tuple[Multiaddr, ...]] | None:
        peer: PeerId | None = None
        addrs: dict[bytes, Multiaddr] = {}
        for text in strings:
            match = _DNSADDR.match(text)
            if match is None or len(addrs) >= self.config.max_addrs:
                continue
            value = text[match.end() :]
            parsed = self._dnsaddrs.read(value, now)
            if parsed is None:
                continue
            if peer is None:
                peer = parsed.peer
            if parsed.peer != peer or (parsed.loopback and not loopback):
                continue
            addrs.setdefault(value, parsed.addr)
        if peer is None or peer == self.peer_id or not addrs:
            return None
        return peer, tuple(addrs.values())

    def _remember(
        self, instance: str, peer: PeerId, addrs: tuple[Multiaddr, ...], ttl: int, now: float
    ) -> None:
        old = self._seen.pop(instance, None)
        self._seen[instance] = _Seen(peer, addrs, now + ttl)
        while len(self._seen) > self.config.max_peers:
            self._seen.popitem(last=False)
        if old is None or old.peer != peer or old.addrs != addrs or now >= old.expires:
            self._events.append(DiscoveredPeer(peer_id=peer, addrs=addrs, source="mdns"))
            self._stats["discoveries"] += 1
