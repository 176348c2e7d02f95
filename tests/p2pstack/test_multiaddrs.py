from __future__ import annotations

import pytest
from multiaddr import Multiaddr

from p2pstack.multiaddrs import decode_multiaddr, memory_id


def test_memory_id() -> None:
    peer = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
    assert memory_id(Multiaddr("/memory/42")) == 42
    assert memory_id(Multiaddr(f"/memory/7/p2p/{peer}")) == 7
    assert memory_id(Multiaddr("/ip4/127.0.0.1/tcp/1")) is None
    assert memory_id(Multiaddr(f"/p2p/{peer}")) is None


@pytest.mark.parametrize(
    "text",
    [
        "/ip4/1.2.3.4/tcp/4001",
        "/ip6zone/eth0/ip6/fe80::1/tcp/1",
        "/dns4/example.com/tcp/443/wss",
        "/ip4/1.2.3.4/udp/1/quic-v1/p2p/12D3KooWEZBc64MSyAdoYjR1ywSrG3uQM6LUc3erzk795SEs6Tx6",
        "/p2p-circuit",
    ],
)
def test_decode_multiaddr_keeps_well_formed_addresses(text: str) -> None:
    raw = Multiaddr(text).to_bytes()
    addr = decode_multiaddr(raw)
    assert addr is not None and addr.to_bytes() == raw and str(addr) == text


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x04",  # the library renders it as /ip4/0.0.0.0
        b"\x04\x01\x02\x03",  # a short field
        b"\x04\x01\x02\x03\x04\x06\x0f",  # a short port
        b"\xff\xff\x03",  # no such protocol
        b"*\x05\x00\x00\x01\x0f\x11",  # text form parses, component walk does not
    ],
    ids=["empty", "bare-code", "short-ip", "short-port", "unknown", "ip6zone-lazy"],
)
def test_decode_multiaddr_refuses_what_is_not_exactly_one(raw: bytes) -> None:
    assert decode_multiaddr(raw) is None
