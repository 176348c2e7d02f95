"""mDNS messages: literal bytes of js-libp2p's multicast-dns and of zeroconf (py-libp2p), our
responses read back, and malformed input."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.discovery.mdns import (
    MAX_PACKET_IN,
    MAX_PACKET_OUT,
    MdnsPacketError,
    build_query,
    build_response,
    parse_message,
)
from protocols.discovery.mdns._wire import Host, Question, txt_strings

PEER = "12D3KooWKbRz4Fd5xBdUgZaCDHusWpQoGTvqEiAGbZ96d8gEswU1"
#: multicast-dns (js-libp2p) encoding of {questions: [{name: '_p2p._udp.local', type: 'PTR'}]}
JS_QUERY = bytes.fromhex("000000000001000000000000045f703270045f756470056c6f63616c00000c0001")
#: multicast-dns encoding of @libp2p/mdns's answer: PTR to jsname._p2p._udp.local and one TXT
JS_RESPONSE = bytes.fromhex(
    "000084000000000200000000045f703270045f756470056c6f63616c00000c0001000000780018066a736e"
    "616d65045f703270045f756470056c6f63616c00066a736e616d65045f703270045f756470056c6f63616c"
    "000010000100000078005958646e73616464723d2f6970342f3132372e302e302e312f7463702f34303031"
    "2f7032702f313244334b6f6f574b62527a3446643578426455675a6143444875735770516f475476714569"
    "4147625a39366438674573775531"
)
#: zeroconf 0.150.5 (py-libp2p 0.8.1) answering a PTR query: cache-flush classes (0x8001),
#: compressed names inside SRV and NSEC data (dnspython alone refuses the NSEC ones).
ZEROCONF_RESPONSE = bytes.fromhex(
    "000084000000000500000000045f703270045f756470056c6f63616c00000c00010000119400423f696f6e66"
    "7a353678713835767372687274646f70713733713562366177646574356f63717130647a35727768336b3232"
    "656235763561336136387978737772c00cc02700218001000000780048000000000fa13f696f6e667a353678"
    "713835767372687274646f70713733713562366177646574356f63717130647a35727768336b323265623576"
    "3561336136387978737772c016c0270010800100001194005a59646e73616464723d2f6970342f3132372e30"
    "2e302e312f7463702f34353134372f7032702f313244334b6f6f574b43353254466841483469374d36627736"
    "6f5861776b4867624166514236677141674b71363963786e513455c07b002f8001000000780005c07b000140"
    "c07b000180010000007800047f000001"
)
ZEROCONF_NAME = "ionfz56xq85vsrhrtdopq73q5b6awdet5ocqq0dz5rwh3k22eb5v5a3a68yxswr"


def test_our_query_is_the_bytes_js_sends() -> None:
    assert build_query() == JS_QUERY
    msg = parse_message(JS_QUERY)
    assert not msg.is_response
    assert msg.questions == (Question("_p2p._udp.local", dns.rdatatype.PTR, False),)


def test_js_response() -> None:
    msg = parse_message(JS_RESPONSE)
    assert msg.is_response and msg.pointed == ("jsname",)
    (ann,) = msg.announcements
    assert (ann.instance, ann.ttl) == ("jsname", 120)
    assert ann.strings == (f"dnsaddr=/ip4/127.0.0.1/tcp/4001/p2p/{PEER}".encode(),)


def test_zeroconf_response_with_cache_flush_and_compressed_nsec() -> None:
    msg = parse_message(ZEROCONF_RESPONSE)
    assert msg.pointed == (ZEROCONF_NAME,)
    (ann,) = msg.announcements
    assert ann.instance == ZEROCONF_NAME and ann.ttl == 4500
    assert ann.strings == (
        b"dnsaddr=/ip4/127.0.0.1/tcp/45147/p2p/12D3KooWKC52TFhAH4i7M6bw6oXawkHgbAfQB6gqAgKq69cxnQ4U",
    )


def test_our_response_read_by_a_dns_library() -> None:
    host = Host(
        peer_name="abc",
        txt=(b"dnsaddr=/ip4/10.0.0.1/tcp/1/p2p/x",),
        port=1,
        ips=("10.0.0.1", "fe80::1"),
    )
    wire = build_response(host, meta=True)
    msg = dns.message.from_wire(wire)
    assert msg.flags & dns.flags.QR and msg.flags & dns.flags.AA and msg.id == 0
    answers = {(r.name.to_text(), dns.rdatatype.to_text(r.rdtype)): r for r in msg.answer}
    extra = {(r.name.to_text(), dns.rdatatype.to_text(r.rdtype)): r for r in msg.additional}
    assert answers[("_p2p._udp.local.", "PTR")][0].target.to_text() == "abc._p2p._udp.local."
    assert (
        answers[("_services._dns-sd._udp.local.", "PTR")][0].target.to_text() == "_p2p._udp.local."
    )
    assert answers[("abc._p2p._udp.local.", "TXT")][0].strings == (
        b"dnsaddr=/ip4/10.0.0.1/tcp/1/p2p/x",
    )
    srv = extra[("abc._p2p._udp.local.", "SRV")][0]
    assert (srv.port, srv.target.to_text()) == (1, "abc.local.")
    assert extra[("abc.local.", "A")][0].address == "10.0.0.1"
    assert extra[("abc.local.", "AAAA")][0].address == "fe80::1"
    assert all(r.ttl == 120 for r in [*msg.answer, *msg.additional])
    back = parse_message(wire)
    assert back.announcements[0].strings == host.txt and back.pointed == ("abc",)


def test_legacy_unicast_reply_echoes_id_and_question_with_short_ttl() -> None:
    query = parse_message(b"\x12\x34" + JS_QUERY[2:])
    wire = build_response(Host(peer_name="abc", txt=(b"dnsaddr=/x",)), reply_to=query)
    msg = dns.message.from_wire(wire)
    assert msg.id == 0x1234
    assert [q.name.to_text() for q in msg.question] == ["_p2p._udp.local."]
    assert max(r.ttl for r in msg.answer) == 10


def test_response_fits_one_frame_by_leaving_addresses_out() -> None:
    txt = tuple(b"dnsaddr=/ip4/10.0.0.1/tcp/%d/p2p/" % i + b"x" * 200 for i in range(20))
    wire = build_response(Host(peer_name="abc", txt=txt))
    assert len(wire) <= MAX_PACKET_OUT
    kept = parse_message(wire).announcements[0].strings
    assert 0 < len(kept) < 20 and kept == txt[: len(kept)]


def test_txt_strings_longer_than_255_bytes_are_left_out() -> None:
    assert txt_strings(["/a", "/" + "b" * 300]) == (b"dnsaddr=/a",)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00" * 11,
        JS_RESPONSE[:-5],  # TXT data cut short
        JS_QUERY[:-3],  # question cut short
        b"\x00\x00\x84\x00\x00\x00\x00\x01\x00\x00\x00\x00\x45abc\x00",  # unknown label type
        b"\x00\x00\x80\x01" + JS_QUERY[4:],  # rcode 1
        b"\x00\x00\x28\x00" + JS_QUERY[4:],  # opcode 5 (UPDATE)
        b"\x00" * (MAX_PACKET_IN + 1),
        # an answer whose owner name is a compression pointer to itself
        bytes.fromhex("000084000000000100000000 c00c 000c 0001 00000001 0002 c00c"),
    ],
)
def test_malformed_messages_raise_a_typed_error(data: bytes) -> None:
    with pytest.raises(MdnsPacketError):
        parse_message(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_parse_or_raise_mdns_packet_error(data: bytes) -> None:
    try:
        parse_message(data)
    except MdnsPacketError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([JS_RESPONSE, ZEROCONF_RESPONSE, JS_QUERY]), st.data())
def test_mutated_real_messages_parse_or_raise_mdns_packet_error(
    base: bytes, data: st.DataObject
) -> None:
    wire = bytearray(base)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(wire) - 1))
        wire[pos] = data.draw(st.integers(0, 255))
    try:
        msg = parse_message(bytes(wire))
    except MdnsPacketError:
        return
    for ann in msg.announcements:
        assert all(len(s) <= 255 for s in ann.strings)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=240), max_size=40),
    st.integers(1, 63),
    st.booleans(),
)
def test_responses_keep_the_longest_prefix_of_addresses_that_fits(
    tail: list[bytes], name_len: int, meta: bool
) -> None:
    txt = tuple(b"dnsaddr=" + t for t in tail)
    wire = build_response(Host(peer_name="p" * name_len, txt=txt, port=1), meta=meta)
    assert len(wire) <= MAX_PACKET_OUT
    kept = tuple(s for s in parse_message(wire).announcements[0].strings if s)
    assert kept == txt[: len(kept)]
    if len(kept) < len(txt):  # the next string would not have fitted
        assert len(wire) + len(txt[len(kept)]) + 1 > MAX_PACKET_OUT
