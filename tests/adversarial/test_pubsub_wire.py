"""Malformed and oversized pubsub RPCs sent to a node running the ``Pubsub`` service: each must
reset the inbound stream that carried it, be counted (``malformed_rpcs``), cost no memory past
the RPC bound, and leave the honest publisher -> node -> subscriber line delivering; a message
too large to publish raises ``MessageTooLarge``."""

from __future__ import annotations

import logging

import anyio
import pytest

from p2pstack.errors import NETWORK_ERRORS
from p2pstack.host import Stream
from p2pstack.varint import encode_uvarint
from protocols.pubsub import (
    RPC,
    FloodsubConfig,
    GossipsubConfig,
    Message,
    MessageTooLarge,
    PubsubProtocolError,
    SubOpts,
    encode_rpc,
    frame_rpc,
)
from protocols.pubsub import rpc_pb2 as pb
from tests.adversarial.conftest import Report
from tests.adversarial.pubsub_arena import (
    MAX_RPC,
    NODE_FLOOD,
    NODE_GOSSIP,
    PROMPT,
    TOPIC,
    open_pubsub_arena,
    ps,
    router_sizes,
)

pytestmark = pytest.mark.anyio

ROUTERS: dict[str, GossipsubConfig | FloodsubConfig] = {
    "gossipsub": NODE_GOSSIP,
    "floodsub": NODE_FLOOD,
}


def _pb(build: pb.RPC) -> bytes:
    body = build.SerializeToString()
    return encode_uvarint(len(body)) + body


# The protobuf constructors are typed per field; these helpers pass whatever a test builds,
# malformed values included, hence the arg-type ignores.
def _rpc(**fields: object) -> pb.RPC:
    return pb.RPC(**fields)  # type: ignore[arg-type]


def _message(**fields: object) -> pb.RPC:
    return _rpc(publish=[pb.Message(**fields)])  # type: ignore[arg-type]


def _control(**fields: object) -> pb.RPC:
    return _rpc(control=pb.ControlMessage(**fields))  # type: ignore[arg-type]


_TOO_MANY_TOPICS = encode_rpc(RPC(subscriptions=tuple(SubOpts(True, f"t{i}") for i in range(1100))))
_OVERSIZED = encode_rpc(RPC(subscriptions=(SubOpts(True, "x" * MAX_RPC),)))

#: name -> the bytes written on a fresh pubsub stream.
MALFORMED = {
    "not a protobuf (wire type 7)": encode_uvarint(4) + b"\x0f\xff\xff\xff",
    "truncated field": encode_uvarint(3) + b"\x0a\x10ab",
    "length prefix of 11 bytes": b"\xff" * 11 + b"\x01",
    "length prefix over the RPC bound": encode_uvarint(MAX_RPC + 1) + b"\x00" * 1024,
    "length prefix of 2^32": encode_uvarint(1 << 32) + b"\x00" * 1024,
    "RPC over the bound, sent whole": encode_uvarint(len(_OVERSIZED)) + _OVERSIZED,
    "subscription without a topic": _pb(_rpc(subscriptions=[pb.RPC.SubOpts(subscribe=True)])),
    "subscription topic not UTF-8": _pb(
        _rpc(subscriptions=[pb.RPC.SubOpts(subscribe=True, topicid=b"\xff\xfe")])
    ),
    "message without a topic": _pb(_message(data=b"x")),
    "message topic not UTF-8": _pb(_message(topic=b"\xc3\x28", data=b"x")),
    "message from a bad peer ID": _pb(_message(topic=TOPIC.encode(), **{"from": b"\x00\x05ab"})),
    "GRAFT without a topic": _pb(_control(graft=[pb.ControlGraft()])),
    "IHAVE topic not UTF-8": _pb(_control(ihave=[pb.ControlIHave(topicID=b"\x80")])),
    "PRUNE backoff over a year": _pb(
        _control(prune=[pb.ControlPrune(topicID=TOPIC.encode(), backoff=1 << 40)])
    ),
    "PRUNE peer exchange entry without a peer ID": _pb(
        _control(prune=[pb.ControlPrune(topicID=TOPIC.encode(), peers=[pb.PeerInfo()])])
    ),
    "subscriptions to 1,100 topics": encode_uvarint(len(_TOO_MANY_TOPICS)) + _TOO_MANY_TOPICS,
}


def _single_rpc_size(message: Message) -> int:
    return len(encode_rpc(RPC(publish=(message,))))


def _logged_errors(caplog: pytest.LogCaptureFixture) -> list[object]:
    """The errors the node logged with each malformed RPC (the record's last argument)."""
    records = [r for r in caplog.records if str(r.msg).startswith("malformed pubsub RPC")]
    return [r.args[-1] for r in records if isinstance(r.args, tuple)]


