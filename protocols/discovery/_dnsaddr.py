"""``/dnsaddr/`` resolution (https://github.com/multiformats/multiaddr/blob/master/protocols/DNSADDR.md):
``/dnsaddr/<name>`` stands for the multiaddrs in the TXT records of ``_dnsaddr.<name>``, each a
``dnsaddr=<multiaddr>`` string; a value may itself be a ``/dnsaddr/`` address (resolved in turn);
an entry ending in ``/p2p/<id>`` keeps only the results ending in that same ``/p2p/<id>``.

The DNS messages are built and parsed here with dnspython, without I/O (``build_query``,
``parse_answer``); ``DnsaddrResolver`` sends them over anyio UDP sockets (not dnspython's own
blocking resolver). Bounds: recursion depth, DNS queries per resolution, addresses per
resolution, answer size. A truncated answer (TC bit) is an error: there is no TCP fallback, and
bootstrap lists fit in one datagram.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import anyio
import attrs
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
from multiaddr import Multiaddr

from p2pstack.errors import P2PError, P2PTimeoutError, RemoteProtocolError
from p2pstack.multiaddrs import parse_multiaddr

__all__ = [
    "DnsAnswerTooLarge",
    "DnsNameNotFound",
    "DnsTimeout",
    "DnsaddrError",
    "DnsaddrLimitExceeded",
    "DnsaddrLoop",
    "DnsaddrResolver",
    "MalformedDnsAnswer",
    "build_query",
    "default_nameserver",
    "is_dnsaddr",
    "parse_answer",
]

#: Largest DNS answer accepted over UDP (EDNS payload we announce).
MAX_ANSWER_SIZE = 4096
#: ``dnsaddr=`` values kept from one answer; more is an oversized answer.
MAX_RECORDS = 64
_PREFIX = b"dnsaddr="
_DNS_PORT = 53


class DnsaddrError(P2PError):
    """A ``/dnsaddr/`` address could not be resolved."""


class DnsTimeout(DnsaddrError, P2PTimeoutError):
    """The nameserver did not answer in time."""


class DnsNameNotFound(DnsaddrError):
    """The nameserver answered NXDOMAIN (or another error code) for a ``_dnsaddr.`` name."""


class MalformedDnsAnswer(DnsaddrError, RemoteProtocolError):
    """The answer is not a valid DNS message answering our query."""


class DnsAnswerTooLarge(DnsaddrError):
    """The answer was truncated, larger than ``MAX_ANSWER_SIZE`` or held too many records."""


class DnsaddrLoop(DnsaddrError):
    """A ``/dnsaddr/`` name refers back to itself (directly or through others)."""


class DnsaddrLimitExceeded(DnsaddrError):
    """Resolution went deeper, or needed more queries or addresses, than its bounds allow."""


def is_dnsaddr(addr: Multiaddr) -> bool:
    """Whether ``addr`` starts with ``/dnsaddr/``."""
    first = next(iter(addr.protocols()), None)
    return first is not None and first.name == "dnsaddr"


def build_query(name: str, query_id: int) -> tuple[dns.message.Message, bytes]:
    """The TXT query for ``_dnsaddr.<name>``.

    Args:
        name: the ``/dnsaddr/`` value (a domain name).
        query_id: the 16-bit DNS message ID.

    Returns:
        The query message (to match the answer against) and its wire form.

    Raises:
        DnsaddrError: ``name`` is not a valid domain name.
    """
    try:
        qname = dns.name.from_text(f"_dnsaddr.{name.rstrip('.')}.")
        query = dns.message.make_query(
            qname, dns.rdatatype.TXT, id=query_id, use_edns=0, payload=MAX_ANSWER_SIZE
        )
        return query, query.to_wire()
    except (dns.exception.DNSException, ValueError) as exc:
        raise DnsaddrError(f"invalid /dnsaddr/ name {name!r}: {exc}") from None


def parse_answer(query: dns.message.Message, wire: bytes) -> list[Multiaddr]:
    """The multiaddrs of the ``dnsaddr=`` TXT strings in an answer to ``query``.

    TXT strings without the prefix (SPF and the like) and values that are not multiaddrs are
    skipped; the character-strings of one TXT record are joined first (long values are split).

    Raises:
        MalformedDnsAnswer: ``wire`` is not a DNS message answering ``query``.
        DnsNameNotFound: the answer's code is an error (NXDOMAIN, SERVFAIL, ...).
        DnsAnswerTooLarge: truncated, over ``MAX_ANSWER_SIZE``, or over ``MAX_RECORDS`` values.
    """
    if len(wire) > MAX_ANSWER_SIZE:
        raise DnsAnswerTooLarge(f"DNS answer of {len(wire)} bytes (at most {MAX_ANSWER_SIZE})")
    try:
        answer = dns.message.from_wire(wire)
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError) as exc:
        raise MalformedDnsAnswer(f"unreadable DNS answer: {exc!r}") from None
    if not query.is_response(answer):
        raise MalformedDnsAnswer("the DNS message does not answer our query")
    if answer.flags & dns.flags.TC:
        raise DnsAnswerTooLarge("the DNS answer was truncated")
    qname = query.question[0].name
    if answer.rcode() != dns.rcode.NOERROR:
        raise DnsNameNotFound(f"{qname}: {dns.rcode.to_text(answer.rcode())}")
    names = {qname}
    for rrset in answer.answer:  # follow CNAMEs to the TXT records' owner
        if rrset.rdtype == dns.rdatatype.CNAME and rrset.name in names:
            names.update(rdata.target for rdata in rrset)
    values = []
    for rrset in answer.answer:
        if rrset.rdtype != dns.rdatatype.TXT or rrset.name not in names:
            continue
        for rdata in rrset:
            text = b"".join(rdata.strings)
            if text.startswith(_PREFIX):
                values.append(text[len(_PREFIX) :])
    if len(values) > MAX_RECORDS:
        raise DnsAnswerTooLarge(f"{len(values)} dnsaddr records (at most {MAX_RECORDS})")
    return [addr for addr in map(_multiaddr, values) if addr is not None]


def _multiaddr(value: bytes) -> Multiaddr | None:
    try:
        return parse_multiaddr(value.decode("ascii"))
    except (ValueError, UnicodeError):
        return None


def default_nameserver(resolv_conf: str | Path = "/etc/resolv.conf") -> tuple[str, int]:
    """The first ``nameserver`` of ``resolv.conf`` (``127.0.0.1`` if there is none)."""
    try:
        lines = Path(resolv_conf).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            return fields[1].split("%")[0], _DNS_PORT
    return "127.0.0.1", _DNS_PORT


@attrs.define
class _Budget:
    queries: int
    addrs: int


class DnsaddrResolver:
    """Resolves ``/dnsaddr/`` addresses by asking one nameserver over UDP.

    Args:
        nameserver: ``(host, port)`` (``default_nameserver()`` if ``None``).
        timeout: seconds to wait for each answer.
        max_depth: nested ``/dnsaddr/`` levels followed.
        max_queries: DNS queries per ``resolve`` call.
        max_addrs: addresses one ``resolve`` call may collect.
        query_id: source of DNS message IDs (random if ``None``).
    """

    def __init__(
        self,
        nameserver: tuple[str, int] | None = None,
        *,
        timeout: float = 5.0,
        max_depth: int = 4,
        max_queries: int = 32,
        max_addrs: int = 256,
        query_id: Callable[[], int] | None = None,
    ) -> None:
        self.nameserver = nameserver or default_nameserver()
        self.timeout = timeout
        self.max_depth = max_depth
        self.max_queries = max_queries
        self.max_addrs = max_addrs
        self._query_id = query_id or (lambda: secrets.randbits(16))

    async def resolve(self, addr: Multiaddr) -> list[Multiaddr]:
        """The addresses ``addr`` stands for (itself if it is not a ``/dnsaddr/`` address).

        Raises:
            DnsaddrError: a subclass says why (timeout, NXDOMAIN, loop, limits, bad answer).
        """
        return await self._resolve(addr, (), _Budget(self.max_queries, self.max_addrs))

    async def _resolve(
        self, addr: Multiaddr, path: tuple[str, ...], budget: _Budget
    ) -> list[Multiaddr]:
        if not is_dnsaddr(addr):
            budget.addrs -= 1
            if budget.addrs < 0:
                raise DnsaddrLimitExceeded(f"more than {self.max_addrs} addresses")
            return [addr]
        name = str(addr.value_for_protocol("dnsaddr")).rstrip(".").lower()
        if name in path:
            raise DnsaddrLoop(f"/dnsaddr/{name} refers back to itself via {' -> '.join(path)}")
        if len(path) >= self.max_depth:
            raise DnsaddrLimitExceeded(f"/dnsaddr/ nested deeper than {self.max_depth}")
        budget.queries -= 1
        if budget.queries < 0:
            raise DnsaddrLimitExceeded(f"more than {self.max_queries} DNS queries")
        peer = addr.get_peer_id()
        found: list[Multiaddr] = []
        for value in await self.query(name):
            if peer is not None and value.get_peer_id() != peer:
                continue  # the spec's filter: only records of the peer the entry names
            found += await self._resolve(value, (*path, name), budget)
        return found

    async def query(self, name: str) -> list[Multiaddr]:
        """One TXT query for ``_dnsaddr.<name>``: the multiaddrs of its answer.

        Raises:
            DnsTimeout: no answer within ``timeout``.
            DnsaddrError: see ``parse_answer``.
        """
        query, wire = build_query(name, self._query_id())
        host, port = self.nameserver
        try:
            with anyio.fail_after(self.timeout):
                async with await anyio.create_connected_udp_socket(host, port) as sock:
                    await sock.send(wire)
                    while True:  # datagrams that answer something else are ignored
                        packet = await sock.receive()
                        try:
                            return parse_answer(query, packet)
                        except MalformedDnsAnswer:
                            continue
        except TimeoutError:
            raise DnsTimeout(f"no DNS answer for _dnsaddr.{name} within {self.timeout} s") from None
        except OSError as exc:
            raise DnsaddrError(f"DNS query for _dnsaddr.{name} failed: {exc}") from None
