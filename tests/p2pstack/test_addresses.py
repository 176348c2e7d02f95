"""Observed addresses, advertised addresses and reachability (p2pstack.addresses)."""

from __future__ import annotations

import attrs
import pytest
from multiaddr import Multiaddr

from p2pstack.addresses import (
    AddressConfig,
    AddressManager,
    ObservedAddrBook,
    is_public_addr,
    observer_group,
    transport_key,
)
from p2pstack.events import (
    AddrReachabilityChanged,
    EventBus,
    ObservedAddrsChanged,
    ReachabilityChanged,
)
from p2pstack.identity import Identity, PeerId

LOCAL = Multiaddr("/ip4/192.168.1.10/tcp/4001")
SEEN = Multiaddr("/ip4/203.0.113.7/tcp/4001")  # TEST-NET-3: documentation only


def test_public_addresses() -> None:
    assert is_public_addr(Multiaddr("/ip4/8.8.8.8/tcp/1"))
    assert is_public_addr(Multiaddr("/ip6/2001:4860::8888/udp/1/quic-v1"))
    for private in [
        "/ip4/127.0.0.1/tcp/1",
        "/ip4/10.1.2.3/tcp/1",
        "/ip4/100.64.0.1/tcp/1",
        "/ip4/172.16.0.1/tcp/1",
        "/ip4/192.168.0.1/tcp/1",
        "/ip4/198.18.0.1/tcp/1",
        "/ip4/192.0.2.1/tcp/1",
        "/ip4/0.0.0.0/tcp/1",
        "/ip6/::1/tcp/1",
        "/ip6/fe80::1/tcp/1",
        "/ip6/fd00::1/tcp/1",
        "/ip6/::ffff:10.0.0.1/tcp/1",
        "/dns4/example.com/tcp/1",
        "/memory/3",
    ]:
        assert not is_public_addr(Multiaddr(private)), private


def test_transport_key_and_groups() -> None:
    assert transport_key(Multiaddr("/ip4/1.2.3.4/udp/5/quic-v1/p2p/" + _peer())) == (
        "ip4",
        "udp",
        "5",
        "quic-v1",
    )
    assert transport_key(Multiaddr("/memory/4")) is None
    assert observer_group(Multiaddr("/ip6/2001:db8:1:2::1/tcp/1")) == "2001:db8:1::/56"
    assert observer_group(Multiaddr("/ip4/10.0.0.1/tcp/1")) == "10.0.0.1"


def _peer() -> str:
    return str(Identity.generate().peer_id)


def test_confirmation_needs_distinct_observers() -> None:
    book = ObservedAddrBook(AddressConfig(confirmations=3))
    for _ in range(5):  # one observer repeating itself confirms nothing
        assert book.record(LOCAL, SEEN, "a", 0.0)
    assert book.confirmed(1.0) == []
    book.record(LOCAL, SEEN, "b", 1.0)
    book.record(LOCAL, SEEN, "c", 2.0)
    [entry] = book.confirmed(2.0)
    assert (entry.addr, entry.observers, entry.local) == (SEEN, 3, ("ip4", "tcp", "4001"))


def test_observations_expire_and_mismatched_families_are_dropped() -> None:
    book = ObservedAddrBook(AddressConfig(confirmations=2, ttl=10.0))
    book.record(LOCAL, SEEN, "a", 0.0)
    book.record(LOCAL, SEEN, "b", 8.0)
    assert book.confirmed(9.0)
    assert not book.confirmed(10.5)  # "a" expired
    assert book.entries(19.0) == []  # everything expired
    assert not book.record(LOCAL, Multiaddr("/ip6/2001:db8::1/tcp/4001"), "a", 0.0)
    assert not book.record(LOCAL, Multiaddr("/memory/1"), "a", 0.0)


def test_book_is_bounded() -> None:
    cfg = AddressConfig(confirmations=2, max_local=3, max_observed=4, max_observers=5)
    book = ObservedAddrBook(cfg)
    for i in range(50):
        local = Multiaddr(f"/ip4/10.0.0.1/tcp/{1000 + i % 7}")
        book.record(local, Multiaddr(f"/ip4/203.0.113.{i % 11}/tcp/{i}"), f"o{i}", float(i))
        book.record(LOCAL, Multiaddr(f"/ip4/203.0.113.{i}/tcp/1"), f"o{i}", float(i))
        book.record(LOCAL, SEEN, f"o{i}", float(i))
    entries = book.entries(50.0)
    assert len({e.local for e in entries}) <= 3
    assert all(e.observers <= 5 for e in entries)
    assert len(entries) <= 3 * 4


class _Conn:
    def __init__(self, local: str, remote: str, peer: PeerId, limited: bool = False) -> None:
        self.local_multiaddr = Multiaddr(local)
        self.remote_multiaddr = Multiaddr(remote)
        self.remote_peer = peer
        self.limited = limited


