"""The mDNS core driven by hand: queries, answers, throttling, what is announced and accepted,
and bounded state under floods."""

from __future__ import annotations

from typing import Any

import dns.message
import dns.rdatatype
import pytest
from multiaddr import Multiaddr

from p2pstack.discovery import DiscoveredPeer
from p2pstack.identity import Identity, PeerId
from protocols.discovery.mdns import Mdns, MdnsConfig, MdnsCore, build_query, parse_message
from protocols.discovery.mdns._wire import Host, build_response

LOCAL = ("127.0.0.1", 5353)
LAN = ("192.168.1.7", 5353)
ME = Identity.generate().peer_id
OTHER = Identity.generate().peer_id
QUERY = build_query()


def core(addrs: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/4001",), **config: Any) -> MdnsCore:
    c = MdnsCore(peer_id=ME, peer_name="me", config=MdnsConfig(**config), now=0.0)
    c.set_addrs([Multiaddr(a) for a in addrs])
    return c


def response(name: str, *addrs: str, ttl: int = 120, peer: PeerId = OTHER) -> bytes:
    txt = tuple(f"dnsaddr={a}/p2p/{peer}".encode() for a in addrs)
    return build_response(Host(peer_name=name, txt=txt), ttl=ttl) if ttl else _goodbye(name, txt)


def _goodbye(name: str, txt: tuple[bytes, ...]) -> bytes:
    c = MdnsCore(peer_id=OTHER, peer_name=name, now=0.0)
    c.set_addrs([Multiaddr(t.decode().split("=", 1)[1].split("/p2p/")[0]) for t in txt])
    c.goodbye()
    ((wire, _),) = c.datagrams_to_send()
    return wire


def events(c: MdnsCore) -> list[DiscoveredPeer]:
    out = []
    while (e := c.next_event()) is not None:
        out.append(e)
    return out


def announced(wire: bytes) -> tuple[bytes, ...]:
    (ann,) = parse_message(wire).announcements
    return ann.strings


def test_queries_at_start_then_every_interval() -> None:
    c = core(interval=5.0)
    assert c.next_deadline() == 0.0
    c.handle_timer(0.0)
    assert c.datagrams_to_send() == [(QUERY, None)]
    assert c.next_deadline() == 5.0
    c.handle_timer(5.2)
    assert c.datagrams_to_send() == [(QUERY, None)]
    assert c.next_deadline() == pytest.approx(10.0)
    c.handle_timer(31.0)  # a timer that ran three periods late sends one query
    assert c.datagrams_to_send() == [(QUERY, None)]
    assert c.next_deadline() == pytest.approx(36.0)


def test_answers_a_query_with_our_addresses_and_peer_id() -> None:
    c = core(("/ip4/127.0.0.1/tcp/4001", "/ip4/10.1.2.3/udp/4001/quic-v1"))
    c.receive_datagram(QUERY, LOCAL, 1.0)
    ((wire, dest),) = c.datagrams_to_send()
    assert dest is None
    assert announced(wire) == (
        f"dnsaddr=/ip4/127.0.0.1/tcp/4001/p2p/{ME}".encode(),
        f"dnsaddr=/ip4/10.1.2.3/udp/4001/quic-v1/p2p/{ME}".encode(),
    )
    msg = dns.message.from_wire(wire)
    srv = next(r for r in msg.additional if r.rdtype == dns.rdatatype.SRV)
    assert srv[0].port == 4001


def test_loopback_addresses_only_for_a_querier_on_this_host() -> None:
    c = core(("/ip4/127.0.0.1/tcp/1", "/ip4/10.1.2.3/tcp/1", "/ip4/0.0.0.0/tcp/1"))
    c.receive_datagram(QUERY, LAN, 1.0)
    ((wire, _),) = c.datagrams_to_send()
    assert announced(wire) == (f"dnsaddr=/ip4/10.1.2.3/tcp/1/p2p/{ME}".encode(),)
    c.receive_datagram(QUERY, ("10.1.2.3", 5353), 5.0, local=True)
    ((wire, _),) = c.datagrams_to_send()
    assert len(announced(wire)) == 2


def test_nothing_to_announce_to_the_lan_means_no_answer() -> None:
    c = core(("/ip4/127.0.0.1/tcp/1", "/ip4/1.2.3.4/tcp/1/p2p-circuit", "/ip4/10.0.0.1/tcp/1/ws"))
    c.receive_datagram(QUERY, LAN, 1.0)
    assert c.datagrams_to_send() == []


def test_at_most_one_multicast_response_per_second_under_a_query_flood() -> None:
    c = core()
    c.handle_timer(0.0)
    assert c.datagrams_to_send() == [(QUERY, None)]
    for i in range(1000):
        c.receive_datagram(QUERY, LOCAL, 1.0 + i / 1000)
    assert len(c.datagrams_to_send()) == 1
    assert c.next_deadline() == pytest.approx(2.0)
    c.handle_timer(2.0)
    ((wire, dest),) = c.datagrams_to_send()
    assert parse_message(wire).is_response and dest is None
    assert c.next_deadline() == 10.0  # the next query; no response is pending
    assert c.statistics().responses_sent == 2


def test_known_answer_suppresses_our_response() -> None:
    c = core()
    query = dns.message.from_wire(QUERY)
    query.answer.append(
        dns.rrset.from_text("_p2p._udp.local.", 120, "IN", "PTR", "me._p2p._udp.local.")
    )
    c.receive_datagram(query.to_wire(), LOCAL, 1.0)
    assert c.datagrams_to_send() == []
    c.receive_datagram(QUERY, LOCAL, 1.0)
    assert len(c.datagrams_to_send()) == 1


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [
        ("me._p2p._udp.local", "TXT"),
        ("me._p2p._udp.local", "SRV"),
        ("me.local", "A"),
        ("_services._dns-sd._udp.local", "PTR"),
    ],
)
def test_answers_dns_sd_resolution_questions(name: str, rdtype: str) -> None:
    c = core()
    c.receive_datagram(dns.message.make_query(name, rdtype, use_edns=False).to_wire(), LOCAL, 1.0)
    assert len(c.datagrams_to_send()) == 1


