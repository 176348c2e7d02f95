from __future__ import annotations

import tracemalloc

import attrs
import pytest
from multiaddr import Multiaddr

from p2pstack.errors import IdentityError
from p2pstack.identity import Identity, PeerRecord
from p2pstack.peerstore import (
    ADDR_TTL_PERMANENT,
    MemoryPeerstore,
    PeerStore,
    Peerstore,
    PeerstoreLimits,
)

ALICE = Identity.generate()
BOB = Identity.generate()
A1 = Multiaddr("/ip4/1.2.3.4/tcp/1")
A2 = Multiaddr("/ip4/1.2.3.4/tcp/2")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def store(clock: Clock | None = None, **limits: int | float) -> Peerstore:
    return Peerstore(limits=PeerstoreLimits(**limits), clock=clock or Clock())  # type: ignore[arg-type]


def test_memory_peerstore_is_a_peerstore() -> None:
    typed: PeerStore = MemoryPeerstore()
    assert MemoryPeerstore is Peerstore
    assert typed.addrs(ALICE.peer_id) == []


def test_addresses_expire_and_most_durable_first() -> None:
    clock = Clock()
    s = store(clock)
    s.add_addrs(ALICE.peer_id, [A1], 10)
    s.add_addrs(ALICE.peer_id, [A2], 20)
    assert s.addrs(ALICE.peer_id) == [A2, A1]
    clock.now += 15
    assert s.addrs(ALICE.peer_id) == [A2]
    s.add_addrs(ALICE.peer_id, [A2], 1)  # a shorter TTL never shortens
    clock.now += 4
    assert s.addrs(ALICE.peer_id) == [A2]


def test_protocol_bounds_count_length_and_bytes() -> None:
    s = store(max_protocols_per_peer=3, max_protocol_length=10)
    s.set_protocols(ALICE.peer_id, ["/a", "/" + "x" * 20, "/b", "/a", "/c", "/d"])
    assert s.protocols(ALICE.peer_id) == ["/a", "/b", "/c"]
    tight = store(max_bytes_per_peer=2048, max_protocol_length=1000)
    tight.set_protocols(BOB.peer_id, [f"/p/{i}/" + "y" * 200 for i in range(100)])
    kept = tight.protocols(BOB.peer_id)
    assert 0 < len(kept) < 10
    assert tight.statistics().approx_bytes <= 2048


def test_metadata_bounds() -> None:
    s = store(max_metadata_keys=2, max_metadata_value=5)
    s.set_metadata(ALICE.peer_id, "agent_version", "0123456789")
    s.set_metadata(ALICE.peer_id, "k2", "v")
    s.set_metadata(ALICE.peer_id, "k3", "v")
    s.set_metadata(ALICE.peer_id, "k" * 100, "v")
    assert s.metadata(ALICE.peer_id, "agent_version") == "01234"
    assert s.metadata(ALICE.peer_id, "k3") is None


def test_unconnected_peer_data_expires_pinned_never() -> None:
    clock = Clock()
    s = store(clock, forget_after=60)
    s.set_protocols(ALICE.peer_id, ["/a"])
    s.set_metadata(ALICE.peer_id, "agent_version", "x")
    s.set_protocols(BOB.peer_id, ["/b"])
    s.pin(BOB.peer_id, "connected")
    clock.now += 61
    assert s.protocols(ALICE.peer_id) == []
    assert ALICE.peer_id not in s
    assert s.protocols(BOB.peer_id) == ["/b"]
    s.unpin(BOB.peer_id, "connected")  # the expiry clock starts at the disconnection
    clock.now += 59
    assert s.protocols(BOB.peer_id) == ["/b"]
    clock.now += 2
    assert s.peers() == []
    assert s.statistics().expired_peers == 2
    assert s.statistics().approx_bytes == 0


def test_unexpired_address_keeps_the_peer() -> None:
    clock = Clock()
    s = store(clock, forget_after=60)
    s.add_addrs(ALICE.peer_id, [A1], ADDR_TTL_PERMANENT)
    s.set_protocols(ALICE.peer_id, ["/a"])
    clock.now += 10_000
    assert s.protocols(ALICE.peer_id) == ["/a"]