async def _send_until_reset(stream: Stream, payload: bytes) -> None:
    """Send ``payload`` and read until the node resets the stream (it never writes on it; it
    may reset before reading everything, or even before our side saw the protocol confirmed)."""
    with anyio.fail_after(PROMPT):
        try:
            await stream.send(payload)
            while True:
                await stream.receive()
        except NETWORK_ERRORS:
            return


@pytest.mark.parametrize("router", ["gossipsub", "floodsub"])
async def test_malformed_rpcs_reset_the_stream(
    router: str, report: Report, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="protocols.pubsub._peer_streams")
    async with open_pubsub_arena(ROUTERS[router]) as arena:
        attacker = await arena.attacker()
        before = router_sizes(arena.node) if router == "gossipsub" else {}
        for count, (name, payload) in enumerate(MALFORMED.items(), start=1):
            stream = await attacker.open()
            started = anyio.current_time()
            await _send_until_reset(stream, payload)
            seconds = anyio.current_time() - started
            stats = ps(arena.node).statistics()
            assert stats.malformed_rpcs == count, name
            errors = _logged_errors(caplog)
            assert len(errors) == count and isinstance(errors[-1], PubsubProtocolError), name
            report.add(
                f"{router}: {name}",
                sent=f"{len(payload)} bytes",
                expected="PubsubProtocolError, stream reset",
                observed=f"reset: {errors[-1]}",
                seconds=round(seconds, 3),
            )
        # Nothing of the bad RPCs was applied (the 1,100 subscriptions were refused whole).
        if router == "gossipsub":
            after = router_sizes(arena.node)
            assert after["peer_topics"] == before["peer_topics"]
            assert after["backoff"] == before["backoff"] == 0
        assert ps(arena.node).peers("t0") == []
        assert stats.received == 1 and stats.invalid == 0
        # The attacker is still a peer (only its stream was reset) and honest traffic flows.
        assert attacker.host.peer_id in ps(arena.node).peers()
        await arena.honest_delivery(count=3)


async def test_oversized_messages(report: Report) -> None:
    async with open_pubsub_arena() as arena:
        node = ps(arena.node)
        with pytest.raises(MessageTooLarge):
            node.publish(TOPIC, b"x" * MAX_RPC)
        attacker = await arena.attacker()
        # A message in an RPC of exactly the bound is taken and forwarded; one byte more
        # resets the stream.
        length = MAX_RPC
        while _single_rpc_size(attacker.message(b"a" * length)) > MAX_RPC:
            length -= 1
        fits = attacker.message(b"a" * length)
        assert _single_rpc_size(fits) == MAX_RPC
        await attacker.send(RPC(publish=(fits,)))
        with anyio.fail_after(PROMPT):
            got = await arena.node_sub.receive()
        assert got.data == fits.data and got.from_peer == attacker.host.peer_id
        big = attacker.message(b"a" * (length + 1))
        stream = attacker.stream
        assert stream is not None
        await _send_until_reset(stream, frame_rpc(RPC(publish=(big,))))
        assert node.statistics().malformed_rpcs == 1
        # The subscriber got the large message through the node (it fits everyone's bound).
        with anyio.fail_after(PROMPT):
            assert (await arena.subscription.receive()).data == fits.data
        report.add(
            "pubsub: message one byte over the RPC bound",
            sent=f"{_single_rpc_size(big)} bytes",
            expected="stream reset; the largest message that fits is delivered",
            observed="reset; delivered",
            seconds=None,
        )
        await arena.honest_delivery(count=3)


async def test_stream_flood_is_capped_per_peer(report: Report) -> None:
    async with open_pubsub_arena() as arena:
        streams = ps(arena.node)._require()[2]
        honest = streams.inbound_streams  # the publisher's and the subscriber's
        attacker = await arena.attacker()
        first = attacker.stream
        for _ in range(16):
            stream = await attacker.open()
            try:  # beyond the per-peer limit the node resets the stream once negotiated
                await stream.send(frame_rpc(RPC(subscriptions=(SubOpts(True, "t"),))))
            except NETWORK_ERRORS:
                pass
        attacker.stream = first  # served: it came first
        await attacker.barrier()
        served = streams.inbound_streams - honest
        assert 1 <= served <= 2  # one per peer (the spec), plus one for a reconnection's overlap
        report.add(
            "pubsub: 17 pubsub streams from one peer",
            sent="17 streams",
            expected="at most 2 served at once, the rest reset",
            observed=f"{served} served",
            seconds=None,
        )
        await arena.honest_delivery(count=3)