def _manager(config: AddressConfig, listen: list[str]) -> tuple[AddressManager, list[object]]:
    bus = EventBus()
    seen: list[object] = []
    bus.on(object, seen.append)
    now = [0.0]
    manager = AddressManager(
        listen_addrs=lambda: [Multiaddr(a) for a in listen],
        events=bus,
        clock=lambda: now[0],
        config=config,
    )
    return manager, seen


def test_manager_confirms_by_ip_group_and_advertises_listening_sockets() -> None:
    manager, seen = _manager(AddressConfig(confirmations=2), ["/ip4/192.168.1.10/tcp/4001"])
    peers = [Identity.generate().peer_id for _ in range(3)]
    # Two peers behind one IP count once; a relayed connection counts not at all.
    manager.record_observed(_Conn(str(LOCAL), "/ip4/198.51.100.1/tcp/9", peers[0]), SEEN)
    manager.record_observed(_Conn(str(LOCAL), "/ip4/198.51.100.1/tcp/8", peers[1]), SEEN)
    manager.record_observed(_Conn(str(LOCAL), "/ip4/198.51.100.2/tcp/8", peers[2], True), SEEN)
    assert manager.observed() == []
    assert manager.observed(include_unconfirmed=True) == [SEEN]
    # An outbound connection from an ephemeral port is observed but not advertised.
    ephemeral = Multiaddr("/ip4/203.0.113.7/tcp/51000")
    for i in range(2):
        conn = _Conn("/ip4/192.168.1.10/tcp/51000", f"/ip4/198.51.100.{i + 5}/tcp/1", peers[0])
        manager.record_observed(conn, ephemeral)
    manager.record_observed(_Conn(str(LOCAL), "/ip4/198.51.100.3/tcp/8", peers[2]), SEEN)
    assert set(manager.observed()) == {SEEN, ephemeral}
    assert manager.advertised() == [Multiaddr("/ip4/192.168.1.10/tcp/4001"), SEEN]
    changes = [e for e in seen if isinstance(e, ObservedAddrsChanged)]
    assert [set(e.addrs) for e in changes] == [{ephemeral}, {SEEN, ephemeral}]


def test_manager_by_peer_external_and_reachability_events() -> None:
    config = attrs.evolve(AddressConfig(confirmations=1), distinct_by="peer")
    manager, seen = _manager(config, ["/ip4/127.0.0.1/tcp/4001"])
    me = Identity.generate().peer_id
    conn = _Conn("/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/tcp/5", me)
    manager.record_observed(conn, Multiaddr("/ip4/127.0.0.1/tcp/4001"))
    assert manager.advertised() == [Multiaddr("/ip4/127.0.0.1/tcp/4001")]  # no duplicate
    circuit = Multiaddr(f"/ip4/127.0.0.1/tcp/9/p2p/{me}/p2p-circuit")
    manager.set_external("relay", [circuit])
    assert manager.advertised()[-1] == circuit
    manager.set_external("relay", [])
    assert circuit not in manager.advertised()

    assert manager.reachability == "unknown"
    manager.set_reachability("private", source="autonat")
    manager.set_reachability("private", source="autonat")  # no change, no event
    manager.set_reachability("public", source="autonat-v2")
    changes = [e for e in seen if isinstance(e, ReachabilityChanged)]
    assert [(e.previous, e.reachability, e.source) for e in changes] == [
        ("unknown", "private", "autonat"),
        ("private", "public", "autonat-v2"),
    ]
    addr = Multiaddr("/ip4/127.0.0.1/tcp/4001")
    manager.set_addr_reachability(addr, "public")
    manager.set_addr_reachability(addr, "public")
    assert manager.addr_reachability() == {addr: "public"}
    assert len([e for e in seen if isinstance(e, AddrReachabilityChanged)]) == 1
    for i in range(AddressManager.MAX_ADDR_REACHABILITY + 10):
        manager.set_addr_reachability(Multiaddr(f"/ip4/127.0.0.1/tcp/{i + 1}"), "private")
    assert len(manager.addr_reachability()) == AddressManager.MAX_ADDR_REACHABILITY


def test_expiry_is_published() -> None:
    bus = EventBus()
    seen: list[ObservedAddrsChanged] = []
    bus.on(ObservedAddrsChanged, seen.append)
    now = [0.0]
    manager = AddressManager(
        listen_addrs=list,
        events=bus,
        clock=lambda: now[0],
        config=AddressConfig(confirmations=1, ttl=5.0),
    )
    manager.record_observed(
        _Conn(str(LOCAL), "/ip4/198.51.100.1/tcp/9", Identity.generate().peer_id), SEEN
    )
    now[0] = 4.0
    manager.expire()
    now[0] = 6.0
    manager.expire()
    assert [list(e.addrs) for e in seen] == [[SEEN], []]


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        AddressConfig(confirmations=0)
