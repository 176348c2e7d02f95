"""The floodsub router core, alone and on a fake network of cores wired through the codec."""

from __future__ import annotations

import random
from collections import Counter, deque

import attrs
import pytest

from p2pstack.identity import Identity, PeerId
from protocols.pubsub import (
    RPC,
    Message,
    MessageTooLarge,
    PubsubProtocolError,
    SubOpts,
    decode_rpc,
    encode_rpc,
)
from protocols.pubsub._floodsub import FloodsubConfig, FloodsubRouter
from protocols.pubsub._message import SignaturePolicy, make_message
from protocols.pubsub._routing import Outgoing, SubscriptionChange


def _router(identity: Identity | None = None, **config: object) -> FloodsubRouter:
    identity = identity or Identity.generate()
    return FloodsubRouter(
        identity.peer_id,
        private_key=identity.private_key,
        config=FloodsubConfig(**config),  # type: ignore[arg-type]
    )


def test_announces_subscriptions_to_new_and_known_peers() -> None:
    router = _router()
    peer = Identity.generate().peer_id
    assert router.add_peer(peer) == []
    assert router.subscribe("a") == [(peer, RPC(subscriptions=(SubOpts(True, "a"),)))]
    assert router.subscribe("a") == []
    late = Identity.generate().peer_id
    assert router.add_peer(late) == [(late, RPC(subscriptions=(SubOpts(True, "a"),)))]
    assert router.add_peer(late) == []
    assert sorted(p for p, _ in router.unsubscribe("a")) == sorted([peer, late])
    assert router.topics == frozenset()


def test_tracks_peer_subscriptions() -> None:
    router = _router()
    peer = Identity.generate().peer_id
    result = router.handle_rpc(
        peer, RPC(subscriptions=(SubOpts(True, "a"), SubOpts(True, "b"), SubOpts(True, "a"))), 0.0
    )
    assert result.changes == (
        SubscriptionChange(peer, "a", True),
        SubscriptionChange(peer, "b", True),
    )
    assert router.peers("a") == [peer]
    result = router.handle_rpc(
        peer, RPC(subscriptions=(SubOpts(False, "a"), SubOpts(False, "c"))), 1.0
    )
    assert result.changes == (SubscriptionChange(peer, "a", False),)
    assert router.peer_topics(peer) == {"b"}
    assert router.remove_peer(peer) == [SubscriptionChange(peer, "b", False)]
    assert router.peers() == []


def test_subscription_bound() -> None:
    router = _router(max_peer_topics=2)
    peer = Identity.generate().peer_id
    subs = tuple(SubOpts(True, str(i)) for i in range(3))
    with pytest.raises(PubsubProtocolError):
        router.handle_rpc(peer, RPC(subscriptions=subs), 0.0)
    assert router.peer_topics(peer) == frozenset()


def test_publish_goes_to_subscribed_peers_only() -> None:
    router = _router()
    sub, other = Identity.generate().peer_id, Identity.generate().peer_id
    router.handle_rpc(sub, RPC(subscriptions=(SubOpts(True, "t"),)), 0.0)
    router.add_peer(other)
    message, msg_id, out = router.publish("t", b"hi", 0.0)
    assert out == [(sub, RPC(publish=(message,)))]
    assert message.from_ == router.local
    assert msg_id == router.local.to_bytes() + message.seqno  # type: ignore[operator]
    second, _, _ = router.publish("t", b"hi", 0.0)
    assert second.seqno_int == message.seqno_int + 1  # type: ignore[operator]


def test_forwarding_excludes_source_and_publisher() -> None:
    router = _router()
    publisher = Identity.generate()
    source, third = Identity.generate().peer_id, Identity.generate().peer_id
    for peer in (publisher.peer_id, source, third):
        router.handle_rpc(peer, RPC(subscriptions=(SubOpts(True, "t"),)), 0.0)
    router.subscribe("t")
    message = make_message("t", b"x", private_key=publisher.private_key, seqno=1)
    result = router.handle_rpc(source, RPC(publish=(message,)), 0.0)
    (received,) = result.received
    assert received.local
    assert router.forward(received) == [(third, RPC(publish=(message,)))]
    again = router.handle_rpc(third, RPC(publish=(message,)), 1.0)
    assert (again.received, again.duplicates) == ((), 1)


@pytest.mark.parametrize("relay", [False, True])
def test_messages_on_other_topics(relay: bool) -> None:
    router = _router(relay_unsubscribed=relay)
    source, subscriber = Identity.generate().peer_id, Identity.generate().peer_id
    router.handle_rpc(subscriber, RPC(subscriptions=(SubOpts(True, "other"),)), 0.0)
    message = make_message("other", b"x", private_key=Identity.generate().private_key)
    result = router.handle_rpc(source, RPC(publish=(message,)), 0.0)
    if relay:
        (received,) = result.received
        assert not received.local
        assert router.forward(received) == [(subscriber, RPC(publish=(message,)))]
    else:
        assert (result.received, result.ignored) == ((), 1)


def test_invalid_and_own_messages_are_not_received() -> None:
    router = _router()
    router.subscribe("t")
    peer = Identity.generate().peer_id
    good = make_message("t", b"x", private_key=Identity.generate().private_key, seqno=1)
    bad = attrs.evolve(good, data=b"y")
    unsigned = Message(topic="t", data=b"z")
    own, _, _ = router.publish("t", b"mine", 0.0)
    result = router.handle_rpc(peer, RPC(publish=(bad, unsigned, own, good)), 200.0)
    assert [r.message for r in result.received] == [good]
    assert [m for m, _ in result.invalid] == [bad, unsigned]
    assert result.duplicates == 1


