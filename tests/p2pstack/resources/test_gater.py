from __future__ import annotations

import ipaddress

import pytest
from multiaddr import Multiaddr

from p2pstack.identity import Identity
from p2pstack.resources import BasicConnectionGater, ip_of, parse_range


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ip_of_v4_v6_mapped_and_none() -> None:
    assert ip_of(Multiaddr("/ip4/10.1.2.3/tcp/1")) == ipaddress.ip_address("10.1.2.3")
    assert ip_of(Multiaddr("/ip6/2001:db8::1/tcp/1")) == ipaddress.ip_address("2001:db8::1")
    assert ip_of(Multiaddr("/ip6/::ffff:10.0.0.1/tcp/1")) == ipaddress.ip_address("10.0.0.1")
    assert ip_of(Multiaddr("/memory/3")) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.1.2.3/8", "10.0.0.0/8"),
        ("10.1.2.3", "10.1.2.3/32"),
        ("2001:db8::1/48", "2001:db8::/48"),
        ("/ip4/192.168.7.9/ipcidr/16", "192.168.0.0/16"),
        ("/ip6/::1", "::1/128"),
        (Multiaddr("/ip4/1.2.3.4/tcp/5"), "1.2.3.4/32"),
    ],
)
def test_parse_range(text: str | Multiaddr, expected: str) -> None:
    assert parse_range(text) == ipaddress.ip_network(expected)


@pytest.mark.parametrize("bad", ["not an address", "10.0.0.0/33", "/memory/1"])
def test_parse_range_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_range(bad)


def test_deny_range_and_expiry() -> None:
    clock = FakeClock()
    gater = BasicConnectionGater(deny=["10.0.0.0/8"], clock=clock)
    gater.deny("2001:db8::/32", duration=60)
    assert gater.address_denied(Multiaddr("/ip4/10.9.9.9/tcp/1")) is not None
    assert gater.address_denied(Multiaddr("/ip4/11.0.0.1/tcp/1")) is None
    reason = gater.address_denied(Multiaddr("/ip6/2001:db8::5/tcp/1"))
    assert reason == "address 2001:db8::5 is in denied range 2001:db8::/32"
    clock.now += 59.9
    assert gater.address_denied(Multiaddr("/ip6/2001:db8::5/tcp/1")) is not None
    clock.now += 0.1
    assert gater.address_denied(Multiaddr("/ip6/2001:db8::5/tcp/1")) is None
    assert gater.denied_ranges() == [ipaddress.ip_network("10.0.0.0/8")]
    gater.undeny("10.0.0.0/8")
    assert gater.address_denied(Multiaddr("/ip4/10.9.9.9/tcp/1")) is None


def test_ban_peer_with_expiry_and_unban() -> None:
    clock = FakeClock()
    gater = BasicConnectionGater(clock=clock)
    a, b = Identity.generate().peer_id, Identity.generate().peer_id
    gater.ban_peer(a, duration=10)
    gater.ban_peer(b)
    assert gater.peer_denied(a) == f"peer {a} is banned"
    assert set(gater.banned_peers()) == {a, b}
    clock.now += 10
    assert gater.peer_denied(a) is None
    assert gater.banned_peers() == [b]
    clock.now += 1e9
    assert gater.peer_denied(b) is not None
    gater.unban_peer(b)
    assert gater.peer_denied(b) is None


def test_negative_duration_rejected() -> None:
    gater = BasicConnectionGater()
    with pytest.raises(ValueError):
        gater.deny("1.2.3.4", duration=-1)
    with pytest.raises(ValueError):
        gater.ban_peer(Identity.generate().peer_id, duration=-1)


def test_allow_list() -> None:
    gater = BasicConnectionGater(allow=["/ip4/192.168.0.0/ipcidr/16"])
    assert gater.allowlisted(Multiaddr("/ip4/192.168.3.4/tcp/1"))
    assert not gater.allowlisted(Multiaddr("/ip4/192.169.3.4/tcp/1"))
    assert not gater.allowlisted(Multiaddr("/memory/1"))
    gater.allow("::1")
    assert gater.allowlisted(Multiaddr("/ip6/::1/tcp/1"))
    gater.disallow("192.168.0.0/16")
    assert not gater.allowlisted(Multiaddr("/ip4/192.168.3.4/tcp/1"))
