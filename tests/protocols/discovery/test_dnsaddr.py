"""``/dnsaddr/`` resolution against a DNS server the test runs on 127.0.0.1."""

from __future__ import annotations

import anyio
import dns.message
import pytest
from multiaddr import Multiaddr

from p2pstack.identity import Identity
from protocols.discovery import (
    DnsaddrLimitExceeded,
    DnsaddrLoop,
    DnsaddrResolver,
    DnsAnswerTooLarge,
    DnsNameNotFound,
    DnsTimeout,
    MalformedDnsAnswer,
    default_nameserver,
)
from protocols.discovery._dnsaddr import MAX_RECORDS, build_query, parse_answer
from tests.protocols.discovery.dns_server import (
    GARBAGE,
    SERVFAIL,
    SILENT,
    TRUNCATED,
    answer,
    dns_server,
)

pytestmark = pytest.mark.anyio

A = Identity.generate().peer_id.to_base58()
B = Identity.generate().peer_id.to_base58()

ZONE = {
    "_dnsaddr.example.org": [
        f"dnsaddr=/dnsaddr/nested.example.org/p2p/{B}",
        f"dnsaddr=/ip4/127.0.0.1/tcp/4001/p2p/{A}",
        "v=spf1 -all",
        "dnsaddr=not a multiaddr",
    ],
    "_dnsaddr.nested.example.org": [
        f"dnsaddr=/ip4/127.0.0.1/tcp/4002/p2p/{B}",
        f"dnsaddr=/ip4/127.0.0.1/udp/4002/quic-v1/p2p/{B}",
        f"dnsaddr=/ip4/127.0.0.1/tcp/4003/p2p/{A}",
    ],
    "_dnsaddr.loop.example.org": ["dnsaddr=/dnsaddr/loop2.example.org"],
    "_dnsaddr.loop2.example.org": ["dnsaddr=/dnsaddr/loop.example.org"],
    "_dnsaddr.silent.example.org": SILENT,
    "_dnsaddr.truncated.example.org": TRUNCATED,
    "_dnsaddr.servfail.example.org": SERVFAIL,
    "_dnsaddr.garbage.example.org": GARBAGE,
    "_dnsaddr.many.example.org": [
        f"dnsaddr=/ip4/127.0.0.1/tcp/{1000 + i}/p2p/{A}" for i in range(MAX_RECORDS + 1)
    ],
    "_dnsaddr.long.example.org": [f"dnsaddr=/dns4/{'x' * 60}.{'y' * 60}.org/tcp/1/p2p/{A}"] * 1
    + [f"dnsaddr=/ip4/127.0.0.{i}/tcp/1/p2p/{A}/{'p2p-circuit/' * 40}" for i in range(40)],
}
for depth in range(6):
    ZONE[f"_dnsaddr.d{depth}.example.org"] = [f"dnsaddr=/dnsaddr/d{depth + 1}.example.org"]


def resolver(server: tuple[str, int], **kwargs: float) -> DnsaddrResolver:
    return DnsaddrResolver(server, **kwargs)  # type: ignore[arg-type]  # the test's options pass through **kwargs


async def test_resolves_nested_records_with_the_peer_filter() -> None:
    async with dns_server(ZONE) as (server, queries):
        with anyio.fail_after(10):
            found = await resolver(server).resolve(Multiaddr("/dnsaddr/example.org"))
    assert sorted(str(a) for a in found) == sorted(
        [
            f"/ip4/127.0.0.1/tcp/4002/p2p/{B}",
            f"/ip4/127.0.0.1/udp/4002/quic-v1/p2p/{B}",
            f"/ip4/127.0.0.1/tcp/4001/p2p/{A}",
        ]
    )
    assert queries == ["_dnsaddr.example.org", "_dnsaddr.nested.example.org"]


async def test_an_entry_with_a_peer_id_keeps_only_that_peer() -> None:
    async with dns_server(ZONE) as (server, _):
        with anyio.fail_after(10):
            found = await resolver(server).resolve(
                Multiaddr(f"/dnsaddr/nested.example.org/p2p/{A}")
            )
            none = await resolver(server).resolve(
                Multiaddr(f"/dnsaddr/example.org/p2p/{Identity.generate().peer_id}")
            )
    assert [str(a) for a in found] == [f"/ip4/127.0.0.1/tcp/4003/p2p/{A}"]
    assert none == []


async def test_a_plain_address_resolves_to_itself() -> None:
    addr = Multiaddr(f"/ip4/127.0.0.1/tcp/1/p2p/{A}")
    assert await DnsaddrResolver(("127.0.0.1", 9)).resolve(addr) == [addr]


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("missing.example.org", DnsNameNotFound),
        ("servfail.example.org", DnsNameNotFound),
        ("loop.example.org", DnsaddrLoop),
        ("d0.example.org", DnsaddrLimitExceeded),
        ("truncated.example.org", DnsAnswerTooLarge),
        ("many.example.org", DnsAnswerTooLarge),
        ("long.example.org", DnsAnswerTooLarge),
    ],
)
async def test_failures_are_typed(name: str, error: type[Exception]) -> None:
    async with dns_server(ZONE) as (server, _):
        with anyio.fail_after(10), pytest.raises(error):
            await resolver(server).resolve(Multiaddr(f"/dnsaddr/{name}"))


@pytest.mark.parametrize("name", ["silent.example.org", "garbage.example.org"])
async def test_no_usable_answer_times_out(name: str) -> None:
    async with dns_server(ZONE) as (server, queries):
        with anyio.fail_after(10), pytest.raises(DnsTimeout):
            await resolver(server, timeout=0.3).resolve(Multiaddr(f"/dnsaddr/{name}"))
    assert queries == [f"_dnsaddr.{name}"]


async def test_query_and_address_budgets() -> None:
    async with dns_server(ZONE) as (server, _):
        with anyio.fail_after(10):
            with pytest.raises(DnsaddrLimitExceeded, match="queries"):
                await resolver(server, max_queries=1).resolve(Multiaddr("/dnsaddr/example.org"))
            with pytest.raises(DnsaddrLimitExceeded, match="addresses"):
                await resolver(server, max_addrs=2).resolve(Multiaddr("/dnsaddr/example.org"))


def test_answers_to_another_query_are_refused() -> None:
    query, _ = build_query("example.org", 1)
    other, _ = build_query("example.org", 2)
    wire = answer(other, ZONE)
    assert wire is not None
    with pytest.raises(MalformedDnsAnswer):
        parse_answer(query, wire)
    with pytest.raises(MalformedDnsAnswer):
        parse_answer(query, b"\x00")
    good = answer(query, ZONE)
    assert good is not None
    assert len(parse_answer(query, good)) == 2
    assert isinstance(dns.message.from_wire(good), dns.message.Message)


def test_default_nameserver_reads_resolv_conf(tmp_path: object) -> None:
    from pathlib import Path

    conf = Path(str(tmp_path)) / "resolv.conf"
    conf.write_text("# comment\nsearch lan\nnameserver 10.9.8.7\nnameserver ::1\n")
    assert default_nameserver(conf) == ("10.9.8.7", 53)
    assert default_nameserver(Path(str(tmp_path)) / "absent") == ("127.0.0.1", 53)
