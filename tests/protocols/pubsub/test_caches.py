"""The seen-cache, the gossipsub message cache and the bounded outbound queue."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pstack.identity import Identity
from protocols.pubsub import (
    RPC,
    ControlGraft,
    ControlIHave,
    ControlMessage,
    ControlPrune,
    Message,
    MessageTooLarge,
    SubOpts,
    decode_rpc,
    encode_rpc,
    ensure_fits,
)
from protocols.pubsub._mcache import MessageCache
from protocols.pubsub._queue import OutboundQueue
from protocols.pubsub._seen import SeenCache

PEER = Identity.generate().peer_id
OTHER = Identity.generate().peer_id


def test_seen_cache_ttl() -> None:
    seen = SeenCache(ttl=10.0)
    assert seen.add(b"a", 0.0)
    assert not seen.add(b"a", 5.0)  # first-seen time is kept: expires at 10
    assert seen.has(b"a", 9.9)
    assert not seen.has(b"a", 10.0)
    assert seen.add(b"a", 10.0)
    assert len(seen) == 1


def test_seen_cache_bound() -> None:
    seen = SeenCache(ttl=100.0, max_entries=3)
    for i in range(5):
        assert seen.add(bytes([i]), float(i))
    assert len(seen) == 3
    assert seen.evicted == 2
    assert not seen.has(b"\x00", 5.0)
    assert seen.has(b"\x04", 5.0)
    with pytest.raises(ValueError):
        SeenCache(max_entries=0)


@given(st.lists(st.tuples(st.binary(max_size=2), st.floats(0, 5)), max_size=60))
def test_seen_cache_never_exceeds_bound(ops: list[tuple[bytes, float]]) -> None:
    seen = SeenCache(ttl=3.0, max_entries=8)
    now = 0.0
    for msg_id, step in ops:
        now += step
        seen.add(msg_id, now)
        assert len(seen) <= 8
        assert seen.has(msg_id, now)


def _msg(topic: str, n: int) -> Message:
    return Message(topic=topic, data=bytes([n]))


def test_message_cache_windows() -> None:
    cache = MessageCache(history=3, gossip=2)
    cache.put(b"1", _msg("a", 1))
    cache.put(b"2", _msg("b", 2))
    cache.shift()
    cache.put(b"3", _msg("a", 3))
    assert cache.gossip_ids("a") == [b"1", b"3"]
    cache.shift()
    assert cache.gossip_ids("a") == [b"3"]  # window of b"1" no longer gossiped...
    assert cache.get(b"1") == _msg("a", 1)  # ...but still served
    cache.shift()
    assert cache.get(b"1") is None
    assert b"3" in cache
    assert len(cache) == 1
    assert not cache.put(b"3", _msg("a", 3))


def test_message_cache_bound() -> None:
    cache = MessageCache(max_messages=2)
    assert cache.put(b"1", _msg("a", 1)) and cache.put(b"2", _msg("a", 2))
    assert not cache.put(b"3", _msg("a", 3))
    assert cache.gossip_ids("a") == [b"1", b"2"]
    for _ in range(5):
        cache.shift()
    assert cache.put(b"3", _msg("a", 3))  # room again once old windows went


def test_message_cache_counts_requests_per_peer() -> None:
    cache = MessageCache()
    cache.put(b"x", _msg("a", 0))
    assert cache.get_for_peer(b"x", PEER) == (_msg("a", 0), 1)
    assert cache.get_for_peer(b"x", PEER) == (_msg("a", 0), 2)
    assert cache.get_for_peer(b"x", OTHER) == (_msg("a", 0), 1)
    assert cache.get_for_peer(b"y", PEER) is None
    with pytest.raises(ValueError):
        MessageCache(history=2, gossip=3)


def test_queue_puts_control_first() -> None:
    queue = OutboundQueue()
    queue.push(RPC(publish=(_msg("a", 1),)))
    queue.push(RPC(subscriptions=(SubOpts(True, "a"),)))
    queue.push(RPC(control=ControlMessage(graft=(ControlGraft("a"),))))
    assert len(queue) == 3
    rpc = queue.take()
    assert rpc == RPC(
        subscriptions=(SubOpts(True, "a"),),
        publish=(_msg("a", 1),),
        control=ControlMessage(graft=(ControlGraft("a"),)),
    )
    assert queue.take() is None


def test_queue_bounds_bytes_and_drops() -> None:
    queue = OutboundQueue(max_bytes=1000, max_rpc_size=600)
    big = Message(topic="t", data=b"x" * 400)
    assert queue.push(RPC(publish=(big, big, big))) == 1  # the third is over max_bytes
    assert queue.push(RPC(publish=(Message(topic="t", data=b"y" * 700),))) == 1  # over the RPC
    stats = queue.statistics()
    assert (stats.messages, stats.dropped_messages) == (2, 2)
    first = queue.take()
    assert first is not None
    assert len(first.publish) == 1  # two would exceed the 600-byte RPC
    assert len(encode_rpc(first)) <= 600
    assert queue.push(RPC(publish=(big,))) == 0  # room again
    assert queue.statistics().message_bytes < 1000


@pytest.mark.parametrize("max_rpc_size", [100, 200, 16_384, 1 << 20])
def test_queue_forwards_a_message_that_arrived_within_the_bound(max_rpc_size: int) -> None:
    # A message received in an RPC of exactly the bound fits the same bound going out (and
    # passes the publish check): one byte more does not.
    length = max_rpc_size
    while len(encode_rpc(RPC(publish=(Message(topic="t", data=b"x" * length),)))) > max_rpc_size:
        length -= 1
    exact = Message(topic="t", data=b"x" * length)
    assert len(encode_rpc(RPC(publish=(exact,)))) == max_rpc_size
    ensure_fits(exact, max_rpc_size)
    queue = OutboundQueue(max_bytes=4 * max_rpc_size, max_rpc_size=max_rpc_size)
    assert queue.push(RPC(publish=(exact,))) == 0
    assert queue.take() == RPC(publish=(exact,))
    over = Message(topic="t", data=b"x" * (length + 1))
    assert queue.push(RPC(publish=(over,))) == 1
    with pytest.raises(MessageTooLarge):
        ensure_fits(over, max_rpc_size)


def test_queue_bounds_control() -> None:
    queue = OutboundQueue(max_control=2)
    prune = ControlPrune("t", backoff=60)
    dropped = queue.push(
        RPC(control=ControlMessage(prune=(prune,), ihave=(ControlIHave("t", [b"i"]),)))
    )
    assert dropped == 0
    assert queue.push(RPC(subscriptions=(SubOpts(False, "t"),))) == 1
    assert queue.statistics().dropped_control == 1


@given(
    st.lists(
        st.one_of(
            st.builds(
                lambda n: RPC(publish=(Message(topic="t", data=b"z" * n),)), st.integers(0, 300)
            ),
            st.builds(lambda t: RPC(subscriptions=(SubOpts(True, t),)), st.text(max_size=5)),
            st.builds(
                lambda ids: RPC(control=ControlMessage(ihave=(ControlIHave("t", ids),))),
                st.lists(st.binary(max_size=40), max_size=5),
            ),
        ),
        max_size=30,
    )
)
def test_queue_rpcs_fit_and_keep_order(rpcs: list[RPC]) -> None:
    queue = OutboundQueue(max_bytes=2000, max_control=10, max_rpc_size=512)
    for rpc in rpcs:
        queue.push(rpc)
        assert queue.statistics().message_bytes <= 2000
    sent: list[Message] = []
    while (taken := queue.take()) is not None:
        assert taken
        data = encode_rpc(taken)
        assert len(data) <= 512
        sent += decode_rpc(data).publish
    expected = iter([m for rpc in rpcs for m in rpc.publish])
    # Order kept among what was not dropped: what was sent is a subsequence of what was pushed
    # (equal messages may be pushed several times and only some of them dropped).
    assert all(any(m == e for e in expected) for m in sent)
