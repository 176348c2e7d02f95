from __future__ import annotations

import anyio
import pytest

from p2pstack.host import Host
from p2pstack.p2pd.pb import p2pd_pb2 as pb
from protocols.identify import PeerIdentified
from protocols.kad import Kad, KadConfig
from protocols.pubsub import Pubsub
from tests.p2pstack.daemon.conftest import Daemons
from tests.p2pstack.daemon.control import ask, control

pytestmark = pytest.mark.anyio


async def connect(path: str, target: Host) -> None:
    request = pb.Request(
        type=pb.Request.CONNECT,
        connect=pb.ConnectRequest(
            peer=target.peer_id.to_bytes(), addrs=[a.to_bytes() for a in target.listen_addrs]
        ),
    )
    response = await ask(path, request)
    assert response.type == pb.Response.OK, response.error.msg


def dht(kind: pb.DHTRequest.Type.ValueType, **fields: object) -> pb.Request:
    return pb.Request(type=pb.Request.DHT, dht=pb.DHTRequest(type=kind, **fields))  # type: ignore[arg-type]  # protobuf keyword fields


async def test_pubsub_subscribe_publish_topics_and_peers(daemons: Daemons) -> None:
    async with daemons(2, lambda: [Pubsub("floodsub")]) as [(a, a_path, _), (b, b_path, _)]:
        await connect(a_path, b)
        async with control(b_path) as sub:
            subscribed = await sub.request(
                pb.Request(
                    type=pb.Request.PUBSUB,
                    pubsub=pb.PSRequest(type=pb.PSRequest.SUBSCRIBE, topic="t"),
                )
            )
            assert subscribed.type == pb.Response.OK
            with anyio.fail_after(20):
                await a.service(Pubsub).wait_until(lambda ps: b.peer_id in ps.peers("t"))
            peers = await ask(
                a_path,
                pb.Request(
                    type=pb.Request.PUBSUB,
                    pubsub=pb.PSRequest(type=pb.PSRequest.LIST_PEERS, topic="t"),
                ),
            )
            assert list(peers.pubsub.peerIDs) == [b.peer_id.to_bytes()]
            topics = await ask(
                b_path,
                pb.Request(
                    type=pb.Request.PUBSUB, pubsub=pb.PSRequest(type=pb.PSRequest.GET_TOPICS)
                ),
            )
            assert list(topics.pubsub.topics) == ["t"]
            published = await ask(
                a_path,
                pb.Request(
                    type=pb.Request.PUBSUB,
                    pubsub=pb.PSRequest(type=pb.PSRequest.PUBLISH, topic="t", data=b"hi"),
                ),
            )
            assert published.type == pb.Response.OK
            message = await sub.read(pb.PSMessage)
            assert message.data == b"hi" and list(message.topicIDs) == ["t"]
            assert getattr(message, "from") == a.peer_id.to_bytes() and message.signature
        with anyio.fail_after(20):  # closing the subscription's connection leaves the topic
            await b.service(Pubsub).wait_until(lambda ps: "t" not in ps.topics)


def kad() -> list[Kad]:
    return [Kad(KadConfig(mode="server"))]


