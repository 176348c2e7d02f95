"""The DHT's sans-IO request handler: the response to every request type and the typed error for
every bad request."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiaddr import Multiaddr

from p2pstack.identity import Identity, PeerId
from protocols.kad._handler import (
    MAX_PROVIDER_ADDRS,
    MAX_PROVIDER_KEY_SIZE,
    RequestHandler,
    check_multihash,
)
from protocols.kad._keyspace import distance, key_of, peer_key
from protocols.kad._store import MemoryProviderStore, MemoryRecordStore
from protocols.kad._table import RoutingTable
from protocols.kad._types import (
    ConnectionType,
    KadMessage,
    KadPeer,
    KadProtocolError,
    MessageType,
    Record,
    RecordValidationError,
)
from protocols.kad._validation import Validators


def make_peer(seed: int | bytes) -> PeerId:
    data = seed if isinstance(seed, bytes) else seed.to_bytes(8, "big")
    return PeerId(b"\x12\x20" + hashlib.sha256(data).digest())


def addr_of(peer: PeerId) -> Multiaddr:
    return Multiaddr(f"/ip4/10.0.0.{peer.to_bytes()[-1]}/tcp/4001")


LOCAL = make_peer(b"local")
LOCAL_ADDR = Multiaddr("/ip4/127.0.0.1/tcp/4001")
CID_KEY = b"\x12\x20" + hashlib.sha256(b"content").digest()


class Newest:
    """A test namespace whose selector prefers the larger value."""

    def validate(self, key: bytes, value: bytes) -> None:
        if value == b"bad":
            raise RecordValidationError("bad value")

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        if b"bad" in values:
            raise RecordValidationError("cannot compare with a bad value")
        return max(range(len(values)), key=lambda index: values[index])


class Node:
    """A handler over a table of 60 peers (every third one without a known address)."""

    def __init__(self, k: int = 20) -> None:
        self.table = RoutingTable(LOCAL, k=k, now=0.0, rng=random.Random(1))
        self.peers = [make_peer(seed) for seed in range(60)]
        for peer in self.peers:
            self.table.add(peer, 0.0)
        self.addressless = set(self.peers[::3])
        self.records = MemoryRecordStore()
        self.providers = MemoryProviderStore()
        self.learned: list[KadPeer] = []
        self.handler = RequestHandler(
            local=LOCAL,
            table=self.table,
            records=self.records,
            providers=self.providers,
            validators=Validators({"newest": Newest()}, passthrough=["test"]),
            peer_info=self.peer_info,
            k=k,
            on_provider=self.learned.append,
            wall_clock=lambda: 1e9,
        )

    def peer_info(self, peer: PeerId) -> KadPeer:
        if peer == LOCAL:
            return KadPeer(LOCAL, (LOCAL_ADDR,))
        if peer in self.addressless:
            return KadPeer(peer)
        return KadPeer(peer, (addr_of(peer),), ConnectionType.CONNECTED)

    def ask(self, request: KadMessage, sender: PeerId | None = None) -> KadMessage | None:
        return self.handler.handle(request, KadPeer(sender or self.peers[1]), 10.0)


def expected_closer(node: Node, key: bytes, requester: PeerId, k: int) -> list[PeerId]:
    ranked = sorted(node.table.peers(), key=lambda peer: distance(peer_key(peer), key_of(key)))
    usable = [peer for peer in ranked if peer != requester and peer not in node.addressless]
    return usable[:k]


def ids(peers: tuple[KadPeer, ...]) -> list[PeerId]:
    return [peer.peer_id for peer in peers]


def test_find_node_returns_k_closest_with_addresses_without_requester() -> None:
    node = Node(k=5)
    target = make_peer(b"target").to_bytes()
    requester = expected_closer(node, target, LOCAL, 1)[0]  # the nearest peer asks
    response = node.ask(
        KadMessage(type=MessageType.FIND_NODE, key=target, cluster_level=3), requester
    )
    assert response is not None
    assert response.type is MessageType.FIND_NODE
    assert response.key == target
    assert response.cluster_level == 3
    assert response.record is None and response.provider_peers == ()
    assert ids(response.closer_peers) == expected_closer(node, target, requester, 5)
    assert requester not in ids(response.closer_peers)
    assert all(peer.addrs == (addr_of(peer.peer_id),) for peer in response.closer_peers)
    assert all(peer.connection is ConnectionType.CONNECTED for peer in response.closer_peers)


def test_find_node_of_a_table_peer_puts_it_first() -> None:
    node = Node()
    wanted = node.peers[4]  # has addresses (index not a multiple of 3)
    request = KadMessage(type=MessageType.FIND_NODE, key=wanted.to_bytes())
    response = node.ask(request, node.peers[2])
    assert response is not None
    assert ids(response.closer_peers)[0] == wanted
    assert len(response.closer_peers) == 20


def test_find_node_of_ourselves_answers_exactly_us() -> None:
    node = Node()
    response = node.ask(KadMessage(type=MessageType.FIND_NODE, key=LOCAL.to_bytes()))
    assert response is not None
    assert response.closer_peers == (KadPeer(LOCAL, (LOCAL_ADDR,)),)


def test_find_node_never_returns_local_or_requester() -> None:
    node = Node(k=60)
    for requester in node.peers[:10]:
        request = KadMessage(type=MessageType.FIND_NODE, key=requester.to_bytes())
        response = node.ask(request, requester)
        assert response is not None
        found = ids(response.closer_peers)
        assert requester not in found and LOCAL not in found
        assert sorted(found) == sorted(set(node.peers) - node.addressless - {requester})


def test_find_node_on_empty_table() -> None:
    node = Node()
    for peer in node.peers:
        node.table.remove(peer)
    response = node.ask(KadMessage(type=MessageType.FIND_NODE, key=b"anything"))
    assert response is not None and response.closer_peers == ()


def test_put_value_stores_and_echoes() -> None:
    node = Node()
    record = Record(key=b"/test/a", value=b"v1", time_received="2020-01-01T00:00:00Z")
    request = KadMessage(type=MessageType.PUT_VALUE, key=b"/test/a", record=record, cluster_level=1)
    assert node.ask(request) == request
    padded = attrs.evolve(request, closer_peers=(KadPeer(LOCAL),), provider_peers=(KadPeer(LOCAL),))
    assert node.ask(padded) == request, "the request's record is echoed, not its peers"
    stored = node.records.get(b"/test/a", 11.0)
    assert stored is not None and stored.value == b"v1"
    # The stored copy carries our own receive time, not the sender's (handler's clock: 1e9 s).
    assert stored.time_received == "2001-09-09T01:46:40.000000000Z"
    answer = node.ask(KadMessage(type=MessageType.GET_VALUE, key=b"/test/a"))
    assert answer is not None and answer.record is not None
    assert answer.record.time_received == "2001-09-09T01:46:40.000000000Z"


def test_get_value_returns_record_and_closer_peers() -> None:
    node = Node(k=4)
    put = KadMessage(type=MessageType.PUT_VALUE, key=b"/test/a", record=Record(b"/test/a", b"v1"))
    node.ask(put)
    requester = node.peers[5]
    response = node.ask(KadMessage(type=MessageType.GET_VALUE, key=b"/test/a"), requester)
    assert response is not None
    assert response.type is MessageType.GET_VALUE
    assert response.key == b"/test/a"
    assert response.record is not None and response.record.value == b"v1"
    assert response.record.key == b"/test/a"
    assert ids(response.closer_peers) == expected_closer(node, b"/test/a", requester, 4)


def test_get_value_missing_returns_only_closer_peers() -> None:
    node = Node(k=3)
    response = node.ask(KadMessage(type=MessageType.GET_VALUE, key=b"/test/none"))
    assert response is not None
    assert response.record is None
    assert len(response.closer_peers) == 3


def test_get_value_of_inlined_public_key() -> None:
    node = Node()
    identity = Identity.generate()
    key = b"/pk/" + identity.peer_id.to_bytes()
    response = node.ask(KadMessage(type=MessageType.GET_VALUE, key=key))
    assert response is not None and response.record is not None
    assert response.record.value == identity.public_key.to_protobuf()
    # A hashed peer ID does not carry its key: nothing to answer with.
    hashed = node.ask(KadMessage(type=MessageType.GET_VALUE, key=b"/pk/" + make_peer(1).to_bytes()))
    assert hashed is not None and hashed.record is None
    junk = node.ask(KadMessage(type=MessageType.GET_VALUE, key=b"/pk/not a peer id"))
    assert junk is not None and junk.record is None


def put(node: Node, value: bytes) -> KadMessage | None:
    key = b"/newest/x"
    return node.ask(KadMessage(type=MessageType.PUT_VALUE, key=key, record=Record(key, value)))


def stored_value(node: Node) -> bytes | None:
    record = node.records.get(b"/newest/x", 12.0)
    return None if record is None else record.value


def test_put_value_keeps_the_record_select_prefers() -> None:
    node = Node()
    put(node, b"2")
    assert stored_value(node) == b"2"
    older = put(node, b"1")
    assert older is not None and older.record == Record(b"/newest/x", b"1"), "still echoed"
    assert stored_value(node) == b"2"
    put(node, b"3")
    assert stored_value(node) == b"3"


def test_put_value_replaces_a_held_record_that_no_longer_validates() -> None:
    node = Node()
    node.records.put(Record(b"/newest/x", b"bad"), 0.0)
    put(node, b"1")
    assert stored_value(node) == b"1"


def test_put_value_bad_requests() -> None:
    node = Node()
    with pytest.raises(KadProtocolError, match="without a record"):
        node.ask(KadMessage(type=MessageType.PUT_VALUE, key=b"/test/a"))
    mismatched = KadMessage(
        type=MessageType.PUT_VALUE, key=b"/test/a", record=Record(b"/test/b", b"v")
    )
    with pytest.raises(KadProtocolError, match="differs"):
        node.ask(mismatched)
    with pytest.raises(RecordValidationError, match="bad value"):
        put(node, b"bad")
    unknown = KadMessage(
        type=MessageType.PUT_VALUE, key=b"/nope/a", record=Record(b"/nope/a", b"v")
    )
    with pytest.raises(RecordValidationError):
        node.ask(unknown)
    no_namespace = KadMessage(
        type=MessageType.PUT_VALUE, key=b"plain", record=Record(b"plain", b"v")
    )
    with pytest.raises(RecordValidationError):
        node.ask(no_namespace)
    pk_key = b"/pk/" + Identity.generate().peer_id.to_bytes()
    wrong_pk = Identity.generate().public_key.to_protobuf()
    with pytest.raises(RecordValidationError):
        node.ask(
            KadMessage(type=MessageType.PUT_VALUE, key=pk_key, record=Record(pk_key, wrong_pk))
        )
    assert len(node.records) == 0


def test_put_value_into_a_full_store_is_refused() -> None:
    node = Node()
    node.handler.records = MemoryRecordStore(max_records=1)
    put(node, b"1")
    other = KadMessage(type=MessageType.PUT_VALUE, key=b"/test/b", record=Record(b"/test/b", b"v"))
    with pytest.raises(KadProtocolError, match="not stored"):
        node.ask(other)
    too_big = Record(b"/test/c", b"v" * 20_000)
    with pytest.raises(RecordValidationError):
        node.ask(KadMessage(type=MessageType.PUT_VALUE, key=b"/test/c", record=too_big))


def add_provider(
    node: Node, sender: PeerId, entries: tuple[KadPeer, ...], key: bytes = CID_KEY
) -> None:
    request = KadMessage(type=MessageType.ADD_PROVIDER, key=key, provider_peers=entries)
    assert node.ask(request, sender) is None


def test_add_provider_then_get_providers() -> None:
    node = Node(k=6)
    provider = make_peer(b"provider")
    addr = Multiaddr("/ip4/192.0.2.1/tcp/4001")
    add_provider(
        node, provider, (KadPeer(provider, (addr, addr)), KadPeer(provider, (LOCAL_ADDR,)))
    )
    assert node.learned == [KadPeer(provider, (addr, LOCAL_ADDR))]
    requester = node.peers[7]
    request = KadMessage(type=MessageType.GET_PROVIDERS, key=CID_KEY, cluster_level=1)
    response = node.ask(request, requester)
    assert response is not None
    assert response.type is MessageType.GET_PROVIDERS
    assert response.key == CID_KEY and response.cluster_level == 1
    assert response.provider_peers == (KadPeer(provider, (addr, LOCAL_ADDR)),)
    assert ids(response.closer_peers) == expected_closer(node, CID_KEY, requester, 6)


def test_add_provider_ignores_entries_for_others_next_to_the_senders() -> None:
    node = Node()
    sender, other = make_peer(b"sender"), make_peer(b"other")
    add_provider(node, sender, (KadPeer(other, (LOCAL_ADDR,)), KadPeer(sender, (LOCAL_ADDR,))))
    assert [peer.peer_id for peer in node.providers.get(CID_KEY, 11.0)] == [sender]


def test_add_provider_keeps_a_bounded_number_of_addresses() -> None:
    node = Node()
    sender = make_peer(b"sender")
    addrs = tuple(Multiaddr(f"/ip4/192.0.2.1/tcp/{port}") for port in range(1000, 1100))
    add_provider(node, sender, (KadPeer(sender, addrs),))
    assert node.learned == [KadPeer(sender, addrs[:MAX_PROVIDER_ADDRS])]


def test_get_providers_without_providers() -> None:
    node = Node(k=2)
    response = node.ask(KadMessage(type=MessageType.GET_PROVIDERS, key=CID_KEY))
    assert response is not None
    assert response.provider_peers == ()
    assert len(response.closer_peers) == 2


def test_add_provider_bad_requests() -> None:
    node = Node()
    sender, other = make_peer(b"sender"), make_peer(b"other")
    with pytest.raises(KadProtocolError, match="sender itself"):
        add_provider(node, sender, (KadPeer(other, (LOCAL_ADDR,)),))
    with pytest.raises(KadProtocolError, match="sender itself"):
        add_provider(node, sender, ())
    with pytest.raises(KadProtocolError, match="without addresses"):
        add_provider(node, sender, (KadPeer(sender),))
    with pytest.raises(KadProtocolError, match="multihash"):
        add_provider(node, sender, (KadPeer(sender, (LOCAL_ADDR,)),), key=b"\x12\x20short")
    assert len(node.providers) == 0
    assert node.learned == []


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (b"", "empty"),
        (b"\x12\x20" + bytes(32) + b"x", "does not match"),
        (b"\x12", "not a multihash"),
        (b"\xff", "not a multihash"),
        (b"\x00" + bytes([MAX_PROVIDER_KEY_SIZE]) + bytes(MAX_PROVIDER_KEY_SIZE), "longer"),
    ],
)
def test_provider_keys_must_be_multihashes(key: bytes, message: str) -> None:
    with pytest.raises(KadProtocolError, match=message):
        check_multihash(key)
    with pytest.raises(KadProtocolError, match=message):
        Node().ask(KadMessage(type=MessageType.GET_PROVIDERS, key=key))


def test_valid_multihashes_pass() -> None:
    check_multihash(CID_KEY)
    check_multihash(b"\x00\x00")  # identity multihash of nothing
    check_multihash(b"\x13\x40" + bytes(64))  # sha2-512


def test_ping_is_echoed() -> None:
    request = KadMessage(type=MessageType.PING, cluster_level=2)
    assert Node().ask(request) == request
    padded = KadMessage(type=MessageType.PING, key=b"k", closer_peers=(KadPeer(LOCAL),))
    assert Node().ask(padded) == KadMessage(type=MessageType.PING, key=b"k")


@pytest.mark.parametrize("kind", [MessageType.FIND_NODE, MessageType.GET_VALUE])
def test_requests_without_key(kind: MessageType) -> None:
    with pytest.raises(KadProtocolError, match="without a key"):
        Node().ask(KadMessage(type=kind))


def test_unknown_type() -> None:
    request = KadMessage(type=99)  # type: ignore[arg-type]
    with pytest.raises(KadProtocolError, match="unknown"):
        Node().ask(request)


SENDER = make_peer(b"sender")
keys = st.one_of(
    st.binary(max_size=90),
    st.sampled_from([CID_KEY, b"/test/a", b"/newest/x", b"/pk/", b"/ipns/x", LOCAL.to_bytes()]),
)
peers = st.builds(
    KadPeer,
    st.sampled_from([SENDER, LOCAL, make_peer(1), make_peer(2)]),
    st.lists(st.sampled_from([LOCAL_ADDR, Multiaddr("/ip4/192.0.2.1/tcp/1")]), max_size=3).map(
        tuple
    ),
)
requests = st.builds(
    KadMessage,
    type=st.sampled_from(list(MessageType)),
    key=keys,
    record=st.none() | st.builds(Record, keys, st.binary(max_size=20)),
    closer_peers=st.lists(peers, max_size=2).map(tuple),
    provider_peers=st.lists(peers, max_size=3).map(tuple),
    cluster_level=st.integers(0, 5),
)


@settings(max_examples=150, deadline=None)
@given(request=requests)
def test_any_request_gets_an_answer_or_a_typed_error(request: KadMessage) -> None:
    node = Node(k=4)
    try:
        response = node.handler.handle(request, KadPeer(SENDER), 5.0)
    except (KadProtocolError, RecordValidationError):
        return
    if request.type is MessageType.ADD_PROVIDER:
        assert response is None
        assert [peer.peer_id for peer in node.learned] == [SENDER]
        return
    assert response is not None
    assert response.type is request.type
    assert response.cluster_level == request.cluster_level
    assert len(response.closer_peers) <= 4
    assert all(
        peer.peer_id not in (SENDER, LOCAL) or request.key == LOCAL.to_bytes()
        for peer in response.closer_peers
    )
