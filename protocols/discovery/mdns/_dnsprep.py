"""Preparing an mDNS datagram for dnspython: what mDNS does that unicast DNS does not
(RFC 6762 section 10.2 cache-flush bit, compressed names inside NSEC data)."""

from __future__ import annotations

import dns.rdatatype

from p2pstack.errors import RemoteProtocolError

__all__ = ["MdnsPacketError", "opaque_extras"]

_OPAQUE_TYPE = (65280).to_bytes(2, "big")  # RFC 6895 private use: parsed as opaque bytes


class MdnsPacketError(RemoteProtocolError):
    """An mDNS datagram that is not a DNS message we can read (short, malformed, too long)."""


def opaque_extras(data: bytes) -> bytes:
    """``data`` with the cache-flush bit of every record class cleared and every record other
    than PTR and TXT retyped to an opaque private-use type, in place (offsets, and so
    compression pointers, are unchanged).

    mDNS responders compress names inside NSEC and SRV data and set the cache-flush bit
    (zeroconf does both), which dnspython refuses ("decompression is forbidden") or reads as
    another class. Discovery needs only PTR and TXT, so the rest is left unread.

    Raises:
        MdnsPacketError: the message is cut short.
    """
    if len(data) < 12:
        raise MdnsPacketError("mDNS message shorter than a DNS header")
    out = bytearray(data)
    qd, an, ns, ar = (int.from_bytes(data[i : i + 2], "big") for i in range(4, 12, 2))
    pos = 12
    for _ in range(qd):
        pos = _skip_name(data, pos) + 4
    for _ in range(an + ns + ar):
        pos = _skip_name(data, pos)
        if pos + 10 > len(data):
            raise MdnsPacketError("mDNS record cut short")
        rdtype = int.from_bytes(data[pos : pos + 2], "big")
        if rdtype not in (dns.rdatatype.PTR, dns.rdatatype.TXT):
            out[pos : pos + 2] = _OPAQUE_TYPE
        out[pos + 2] &= 0x7F
        pos += 10 + int.from_bytes(data[pos + 8 : pos + 10], "big")
    if pos > len(data):
        raise MdnsPacketError("mDNS record data cut short")
    return bytes(out)


def _skip_name(data: bytes, pos: int) -> int:
    """The offset after the (possibly compressed) name at ``pos``."""
    while True:
        if pos >= len(data):
            raise MdnsPacketError("mDNS name cut short")
        length = data[pos]
        if length & 0xC0 == 0xC0:
            return pos + 2
        if length & 0xC0:
            raise MdnsPacketError("mDNS name with an unknown label type")
        if length == 0:
            return pos + 1
        pos += 1 + length
