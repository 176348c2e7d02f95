"""A tiny DNS server for tests: answers TXT queries on 127.0.0.1 from a dict (dnspython for the
messages, an anyio UDP socket for the I/O)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import anyio
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset
from anyio.abc import SocketAttribute, UDPSocket

#: Zone values that are behaviours rather than records.
SILENT = "silent"  # never answer
TRUNCATED = "truncated"  # answer with the TC bit
SERVFAIL = "servfail"
GARBAGE = "garbage"  # send bytes that are no DNS message (then nothing)

Zone = Mapping[str, Sequence[str] | str]


def _txt(value: str) -> dns.rdtypes.ANY.TXT.TXT:
    data = value.encode()
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks)


def answer(query: dns.message.Message, zone: Zone) -> bytes | None:
    """The wire answer to ``query`` (``None``: stay silent)."""
    response = dns.message.make_response(query)
    name = query.question[0].name
    entry = zone.get(name.to_text(omit_final_dot=True))
    if entry is None:
        response.set_rcode(dns.rcode.NXDOMAIN)
    elif entry == SILENT:
        return None
    elif entry == GARBAGE:
        return b"\x00\x01garbage"
    elif entry == SERVFAIL:
        response.set_rcode(dns.rcode.SERVFAIL)
    elif entry == TRUNCATED:
        response.flags |= dns.flags.TC
    else:
        rrset = dns.rrset.RRset(name, dns.rdataclass.IN, dns.rdatatype.TXT)
        for value in entry:
            rrset.add(_txt(value), 60)
        response.answer.append(rrset)
    wire: bytes = response.to_wire(max_size=65535)
    return wire


async def _serve(sock: UDPSocket, zone: Zone, queries: list[str]) -> None:
    async for data, (host, port) in sock:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            continue
        queries.append(query.question[0].name.to_text(omit_final_dot=True))
        wire = answer(query, zone)
        if wire is not None:
            await sock.sendto(wire, host, port)


@asynccontextmanager
async def dns_server(zone: Zone) -> AsyncIterator[tuple[tuple[str, int], list[str]]]:
    """Serve ``zone`` (``_dnsaddr.name`` → TXT strings, or a behaviour) on 127.0.0.1.

    Yields:
        The server's ``(host, port)`` and the list of names it was asked, in order.
    """
    queries: list[str] = []
    async with await anyio.create_udp_socket(local_host="127.0.0.1", local_port=0) as sock:
        port = sock.extra(SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_serve, sock, zone, queries)
            yield ("127.0.0.1", port), queries
            tg.cancel_scope.cancel()
