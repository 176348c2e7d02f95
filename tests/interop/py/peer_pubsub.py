"""Pubsub part of the py-libp2p interop peer: py-libp2p's Pubsub with GossipSub or FloodSub.

Specs: https://github.com/libp2p/specs/tree/master/pubsub. With ``--pubsub`` the peer reads one
command per line from stdin and answers each with one JSON event carrying ``"command"``; every
received message is reported as a ``message`` event. The contract is described in ../README.md.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import multiaddr
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.floodsub import FloodSub
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub, get_peer_and_seqno_msg_id
from libp2p.tools.anyio_service import background_trio_service
from peer_common import Config, PeerError, emit, muxer_of

FLOODSUB_PROTOCOL_ID = TProtocol("/floodsub/1.0.0")
Reply = dict[str, Any]


class PubsubNode:
    """The pubsub service, its router, the per-topic readers and the last published id."""

    def __init__(self, host: Any, cfg: Config, nursery: trio.Nursery) -> None:
        self.host = host
        self.cfg = cfg
        self.nursery = nursery
        self.last_published: str | None = None
        self.readers: dict[str, trio.CancelScope] = {}
        self.router: Any = make_router(cfg)
        self.pubsub = Pubsub(host, self.router, msg_id_constructor=self._msg_id)

    def _msg_id(self, msg: rpc_pb2.Message) -> bytes:
        # py's default id: from (peer id bytes) ++ seqno; recorded for our own publications.
        msg_id: bytes = get_peer_and_seqno_msg_id(msg)
        if msg.from_id == self.host.get_id().to_bytes():
            self.last_published = msg_id.hex()
        return msg_id


def make_router(cfg: Config) -> Any:
    if cfg.pubsub == "floodsub":
        return FloodSub([FLOODSUB_PROTOCOL_ID])
    return GossipSub(
        protocols=[PROTOCOL_ID_V12, PROTOCOL_ID_V11, PROTOCOL_ID],
        degree=6,
        degree_low=4,
        degree_high=12,
        heartbeat_interval=1,
        # Every test node is on 127.0.0.1: its eclipse protection wants 3 distinct IPs per mesh.
        eclipse_protection_enabled=False,
        max_messages_per_topic_per_second=1000.0,
    )


@asynccontextmanager
async def open_pubsub(host: Any, cfg: Config) -> AsyncIterator[PubsubNode]:
    """Run Pubsub (and the GossipSub service) on ``host``, then connect to every
    ``--bootstrap`` address; Pubsub must exist before connections so it sees them."""
    async with trio.open_nursery() as nursery:
        node = PubsubNode(host, cfg, nursery)
        async with background_trio_service(node.pubsub):
            if isinstance(node.router, GossipSub):
                async with background_trio_service(node.router):
                    await node.pubsub.wait_until_ready()
                    await _bootstrap(node)
                    yield node
            else:
                await node.pubsub.wait_until_ready()
                await _bootstrap(node)
                yield node
        nursery.cancel_scope.cancel()


async def _bootstrap(node: PubsubNode) -> None:
    for addr in node.cfg.bootstrap:
        reply = await connect(node, addr)
        emit("connected", peer_id=reply["peer_id"], muxer=reply["muxer"], bootstrap=True)


def _report(msg: rpc_pb2.Message) -> None:
    try:
        text: str | None = msg.data.decode()
    except UnicodeDecodeError:
        text = None
    frm = msg.from_id
    emit(
        "message",
        topic=msg.topicIDs[0] if len(msg.topicIDs) == 1 else list(msg.topicIDs),
        **{"from": _peer_str(frm) if frm else None},
        seqno=msg.seqno.hex() if msg.seqno else None,
        data=text,
        data_b64=base64.b64encode(msg.data).decode(),
        msg_id=get_peer_and_seqno_msg_id(msg).hex(),
    )


def _peer_str(raw: bytes) -> str:
    return str(ID(raw))


async def subscribe(node: PubsubNode, topic: str) -> Reply:
    if topic in node.readers:
        return {"event": "subscribed", "topic": topic}
    sub = await node.pubsub.subscribe(topic)
    scope = trio.CancelScope()
    node.readers[topic] = scope

    me = node.host.get_id().to_bytes()

    async def read() -> None:
        with scope:
            while True:
                msg = await sub.get()
                if msg.from_id != me:  # py hands our own publications back; js does not
                    _report(msg)

    node.nursery.start_soon(read)
    return {"event": "subscribed", "topic": topic}


async def unsubscribe(node: PubsubNode, topic: str) -> Reply:
    scope = node.readers.pop(topic, None)
    if scope is not None:
        scope.cancel()
    await node.pubsub.unsubscribe(topic)
    return {"event": "unsubscribed", "topic": topic}


async def publish(node: PubsubNode, topic: str, data: str) -> Reply:
    node.last_published = None
    await node.pubsub.publish(topic, data.encode())
    return {"event": "published", "topic": topic, "msg_id": node.last_published}


async def peers(node: PubsubNode, topic: str) -> Reply:
    # Subscribed and with our outbound stream up: py learns a subscription from the peer's
    # stream, and its publish skips a peer until its own stream is in ``pubsub.peers``.
    found = node.pubsub.peer_topics.get(topic, set()) & set(node.pubsub.peers)
    return {"event": "peers", "topic": topic, "peers": sorted(str(p) for p in found)}


async def mesh(node: PubsubNode, topic: str) -> Reply:
    if not isinstance(node.router, GossipSub):
        raise PeerError("mesh: floodsub has no mesh")
    found = node.router.mesh.get(topic, set())
    return {"event": "mesh", "topic": topic, "peers": sorted(str(p) for p in found)}


async def scores(node: PubsubNode) -> Reply:
    if not isinstance(node.router, GossipSub):
        raise PeerError("scores: floodsub has no peer scores")
    topics = list(node.pubsub.topic_ids)
    ids = sorted(node.pubsub.peers, key=str)
    rows = [{"peer_id": str(p), "score": node.router.scorer.score(p, topics)} for p in ids]
    return {"event": "scores", "peers": rows}


async def connect(node: PubsubNode, addr: str) -> Reply:
    info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
    with trio.fail_after(node.cfg.timeout):
        await node.host.connect(info)
    conn = node.host.get_network().get_connections(info.peer_id)[0]
    return {"event": "connected", "peer_id": str(info.peer_id), "muxer": muxer_of(conn)}


COMMANDS: dict[str, tuple[Callable[..., Awaitable[Reply]], int]] = {
    "subscribe": (subscribe, 1),
    "unsubscribe": (unsubscribe, 1),
    "publish": (publish, 2),
    "peers": (peers, 1),
    "mesh": (mesh, 1),
    "scores": (scores, 0),
    "connect": (connect, 1),
}


async def run_pubsub_command(node: PubsubNode, line: str) -> None:
    """Run one command line; a failure is reported as ``command_error`` and the peer goes on.
    For ``publish TOPIC DATA``, DATA is the rest of the line (it may hold spaces)."""
    name, *args = line.split()
    if name == "publish":
        parts = line.strip().split(None, 2)
        args = parts[1:] if len(parts) == 3 else []
    try:
        spec = COMMANDS.get(name)
        if spec is None or spec[1] != len(args):
            raise PeerError(f"bad command: {line}")
        with trio.fail_after(node.cfg.timeout):
            reply = await spec[0](node, *args)
    except Exception as exc:  # reported to the driver; the peer keeps serving
        emit("command_error", command=name, message=repr(exc))
        return
    event = reply.pop("event")
    emit(event, **reply, command=name)