async def test_dht_requests(daemons: Daemons) -> None:
    async with daemons(3, kad) as [(a, a_path, _), (b, b_path, _), (c, _, _)]:
        await connect(a_path, b)
        await connect(a_path, c)
        key = b"/pk/" + c.peer_id.to_bytes()
        value = c.identity.public_key.to_protobuf()
        put = await ask(a_path, dht(pb.DHTRequest.PUT_VALUE, key=key, value=value))
        assert put.type == pb.Response.OK, put.error.msg
        got = await ask(b_path, dht(pb.DHTRequest.GET_VALUE, key=key))
        assert got.type == pb.Response.OK, got.error.msg
        assert got.dht.value == value
        found = await ask(b_path, dht(pb.DHTRequest.FIND_PEER, peer=c.peer_id.to_bytes()))
        assert found.type == pb.Response.OK, found.error.msg
        assert found.dht.peer.id == c.peer_id.to_bytes()
        assert set(found.dht.peer.addrs) <= {x.to_bytes() for x in c.listen_addrs}
        assert found.dht.peer.addrs
        bad = await ask(a_path, dht(pb.DHTRequest.PUT_VALUE, key=b"/pk/nope", value=b"x"))
        assert bad.type == pb.Response.ERROR
        cid = b"\x01\x55\x12\x20" + bytes(range(32))
        provided = await ask(a_path, dht(pb.DHTRequest.PROVIDE, cid=cid))
        assert provided.type == pb.Response.OK, provided.error.msg
        async with control(b_path) as conn:
            begin = await conn.request(dht(pb.DHTRequest.FIND_PROVIDERS, cid=cid, count=1))
            assert begin.type == pb.Response.OK and begin.dht.type == pb.DHTResponse.BEGIN
            value_frame = await conn.read(pb.DHTResponse)
            assert value_frame.type == pb.DHTResponse.VALUE
            assert value_frame.peer.id == a.peer_id.to_bytes()
            assert (await conn.read(pb.DHTResponse)).type == pb.DHTResponse.END
        async with control(b_path) as conn:
            begin = await conn.request(dht(pb.DHTRequest.GET_CLOSEST_PEERS, key=b"somewhere"))
            assert begin.dht.type == pb.DHTResponse.BEGIN
            closest = []
            while (frame := await conn.read(pb.DHTResponse)).type == pb.DHTResponse.VALUE:
                closest.append(frame.value)
            assert frame.type == pb.DHTResponse.END
            assert a.peer_id.to_bytes() in closest
        key_response = await ask(
            b_path, dht(pb.DHTRequest.GET_PUBLIC_KEY, peer=c.peer_id.to_bytes())
        )
        assert key_response.dht.value == value


async def test_connmanager_and_peerstore_requests(daemons: Daemons) -> None:
    async with daemons(2) as [(a, a_path, _), (b, _, _)]:
        with a.subscribe() as events:
            await connect(a_path, b)
            with anyio.fail_after(20):
                async for event in events:
                    if isinstance(event, PeerIdentified) and event.peer_id == b.peer_id:
                        break
        tag = await ask(
            a_path,
            pb.Request(
                type=pb.Request.CONNMANAGER,
                connManager=pb.ConnManagerRequest(
                    type=pb.ConnManagerRequest.TAG_PEER,
                    peer=b.peer_id.to_bytes(),
                    tag="keep",
                    weight=9,
                ),
            ),
        )
        assert tag.type == pb.Response.OK
        assert a.connmgr.tags(b.peer_id) == {"keep": 9}
        trim = await ask(
            a_path,
            pb.Request(
                type=pb.Request.CONNMANAGER,
                connManager=pb.ConnManagerRequest(type=pb.ConnManagerRequest.TRIM),
            ),
        )
        assert trim.type == pb.Response.OK
        info = await ask(
            a_path,
            pb.Request(
                type=pb.Request.PEERSTORE,
                peerStore=pb.PeerstoreRequest(
                    type=pb.PeerstoreRequest.GET_PEER_INFO, id=b.peer_id.to_bytes()
                ),
            ),
        )
        assert info.peerStore.peer.id == b.peer_id.to_bytes()
        assert {x.to_bytes() for x in b.listen_addrs} <= set(info.peerStore.peer.addrs)
        protos = await ask(
            a_path,
            pb.Request(
                type=pb.Request.PEERSTORE,
                peerStore=pb.PeerstoreRequest(
                    type=pb.PeerstoreRequest.GET_PROTOCOLS, id=b.peer_id.to_bytes()
                ),
            ),
        )
        assert "/ipfs/id/1.0.0" in protos.peerStore.protos