def test_strict_no_sign_uses_content_ids() -> None:
    local = Identity.generate().peer_id
    router = FloodsubRouter(local, config=FloodsubConfig(policy=SignaturePolicy.STRICT_NO_SIGN))
    message, msg_id, _ = router.publish("t", b"same", 0.0)
    assert message == Message(topic="t", data=b"same")
    assert len(msg_id) == 32
    with pytest.raises(ValueError):
        FloodsubRouter(local)  # StrictSign without a key


class Network:
    """Routers wired by links; RPCs travel through the codec in FIFO order."""

    def __init__(self, count: int, edges: set[tuple[int, int]]) -> None:
        self.identities = [Identity.generate() for _ in range(count)]
        self.routers = [_router(identity) for identity in self.identities]
        self.index = {r.local: i for i, r in enumerate(self.routers)}
        self.wire: deque[tuple[int, PeerId, bytes]] = deque()
        self.delivered: list[Counter[bytes]] = [Counter() for _ in range(count)]
        self.sent = 0
        for a, b in edges:
            self._send(a, self.routers[a].add_peer(self.routers[b].local))
            self._send(b, self.routers[b].add_peer(self.routers[a].local))

    def _send(self, sender: int, out: list[Outgoing]) -> None:
        for peer, rpc in out:
            self.wire.append((self.index[peer], self.routers[sender].local, encode_rpc(rpc)))
            self.sent += 1

    def run(self) -> None:
        steps = 0
        while self.wire:
            steps += 1
            assert steps < 100_000
            target, source, data = self.wire.popleft()
            router = self.routers[target]
            result = router.handle_rpc(source, decode_rpc(data), steps * 0.001)
            for received in result.received:
                if received.local:
                    self.delivered[target][received.msg_id] += 1
                self._send(target, router.forward(received))

    def subscribe(self, node: int, topic: str) -> None:
        self._send(node, self.routers[node].subscribe(topic))

    def publish(self, node: int, topic: str, data: bytes) -> bytes:
        _, msg_id, out = self.routers[node].publish(topic, data, 0.0)
        self._send(node, out)
        return msg_id


def _random_connected(count: int, extra: int, rng: random.Random) -> set[tuple[int, int]]:
    edges = {(rng.randrange(i), i) for i in range(1, count)}  # a random tree
    while len(edges) < count - 1 + extra:
        a, b = rng.sample(range(count), 2)
        if (b, a) not in edges:
            edges.add((a, b))
    return edges


def _reachable(edges: set[tuple[int, int]], source: int, members: set[int]) -> set[int]:
    """Nodes a floodsub message from ``source`` reaches: paths through subscribers only."""
    links = {(a, b) for a, b in edges} | {(b, a) for a, b in edges}
    seen, todo = {source}, [source]
    while todo:
        node = todo.pop()
        for a, b in links:
            if a == node and b in members and b not in seen:
                seen.add(b)
                todo.append(b)
    return seen - {source}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("share", [1.0, 0.6])
def test_every_reachable_subscriber_gets_every_message_exactly_once(
    seed: int, share: float
) -> None:
    rng = random.Random(seed)
    edges = _random_connected(12, 8, rng)
    net = Network(12, edges)
    subscribers = set(rng.sample(range(12), round(12 * share)))
    for node in subscribers:
        net.subscribe(node, "t")
    net.run()
    published = [net.publish(node, "t", f"m{node}".encode()) for node in range(12)]
    net.run()
    for node in range(12):
        expected = Counter(
            {m: 1 for i, m in enumerate(published) if node in _reachable(edges, i, subscribers)}
        )
        assert net.delivered[node] == expected, node
    if share == 1.0:
        assert all(len(net.delivered[node]) == 11 for node in range(12))


def test_non_subscribers_do_not_relay() -> None:
    # line 0 - 1 - 2 where 1 is not subscribed to t: floodsub sends only to subscribed peers
    net = Network(3, {(0, 1), (1, 2)})
    net.subscribe(0, "t")
    net.subscribe(2, "t")
    net.run()
    net.publish(0, "t", b"x")
    net.run()
    assert not net.delivered[2]


def test_line_forwards_end_to_end() -> None:
    net = Network(5, {(i, i + 1) for i in range(4)})
    for node in range(5):
        net.subscribe(node, "t")
    net.run()
    before = net.sent
    msg_id = net.publish(0, "t", b"x")
    net.run()
    assert all(net.delivered[node][msg_id] == 1 for node in range(1, 5))
    assert net.sent - before == 4  # one RPC per hop: never back to the source


def test_publish_size_bound() -> None:
    router = _router(max_rpc_size=1000)
    peer = Identity.generate().peer_id
    router.handle_rpc(peer, RPC(subscriptions=(SubOpts(True, "t"),)), 0.0)
    message, _, out = router.publish("t", b"x" * 800, 0.0)
    assert len(encode_rpc(out[0][1])) <= 1000
    with pytest.raises(MessageTooLarge):
        router.publish("t", b"x" * 1000, 0.0)
    again, _, _ = router.publish("t", b"y", 0.0)
    assert again.seqno_int == message.seqno_int + 1  # type: ignore[operator]