def test_ignores_questions_about_others() -> None:
    c = core()
    for name in ("other._p2p._udp.local", "_http._tcp.local", "me.other"):
        c.receive_datagram(dns.message.make_query(name, "PTR").to_wire(), LOCAL, 1.0)
    assert c.datagrams_to_send() == []


def test_legacy_unicast_query_gets_a_bounded_number_of_unicast_replies() -> None:
    c = core(max_unicast_per_interval=3)
    for _ in range(10):
        c.receive_datagram(QUERY, ("127.0.0.1", 40000), 1.0)
    out = c.datagrams_to_send()
    assert [dest for _, dest in out] == [("127.0.0.1", 40000)] * 3
    c.receive_datagram(QUERY, ("127.0.0.1", 40000), 2.5)
    assert len(c.datagrams_to_send()) == 1


def test_discovers_a_peer_once_until_its_addresses_change_or_expire() -> None:
    c = core()
    c.receive_datagram(response("js", "/ip4/127.0.0.1/tcp/5"), LOCAL, 1.0)
    (found,) = events(c)
    assert found == DiscoveredPeer(
        peer_id=OTHER, addrs=(Multiaddr("/ip4/127.0.0.1/tcp/5"),), source="mdns"
    )
    c.receive_datagram(response("js", "/ip4/127.0.0.1/tcp/5"), LOCAL, 2.0)
    assert events(c) == []
    c.receive_datagram(response("js", "/ip4/127.0.0.1/tcp/6"), LOCAL, 3.0)
    assert [e.addrs for e in events(c)] == [(Multiaddr("/ip4/127.0.0.1/tcp/6"),)]
    c.receive_datagram(response("js", "/ip4/127.0.0.1/tcp/6", ttl=10), LOCAL, 4.0)
    assert events(c) == []
    c.receive_datagram(response("js", "/ip4/127.0.0.1/tcp/6"), LOCAL, 14.5)
    assert len(events(c)) == 1


def test_goodbye_forgets_a_peer() -> None:
    c = core()
    c.receive_datagram(response("js", "/ip4/127.0.0.1/tcp/5"), LOCAL, 1.0)
    assert c.statistics().peers == 1
    c.receive_datagram(response("js", "/ip4/127.0.0.1/tcp/5", ttl=0), LOCAL, 2.0)
    assert c.statistics().peers == 0
    c.receive_datagram(response("js", "/ip4/127.0.0.1/tcp/5"), LOCAL, 3.0)
    assert len(events(c)) == 2


def test_our_own_announcements_are_ignored() -> None:
    c = core()
    c.receive_datagram(QUERY, LOCAL, 1.0)
    ((ours, _),) = c.datagrams_to_send()
    c.receive_datagram(ours, LOCAL, 1.0)
    c.receive_datagram(response("alias", "/ip4/127.0.0.1/tcp/1", peer=ME), LOCAL, 1.0)
    assert events(c) == [] and c.statistics().peers == 0


