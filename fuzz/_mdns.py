"""Fuzz target for mDNS discovery: ``parse_message`` and the ``MdnsCore`` fed what the network
sends (https://github.com/libp2p/specs/blob/master/discovery/mdns.md).

Input layout: byte 0 is a control byte (bit 0: the sender is on this host; bit 1: it sent from a
port other than 5353); the rest is one datagram.
"""

from __future__ import annotations

from multiaddr import Multiaddr

from fuzz._common import check, split_control
from p2pstack.identity import PeerId
from protocols.discovery.mdns import (
    MAX_PACKET_OUT,
    MdnsConfig,
    MdnsCore,
    MdnsPacketError,
    parse_message,
)
from protocols.discovery.mdns._wire import MAX_RECORDS, MAX_TXT_STRING

__all__ = ["fuzz_mdns_message"]

_ME = PeerId.from_string("12D3KooWKbRz4Fd5xBdUgZaCDHusWpQoGTvqEiAGbZ96d8gEswU1")
_CONFIG = MdnsConfig(max_peers=4, max_addrs=3)
_ADDRS = [Multiaddr("/ip4/127.0.0.1/tcp/4001"), Multiaddr("/ip4/10.0.0.1/udp/4001/quic-v1")]


def fuzz_mdns_message(data: bytes) -> None:
    """Parse one datagram (``MdnsPacketError`` or a bounded ``Message``), then feed it to a core
    twice: nothing raises, what comes out is bounded and never about ourselves."""
    control, wire = split_control(data)
    try:
        msg = parse_message(wire)
    except MdnsPacketError:
        msg = None
    if msg is not None:
        check(len(msg.questions) <= MAX_RECORDS, "too many questions kept")
        check(len(msg.announcements) <= MAX_RECORDS, "too many announcements kept")
        for ann in msg.announcements:
            check(all(len(s) <= MAX_TXT_STRING for s in ann.strings), "TXT string over 255")
    core = MdnsCore(peer_id=_ME, peer_name="me", config=_CONFIG, now=0.0)
    core.set_addrs(_ADDRS)
    source = ("127.0.0.1" if control & 1 else "192.168.1.7", 40000 if control & 2 else 5353)
    for now in (1.0, 1.5):
        core.receive_datagram(wire, source, now, local=bool(control & 1))
    core.handle_timer(3.0)
    for out, _ in core.datagrams_to_send():
        check(len(out) <= MAX_PACKET_OUT, f"we sent {len(out)} bytes")
        parse_message(out)  # what we send, we read
    while (peer := core.next_event()) is not None:
        check(peer.peer_id != _ME, "discovered ourselves")
        check(0 < len(peer.addrs) <= _CONFIG.max_addrs, f"{len(peer.addrs)} addresses")
    check(core.statistics().peers <= _CONFIG.max_peers, "more peers kept than max_peers")
