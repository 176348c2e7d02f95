"""Fuzz target for peer discovery: DNS answers to a ``_dnsaddr.`` TXT query, read by
``protocols.discovery``'s ``parse_answer`` (the message, the TXT strings and the ``dnsaddr=``
multiaddrs in them).
"""

from __future__ import annotations

from multiaddr import Multiaddr

from fuzz._common import check
from protocols.discovery import DnsaddrError
from protocols.discovery._dnsaddr import MAX_ANSWER_SIZE, MAX_RECORDS, build_query, parse_answer

__all__ = ["QUERY", "fuzz_dnsaddr_answer"]

#: The query every input answers (its ID and question are fixed, so seeds can match it).
QUERY, _ = build_query("fuzz.example.org", 0x2A2A)


def fuzz_dnsaddr_answer(data: bytes) -> None:
    """Parse ``data`` as the answer to ``QUERY``: it yields at most ``MAX_RECORDS`` multiaddrs
    that survive a text round trip, or raises a ``DnsaddrError``."""
    try:
        addrs = parse_answer(QUERY, data)
    except DnsaddrError:
        return
    check(len(data) <= MAX_ANSWER_SIZE, "an oversized answer was accepted")
    check(len(addrs) <= MAX_RECORDS, f"{len(addrs)} addresses from one answer")
    for addr in addrs:
        check(Multiaddr(str(addr)) == addr, f"{addr} changed on a text round trip")