def test_loopback_addresses_from_another_host_are_dropped() -> None:
    c = core()
    c.receive_datagram(response("x", "/ip4/127.0.0.1/tcp/5", "/ip4/192.168.1.7/tcp/5"), LAN, 1.0)
    (found,) = events(c)
    assert found.addrs == (Multiaddr("/ip4/192.168.1.7/tcp/5"),)


def test_responses_from_a_port_other_than_5353_are_ignored() -> None:
    c = core()
    c.receive_datagram(response("x", "/ip4/127.0.0.1/tcp/5"), ("127.0.0.1", 40000), 1.0)
    assert events(c) == []


def test_addresses_of_another_peer_id_and_bad_strings_are_dropped() -> None:
    c = core()
    third = Identity.generate().peer_id
    txt = (
        b"id=whatever",
        f"dnsaddr=/ip4/127.0.0.1/tcp/1/p2p/{OTHER}".encode(),
        f"dnsaddr=/ip4/127.0.0.1/tcp/2/p2p/{third}".encode(),
        b"dnsaddr=/ip4/127.0.0.1/tcp/3",  # no /p2p/
        b"dnsaddr=/not/a/multiaddr",
        b"dnsaddr=\xff\xfe",
        f"dnsaddr2=/ip4/127.0.0.1/tcp/4/p2p/{OTHER}".encode(),  # py-libp2p's extra keys
    )
    c.receive_datagram(build_response(Host(peer_name="x", txt=txt)), LOCAL, 1.0)
    (found,) = events(c)
    assert found.peer_id == OTHER
    assert [str(a) for a in found.addrs] == ["/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/4"]


def test_a_flood_of_responses_keeps_bounded_state() -> None:
    c = core(max_peers=16, max_addrs=4)
    for i in range(500):
        addrs = [f"/ip4/127.0.0.1/tcp/{p}" for p in range(10)]
        peer = Identity.generate().peer_id if i % 50 == 0 else OTHER
        c.receive_datagram(response(f"n{i}", *addrs, peer=peer), LOCAL, 1.0)
    stats = c.statistics()
    assert stats.peers == 16
    found = events(c)
    assert len(found) == 16  # the newest, the older ones were dropped unread
    assert all(len(e.addrs) == 4 for e in found)
    # 200 datagrams read in that second (max_datagrams_per_second), the rest dropped unread
    assert (stats.discoveries, stats.dropped) == (200, 300)


def test_garbage_is_counted_not_raised() -> None:
    c = core()
    for data in (b"", b"\xff" * 40, QUERY[:-1]):
        c.receive_datagram(data, LOCAL, 1.0)
    assert c.statistics().malformed == 3
    assert c.datagrams_to_send() == []


@pytest.mark.parametrize("name", ["", "a.b", "x" * 64])
def test_bad_peer_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="label"):
        MdnsCore(peer_id=ME, peer_name=name, now=0.0)


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError):
        MdnsConfig(interval=0)
    with pytest.raises(ValueError):
        MdnsConfig(max_peers=0)


def test_datagrams_beyond_the_rate_limit_are_dropped_unread() -> None:
    c = core(max_datagrams_per_second=10)
    for i in range(25):
        c.receive_datagram(b"junk", LOCAL, 1.0 + i / 100)
    c.receive_datagram(response("x", "/ip4/127.0.0.1/tcp/5"), LOCAL, 1.5)
    assert events(c) == []  # still inside the full second
    c.receive_datagram(response("x", "/ip4/127.0.0.1/tcp/5"), LOCAL, 2.0)
    assert len(events(c)) == 1
    stats = c.statistics()
    assert (stats.received, stats.dropped, stats.malformed) == (27, 16, 10)


def test_new_addresses_beyond_the_parse_budget_are_skipped_and_cached_ones_are_free() -> None:
    c = core(max_addr_parses_per_second=5, max_addrs=32)
    addrs = [f"/ip4/127.0.0.1/tcp/{p}" for p in range(1, 9)]
    c.receive_datagram(response("x", *addrs), LOCAL, 1.0)
    (first,) = events(c)
    assert len(first.addrs) == 5 and c.statistics().skipped_addrs == 3
    c.receive_datagram(response("x", *addrs[:5]), LOCAL, 1.1)  # all cached: no budget needed
    assert events(c) == [] and c.statistics().skipped_addrs == 3
    c.receive_datagram(response("x", *addrs), LOCAL, 2.5)  # a new second: the rest is read
    (second,) = events(c)
    assert len(second.addrs) == 8


def test_a_service_needs_ipv4_or_an_ipv6_interface() -> None:
    with pytest.raises(ValueError, match="IPv4 or an IPv6 interface"):
        Mdns(ipv4=False)
