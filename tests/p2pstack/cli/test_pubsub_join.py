"""How ``p2pstack pubsub`` joins through its bootstrap peers (``_pubsub_join``), and the message
events it prints (``_pubsub``), in process over the memory transport."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.builder import open_host
from p2pstack.identity import Identity
from p2pstack.roots.cli import _pubsub_join as join
from p2pstack.roots.cli._common import Output, UserError
from p2pstack.roots.cli._pubsub import message_fields, print_message, pubsub_event
from protocols.identify import Identify
from protocols.pubsub import (
    FloodsubConfig,
    GossipsubConfig,
    Message,
    MessageTooLarge,
    Pubsub,
    PubsubMessage,
    TopicPeerChanged,
)
from tests.protocols.pubsub._network import NO_KEEPALIVE, open_pubsub_host, ps
from transports.memory import MemoryNetwork, MemoryTransport
from transports.plaintext import Plaintext
from transports.yamux import Yamux

pytestmark = pytest.mark.anyio

#: Heartbeats that never come within a test: a GRAFT can only be the one sent on subscribing.
NO_HEARTBEAT = GossipsubConfig(heartbeat_interval=3600.0)
ROUTERS: dict[str, GossipsubConfig | FloodsubConfig] = {
    "gossipsub": NO_HEARTBEAT,
    "floodsub": FloodsubConfig(),
}


def _message(data: bytes, *, seqno: bytes | None = b"\x00" * 7 + b"\x2a") -> PubsubMessage:
    sender = Identity.generate().peer_id
    raw = Message(topic="t", data=data, from_=sender, seqno=seqno)
    number = None if seqno is None else int.from_bytes(seqno, "big")
    return PubsubMessage("t", data, sender, number, b"\x01\x02", None, raw)


def test_message_fields_text_and_binary() -> None:
    text = _message("héllo".encode())
    assert message_fields(text) == {
        "topic": "t",
        "from": str(text.from_peer),
        "seqno": "000000000000002a",
        "data": "héllo",
        "data_b64": "aMOpbGxv",
        "msg_id": "0102",
    }
    binary = message_fields(_message(b"\xff\x00", seqno=None))
    assert (binary["data"], binary["data_b64"], binary["seqno"]) == (None, "/wA=", None)


def test_print_message(capsys: pytest.CaptureFixture[str]) -> None:
    message = _message(b"hi")
    print_message(Output(as_json=False), message)
    print_message(Output(as_json=False), _message(b"\xff"))
    print_message(Output(as_json=True), message)
    text, binary, line = capsys.readouterr().out.splitlines()
    assert text == f"[t] {message.from_peer}: hi"
    assert binary.endswith(": (1 bytes, not UTF-8; base64: /w==)")
    assert json.loads(line) == {"event": "message", **message_fields(message)}


def test_topic_peer_events() -> None:
    peer = Identity.generate().peer_id
    assert pubsub_event(TopicPeerChanged(peer, "t", True)) == (
        "topic_peer_joined",
        f"{peer} joined topic t",
        {"peer_id": str(peer), "topic": "t"},
    )
    name, _, _ = pubsub_event(TopicPeerChanged(peer, "t", False)) or ("", "", {})
    assert name == "topic_peer_left"
    assert pubsub_event(object()) is None


async def test_connect_all_names_the_failure() -> None:
    net = MemoryNetwork()
    async with open_pubsub_host(net, Pubsub(NO_HEARTBEAT)) as host:
        nobody = Multiaddr(f"/memory/999/p2p/{Identity.generate().peer_id}")
        with anyio.fail_after(10), pytest.raises(UserError, match="/memory/999"):
            await join.connect_all(host, [nobody])


@pytest.mark.parametrize("router", ["gossipsub", "floodsub"])
async def test_subscribed_means_the_hub_has_us(router: str) -> None:
    """When ``subscribe_through`` returns, the hub has our subscription (and for gossipsub our
    GRAFT: no heartbeat runs here), and a message the hub publishes reaches us."""
    net = MemoryNetwork()
    async with (
        open_pubsub_host(net, Pubsub(ROUTERS[router])) as hub,
        open_pubsub_host(net, Pubsub(ROUTERS[router])) as client,
    ):
        hub_sub = ps(hub).subscribe("t")
        with anyio.fail_after(10):
            reached = await join.connect_all(client, [hub.addrs[0]])
            assert reached == [hub.peer_id]
            assert await join.wait_links(client, ps(client), reached) == [hub.peer_id]
            sub = await join.subscribe_through(client, ps(client), "t", reached)
            await ps(hub).wait_until(lambda s: client.peer_id in s.peers("t"))
            if router == "gossipsub":
                await ps(hub).wait_until(lambda s: client.peer_id in s.mesh("t"))
            ps(hub).publish("t", b"right after")
            got = await sub.receive()
        assert (got.data, got.from_peer) == (b"right after", hub.peer_id)
        hub_sub.close()


async def test_subscribe_through_a_hub_outside_the_topic_does_not_wait_forever() -> None:
    net = MemoryNetwork()
    async with (
        open_pubsub_host(net, Pubsub(NO_HEARTBEAT)) as hub,
        open_pubsub_host(net, Pubsub(NO_HEARTBEAT)) as client,
    ):
        with anyio.fail_after(10):
            reached = await join.connect_all(client, [hub.addrs[0]])
            await join.wait_links(client, ps(client), reached)
            sub = await join.subscribe_through(client, ps(client), "t", reached, topic_wait=0.2)
            await ps(hub).wait_until(lambda s: client.peer_id in s.peers("t"))
        assert ps(client).mesh("t") == []
        sub.close()


async def test_bootstrap_peer_without_pubsub() -> None:
    net = MemoryNetwork()
    async with AsyncExitStack() as stack:
        plain = await stack.enter_async_context(
            open_host(
                transports=[MemoryTransport(net)],
                security=[Plaintext()],
                muxers=[Yamux(NO_KEEPALIVE)],
                services=[Identify()],
                listen=["/memory/0"],
            )
        )
        client = await stack.enter_async_context(open_pubsub_host(net, Pubsub("floodsub")))
        with anyio.fail_after(10):
            reached = await join.connect_all(client, [plain.addrs[0]])
            with pytest.raises(UserError, match=r"no floodsub peer among the bootstrap peers"):
                await join.wait_links(client, ps(client), reached)


@pytest.mark.parametrize("router", ["gossipsub", "floodsub"])
async def test_publish_through_waits_for_subscribers(router: str) -> None:
    net = MemoryNetwork()
    async with (
        open_pubsub_host(net, Pubsub(ROUTERS[router])) as hub,
        open_pubsub_host(net, Pubsub(ROUTERS[router])) as client,
    ):
        with anyio.fail_after(10):
            reached = await join.connect_all(client, [hub.addrs[0]])
            await join.wait_links(client, ps(client), reached)
            with pytest.raises(UserError) as info:
                await join.publish_through(client, ps(client), "t", b"x", wait_peers=1, timeout=0.2)
            assert (
                str(info.value) == "timed out after 0.2 s waiting for 1 subscriber of t (0 known)"
            )
            sub = ps(hub).subscribe("t")  # the hub's subscription is what the client waits for
            published = await join.publish_through(
                client, ps(client), "t", b"now", wait_peers=1, timeout=5
            )
            got = await sub.receive()
        assert published.peers == 1
        assert (got.data, got.from_peer, got.msg_id) == (b"now", client.peer_id, published.msg_id)
        with pytest.raises(MessageTooLarge):
            await join.publish_through(
                client, ps(client), "t", bytes(2 << 20), wait_peers=0, timeout=1
            )
        sub.close()