def test_eviction_skips_pinned_and_hook_pinned() -> None:
    ids = [Identity.generate().peer_id for _ in range(5)]
    connected = {ids[1]}
    s = Peerstore(limits=PeerstoreLimits(max_peers=3), is_pinned=connected.__contains__)
    s.pin(ids[0], "protected")
    for peer in ids:
        s.set_protocols(peer, ["/x"])
    # ids[0] (pinned) and ids[1] (connected) are the oldest but survive; ids[2] goes.
    assert set(s.peers()) == {ids[0], ids[1], ids[4]}
    assert s.statistics().evicted_peers == 2
    assert s.statistics().pinned_peers == 2


def test_total_bytes_bound_evicts_least_recent() -> None:
    s = store(max_total_bytes=20_000, max_protocol_length=1000)
    ids = [Identity.generate().peer_id for _ in range(30)]
    for peer in ids:
        s.set_protocols(peer, ["/p" + "z" * 900, "/q" + "z" * 900])
    stats = s.statistics()
    assert stats.approx_bytes <= 20_000
    assert 0 < stats.peers < 30
    assert ids[-1] in s and ids[0] not in s


def test_public_key_checked() -> None:
    s = store()
    s.set_public_key(ALICE.peer_id, ALICE.public_key)
    assert s.public_key(ALICE.peer_id) == ALICE.public_key
    with pytest.raises(IdentityError):
        s.set_public_key(ALICE.peer_id, BOB.public_key)


def record(identity: Identity, seq: int, *addrs: Multiaddr) -> bytes:
    return PeerRecord(identity.peer_id, seq, addrs).seal(identity.private_key).to_bytes()


def test_signed_records_keep_highest_seq() -> None:
    s = store()
    assert s.consume_signed_record(record(ALICE, 5, A1))
    assert not s.consume_signed_record(record(ALICE, 4, A2))
    assert not s.consume_signed_record(record(ALICE, 5, A2))
    got = s.peer_record(ALICE.peer_id)
    assert got is not None and got.seq == 5
    assert s.addrs(ALICE.peer_id) == [A1]
    sealed = PeerRecord(ALICE.peer_id, 9, (A2,)).seal(ALICE.private_key)
    assert s.add_signed_record(sealed)
    envelope = s.signed_record(ALICE.peer_id)
    assert envelope is not None and envelope.to_bytes() == sealed.to_bytes()
    assert set(s.addrs(ALICE.peer_id)) == {A1, A2}
    assert s.public_key(ALICE.peer_id) == ALICE.public_key
    assert s.signed_record(BOB.peer_id) is None


def test_signed_record_rejections() -> None:
    s = store(max_bytes_per_peer=1024)
    forged = attrs.evolve(
        PeerRecord.from_envelope_bytes(record(ALICE, 1, A1))[1], public_key=BOB.public_key
    )
    with pytest.raises(IdentityError):
        s.consume_signed_record(forged)
    with pytest.raises(IdentityError):
        s.consume_signed_record(b"\x00garbage")
    many = [Multiaddr(f"/ip4/1.2.3.{i}/tcp/{i + 1}") for i in range(200)]
    assert not s.consume_signed_record(record(ALICE, 1, *many))  # over the per-peer bound
    assert ALICE.peer_id not in s


def test_hostile_identify_sized_input_is_bounded_and_measured() -> None:
    # What identify stores for a peer that sends ~58 KB of protocols, 100 addresses and a
    # 5 KB agent string: each peer costs at most max_bytes_per_peer, and the accounting is
    # close to what Python really holds.
    limits = PeerstoreLimits(max_bytes_per_peer=16 * 1024, max_total_bytes=10**9)
    s = Peerstore(limits=limits)
    peers = [Identity.generate() for _ in range(40)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n, ident in enumerate(peers):
            s.set_public_key(ident.peer_id, ident.public_key)
            s.add_addrs(
                ident.peer_id, [Multiaddr(f"/ip4/1.{n}.3.{i}/tcp/{i + 1}") for i in range(100)], 60
            )
            s.set_protocols(ident.peer_id, [f"/p/{n}/{i}/" + "x" * 200 for i in range(280)])
            s.set_metadata(ident.peer_id, "agent_version", "a" * 5000)
        real = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    accounted = s.statistics().approx_bytes
    assert accounted <= len(peers) * limits.max_bytes_per_peer
    assert real <= 1.5 * accounted
    assert 0 < len(s.addrs(peers[0].peer_id)) < 100
