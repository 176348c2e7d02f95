"""mDNS messages of libp2p peer discovery, built and parsed with dnspython
(https://github.com/libp2p/specs/blob/master/discovery/mdns.md, RFC 6762, RFC 6763).

A query asks ``_p2p._udp.local PTR``. A response answers ``_p2p._udp.local PTR
<peer-name>._p2p._udp.local`` and carries ``<peer-name>._p2p._udp.local TXT`` with one
``dnsaddr=<multiaddr>/p2p/<id>`` string per address. For DNS-SD resolvers (zeroconf, which
py-libp2p uses) it also carries ``SRV <port> <peer-name>.local`` and the host's ``A``/``AAAA``
records in the additional section; js-libp2p reads only the PTR and the TXT records.

Everything here is pure: bytes in, typed values out. Malformed input raises ``MdnsPacketError``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import attrs
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.TXT
import dns.rrset

from protocols.discovery.mdns._dnsprep import MdnsPacketError, opaque_extras

__all__ = [
    "DEFAULT_SERVICE",
    "MAX_PACKET_IN",
    "MAX_PACKET_OUT",
    "MAX_RECORDS",
    "MAX_TXT_STRING",
    "META_QUERY",
    "Announcement",
    "Host",
    "MdnsPacketError",
    "Message",
    "Question",
    "build_query",
    "build_response",
    "parse_message",
    "txt_strings",
]

#: The DNS-SD service name of libp2p peers (spec: ``service-name``).
DEFAULT_SERVICE = "_p2p._udp.local"
#: DNS-SD's meta-query name (RFC 6763 section 9): answered with a PTR to our service name.
META_QUERY = "_services._dns-sd._udp.local"
#: RFC 6762 section 17: an mDNS message is at most 9000 bytes; anything longer is dropped unread.
MAX_PACKET_IN = 9000
#: What we send fits one Ethernet frame (1500 - 20 IPv4 - 8 UDP): addresses that would not fit
#: are left out of the response.
MAX_PACKET_OUT = 1472
#: RFC 6763 section 6.1: one TXT string is at most 255 bytes (a length byte, then the text).
MAX_TXT_STRING = 255
#: Records of one message that are looked at; the rest are ignored (bounded work per packet).
MAX_RECORDS = 256

_CLASS_MASK = 0x7FFF  # the top bit of a class is the unicast-response / cache-flush bit
_QU_BIT = 0x8000
_TYPES_WANTED = {dns.rdatatype.PTR, dns.rdatatype.TXT}


@attrs.frozen
class Question:
    """One question: ``name`` (lower case, no trailing dot), its type and the QU bit."""

    name: str
    rdtype: int
    unicast: bool = False


@attrs.frozen
class Announcement:
    """The TXT strings a response carries for one service instance.

    Attributes:
        instance: the instance's first label (the peer-name), as sent.
        ttl: the smallest TTL of its TXT records (0 is a goodbye, RFC 6762 section 10.1).
        strings: every TXT string, in order.
    """

    instance: str
    ttl: int
    strings: tuple[bytes, ...]


@attrs.frozen
class Message:
    """What one datagram said, reduced to what peer discovery needs.

    Attributes:
        msg_id: the DNS message ID (echoed in replies to legacy unicast queries).
        is_response: QR bit.
        questions: the questions (queries only).
        known_answers: PTR targets of ``service`` that a query lists as already known, with
            their TTLs (RFC 6762 section 7.1).
        announcements: TXT records of instances of ``service`` (responses only).
        pointed: instance labels that PTR records of ``service`` point to (responses only).
    """

    msg_id: int
    is_response: bool
    questions: tuple[Question, ...] = ()
    known_answers: tuple[tuple[str, int], ...] = ()
    announcements: tuple[Announcement, ...] = ()
    pointed: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Host:
    """What a response announces about us.

    Attributes:
        peer_name: our random instance label (at most 63 bytes).
        txt: the TXT strings (``dnsaddr=...``), each at most 255 bytes.
        port: the SRV port (a TCP listen port; 0 when there is none).
        ips: the addresses for ``A``/``AAAA`` records of ``<peer-name>.local``.
    """

    peer_name: str
    txt: tuple[bytes, ...]
    port: int = 0
    ips: tuple[str, ...] = ()


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text, origin=dns.name.root)


def _key(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()


def build_query(service: str = DEFAULT_SERVICE) -> bytes:
    """A multicast query (ID 0, RFC 6762 section 18.1) asking ``service PTR``."""
    query = dns.message.Message(id=0)
    query.flags = 0
    query.find_rrset(
        query.question, _name(service), dns.rdataclass.IN, dns.rdatatype.PTR, create=True
    )
    return query.to_wire()


def build_response(
    host: Host,
    *,
    service: str = DEFAULT_SERVICE,
    ttl: int = 120,
    meta: bool = False,
    reply_to: Message | None = None,
) -> bytes:
    """Our response: ``PTR`` and ``TXT`` as answers, ``SRV`` and ``A``/``AAAA`` as additional
    records; ``meta`` adds the DNS-SD meta-query answer. ``reply_to`` makes a reply to a legacy
    unicast query (RFC 6762 section 6.7: same ID, its questions repeated, TTLs at most 10 s).
    TXT strings that would take the message past ``MAX_PACKET_OUT`` are left out.

    Raises:
        ValueError: ``host`` holds a label or string DNS cannot carry.
    """

    def wire_with(strings: list[bytes]) -> bytes:
        return _response_wire(host, strings, service=service, ttl=ttl, meta=meta, reply_to=reply_to)

    # One TXT string costs its length plus a length byte; the empty placeholder of a record
    # without strings costs 1. Keep the strings that fit, then build once (checked below).
    room = MAX_PACKET_OUT - len(wire_with([])) + 1
    txt: list[bytes] = []
    for text in host.txt:
        room -= len(text) + 1
        if room < 0:
            break
        txt.append(text)
    wire = wire_with(txt)
    while len(wire) > MAX_PACKET_OUT and txt:  # not expected: the arithmetic above is exact
        txt.pop()
        wire = wire_with(txt)
    return wire


def _response_wire(
    host: Host, txt: list[bytes], *, service: str, ttl: int, meta: bool, reply_to: Message | None
) -> bytes:
    msg = dns.message.Message(id=reply_to.msg_id if reply_to is not None else 0)
    msg.flags = dns.flags.QR | dns.flags.AA
    if reply_to is not None:
        ttl = min(ttl, 10)
        for q in reply_to.questions:
            rdtype = dns.rdatatype.RdataType.make(q.rdtype)
            msg.find_rrset(msg.question, _name(q.name), dns.rdataclass.IN, rdtype, create=True)
    service_name = _name(service)
    instance = dns.name.Name([host.peer_name.encode(), *service_name.labels])
    target = _name(f"{host.peer_name}.local")
    IN = dns.rdataclass.IN

    def add(section: list[dns.rrset.RRset], name: dns.name.Name, rdata: dns.rdata.Rdata) -> None:
        rrset = msg.find_rrset(section, name, IN, rdata.rdtype, create=True)
        rrset.add(rdata, ttl)

    def rdata(rdtype: dns.rdatatype.RdataType, text: str) -> dns.rdata.Rdata:
        return dns.rdata.from_text(IN, rdtype, text, origin=dns.name.root, relativize=False)

    add(msg.answer, service_name, rdata(dns.rdatatype.PTR, instance.to_text()))
    if meta:
        add(msg.answer, _name(META_QUERY), rdata(dns.rdatatype.PTR, service_name.to_text()))
    add(msg.answer, instance, dns.rdtypes.ANY.TXT.TXT(IN, dns.rdatatype.TXT, txt or [b""]))
    srv = rdata(dns.rdatatype.SRV, f"0 0 {host.port} {target.to_text()}")
    add(msg.additional, instance, srv)
    for ip in host.ips:
        kind = dns.rdatatype.A if ipaddress.ip_address(ip).version == 4 else dns.rdatatype.AAAA
        add(msg.additional, target, rdata(kind, ip))
    return msg.to_wire()


def parse_message(data: bytes, service: str = DEFAULT_SERVICE) -> Message:
    """Read one mDNS datagram.

    Only what discovery of ``service`` needs is kept: the questions, the known answers and the
    PTR and TXT records about instances of ``service``. Record classes are compared without
    the cache-flush bit.

    Raises:
        MdnsPacketError: not a DNS message, longer than ``MAX_PACKET_IN``, or an opcode/rcode
            other than 0 (RFC 6762 section 18.3 and 18.11: such messages are ignored).
    """
    if len(data) > MAX_PACKET_IN:
        raise MdnsPacketError(f"mDNS message of {len(data)} bytes (at most {MAX_PACKET_IN})")
    try:
        msg = dns.message.from_wire(
            opaque_extras(data), ignore_trailing=True, one_rr_per_rrset=True
        )
    except (dns.exception.DNSException, ValueError, UnicodeError, IndexError) as exc:
        raise MdnsPacketError(f"malformed mDNS message: {type(exc).__name__}") from None
    if msg.opcode() != 0 or msg.rcode() != 0:
        raise MdnsPacketError("mDNS message with a non-zero opcode or rcode")
    service_key = service.lower()
    questions = tuple(
        Question(_key(q.name), int(q.rdtype), bool(q.rdclass & _QU_BIT))
        for q in msg.question[:MAX_RECORDS]
    )
    records = [*msg.answer, *msg.additional][:MAX_RECORDS]
    pointed: list[str] = []
    txts: dict[str, tuple[int, list[bytes]]] = {}
    for rrset in records:
        if rrset.rdclass & _CLASS_MASK != dns.rdataclass.IN or rrset.rdtype not in _TYPES_WANTED:
            continue
        owner = _key(rrset.name)
        for rdata in rrset:
            if isinstance(rdata, dns.rdtypes.ANY.PTR.PTR) and owner == service_key:
                label = _instance_label(rdata.target, service_key)
                if label is not None:
                    pointed.append(label)
            elif isinstance(rdata, dns.rdtypes.ANY.TXT.TXT):
                label = _instance_label(rrset.name, service_key)
                if label is None:
                    continue
                ttl, strings = txts.setdefault(label, (rrset.ttl, []))
                strings.extend(rdata.strings)
                txts[label] = (min(ttl, rrset.ttl), strings)
    is_response = bool(msg.flags & dns.flags.QR)
    known = tuple((label, rrset.ttl) for label, rrset in _known(msg, service_key))
    return Message(
        msg_id=msg.id,
        is_response=is_response,
        questions=() if is_response else questions,
        known_answers=() if is_response else known,
        announcements=tuple(Announcement(k, t, tuple(s)) for k, (t, s) in txts.items())
        if is_response
        else (),
        pointed=tuple(pointed) if is_response else (),
    )


def _known(msg: dns.message.Message, service_key: str) -> list[tuple[str, dns.rrset.RRset]]:
    """(instance label, rrset) of the PTR known answers of a query."""
    out: list[tuple[str, dns.rrset.RRset]] = []
    for rrset in msg.answer[:MAX_RECORDS]:
        if rrset.rdtype != dns.rdatatype.PTR or _key(rrset.name) != service_key:
            continue
        for rdata in rrset:
            if isinstance(rdata, dns.rdtypes.ANY.PTR.PTR):
                label = _instance_label(rdata.target, service_key)
                if label is not None:
                    out.append((label, rrset))
    return out


def _instance_label(name: dns.name.Name, service_key: str) -> str | None:
    """The first label of ``<label>.<service>``, or ``None`` for any other name."""
    if len(name.labels) < 2:
        return None
    parent = dns.name.Name(name.labels[1:])
    if _key(parent) != service_key:
        return None
    return name.labels[0].decode("utf-8", "replace")


def txt_strings(addrs: Sequence[str]) -> tuple[bytes, ...]:
    """``dnsaddr=<addr>`` strings for ``addrs``, leaving out any longer than a TXT string may be
    (js-libp2p does the same)."""
    out = []
    for addr in addrs:
        text = f"dnsaddr={addr}".encode()
        if len(text) <= MAX_TXT_STRING:
            out.append(text)
    return tuple(out)
