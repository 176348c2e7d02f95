"""``DaemonClient`` against a scripted in-process daemon on 127.0.0.1 or a unix socket: one
control connection per request, raw stream after STREAM_OPEN, BEGIN/VALUE/END and single
replies, subscriptions, handlers, typed errors, timeouts and size bounds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest
from multiaddr import Multiaddr

from p2pstack.errors import P2PTimeoutError
from p2pstack.framing import encode_lp
from p2pstack.identity import PeerId, generate_private_key
from p2pstack.p2pd import DaemonClient, DaemonError, DaemonProtocolError, StreamInfo
from p2pstack.p2pd._channel import read_message
from p2pstack.p2pd._sockets import connect_control
from p2pstack.p2pd.pb import p2pd_pb2 as pb

pytestmark = pytest.mark.anyio

PEER = PeerId.from_public_key(generate_private_key().public_key)
ADDR = Multiaddr("/ip4/127.0.0.1/tcp/4001")
OK = pb.Response.OK
Serve = Callable[[pb.Request, anyio.abc.SocketStream], Awaitable[None]]


def lp(*messages: pb.Response | pb.DHTResponse | pb.PSMessage | pb.StreamInfo) -> bytes:
    return b"".join(encode_lp(m.SerializeToString()) for m in messages)


@asynccontextmanager
async def fake_daemon(
    serve: Serve, unix: Path | None = None
) -> AsyncIterator[tuple[str, list[pb.Request]]]:
    """A daemon that answers each control connection's one request with ``serve``."""
    seen: list[pb.Request] = []
    if unix is not None:
        listener: anyio.abc.SocketListener = await anyio.create_unix_listener(unix)
        addr = f"/unix{unix}"
    else:
        multi = await anyio.create_tcp_listener(local_host="127.0.0.1")
        listener = multi.listeners[0]  # type: ignore[assignment]  # one host: one SocketListener
        addr = f"/ip4/127.0.0.1/tcp/{listener.extra(anyio.abc.SocketAttribute.local_port)}"

    async def handle(conn: anyio.abc.SocketStream) -> None:
        async with conn:
            req = pb.Request.FromString(await read_message(conn, 1 << 20))
            seen.append(req)
            await serve(req, conn)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield addr, seen
        tg.cancel_scope.cancel()


async def test_identify_over_tcp_and_unix(tmp_path: Path) -> None:
    async def serve(req: pb.Request, conn: anyio.abc.SocketStream) -> None:
        ident = pb.IdentifyResponse(id=PEER.to_bytes(), addrs=[ADDR.to_bytes()])
        await conn.send(lp(pb.Response(type=OK, identify=ident)))

    for unix in (None, tmp_path / "d.sock"):
        async with fake_daemon(serve, unix) as (addr, seen):
            with anyio.fail_after(10):
                info = await DaemonClient(addr).identify()
            assert (info.peer_id, info.addrs) == (PEER, (ADDR,))
            assert seen[0].type == pb.Request.IDENTIFY and seen[0].HasField("type")


async def test_error_reply_is_a_daemon_error_and_silence_a_timeout() -> None:
    async def serve(req: pb.Request, conn: anyio.abc.SocketStream) -> None:
        if req.type == pb.Request.DISCONNECT:
            err = pb.ErrorResponse(msg="ERR_INVALID_REQUEST_TYPE")
            await conn.send(lp(pb.Response(type=pb.Response.ERROR, error=err)))
        else:
            await anyio.sleep_forever()

    async with fake_daemon(serve) as (addr, _):
        client = DaemonClient(addr, timeout=0.5)
        with anyio.fail_after(10):
            with pytest.raises(DaemonError, match="ERR_INVALID_REQUEST_TYPE"):
                await client.disconnect(PEER)
            with pytest.raises(P2PTimeoutError):
                await client.list_peers()


async def test_oversized_or_missing_reply_is_a_protocol_error() -> None:
    async def serve(req: pb.Request, conn: anyio.abc.SocketStream) -> None:
        if req.type == pb.Request.LIST_PEERS:
            await conn.send(b"\xff\xff\xff\x7f")  # a 256 MiB length: refused at the prefix

    async with fake_daemon(serve) as (addr, _):
        client = DaemonClient(addr, max_message_size=1024)
        with anyio.fail_after(10):
            with pytest.raises(DaemonProtocolError, match="limit"):
                await client.list_peers()
            with pytest.raises(DaemonProtocolError, match="closed"):
                await client.identify()


async def test_stream_open_hands_over_the_bytes_after_the_reply() -> None:
    async def serve(req: pb.Request, conn: anyio.abc.SocketStream) -> None:
        info = pb.StreamInfo(peer=req.streamOpen.peer, addr=ADDR.to_bytes(), proto="/echo")
        # the reply and the stream's first bytes in one segment: none may be lost
        await conn.send(lp(pb.Response(type=OK, streamInfo=info)) + b"early")
        await conn.send(await conn.receive())

    async with fake_daemon(serve) as (addr, seen):
        with anyio.fail_after(10):
            info, stream = await DaemonClient(addr).stream_open(PEER, ["/echo", "/x"], timeout=5)
            async with stream:
                assert await stream.receive() == b"early"
                await stream.send(b"ping")
                assert await stream.receive() == b"ping"
    assert (info.peer_id, info.addr, info.protocol) == (PEER, ADDR, "/echo")
    assert list(seen[0].streamOpen.proto) == ["/echo", "/x"] and seen[0].streamOpen.timeout == 5


async def test_dht_streams_and_single_values() -> None:
    other = PeerId.from_public_key(generate_private_key().public_key)

    async def serve(req: pb.Request, conn: anyio.abc.SocketStream) -> None:
        kind = req.dht.type
        if kind == pb.DHTRequest.GET_CLOSEST_PEERS:
            begin = pb.Response(type=OK, dht=pb.DHTResponse(type=pb.DHTResponse.BEGIN))
            values = [
                pb.DHTResponse(type=pb.DHTResponse.VALUE, value=p.to_bytes()) for p in (PEER, other)
            ]
            await conn.send(lp(begin, *values, pb.DHTResponse(type=pb.DHTResponse.END)))
        elif kind == pb.DHTRequest.GET_VALUE:
            value = pb.DHTResponse(type=pb.DHTResponse.VALUE, value=b"v")
            await conn.send(lp(pb.Response(type=OK, dht=value)))  # js closes after it, no END
        elif kind == pb.DHTRequest.FIND_PROVIDERS:
            begin = pb.Response(type=OK, dht=pb.DHTResponse(type=pb.DHTResponse.BEGIN))
            peer = pb.PeerInfo(id=other.to_bytes(), addrs=[ADDR.to_bytes()])
            await conn.send(lp(begin, pb.DHTResponse(type=pb.DHTResponse.VALUE, peer=peer)))
            await anyio.sleep_forever()  # never ends: the deadline must

    async with fake_daemon(serve) as (addr, seen):
        client = DaemonClient(addr)
        with anyio.fail_after(20):
            assert [p async for p in client.dht.get_closest_peers(b"k")] == [PEER, other]
            assert await client.dht.get_value(b"/pk/k", timeout=3) == b"v"
            got = []
            with pytest.raises(P2PTimeoutError):
                async for p in client.dht.find_providers(b"cid", count=2, timeout=0.5):
                    got.append(p.peer_id)
            assert got == [other]
    assert seen[1].dht.timeout == 3 and seen[2].dht.count == 2


async def test_subscription_yields_messages_until_the_daemon_closes() -> None:
    async def serve(req: pb.Request, conn: anyio.abc.SocketStream) -> None:
        assert req.pubsub.type == pb.PSRequest.SUBSCRIBE
        msgs = [pb.PSMessage(data=bytes([i]), topicIDs=[req.pubsub.topic]) for i in range(3)]
        await conn.send(lp(pb.Response(type=OK), *msgs))

    async with fake_daemon(serve) as (addr, _):
        with anyio.fail_after(10):
            async with DaemonClient(addr).pubsub.subscribe("t", idle_timeout=5) as sub:
                got = [m async for m in sub]
    assert [(m.data, m.topics) for m in got] == [
        (b"\x00", ("t",)),
        (b"\x01", ("t",)),
        (b"\x02", ("t",)),
    ]


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
async def test_stream_handler_serves_inbound_and_survives_garbage(
    unix: bool, tmp_path: Path
) -> None:
    registered = anyio.Event()
    handler_addr: list[Multiaddr] = []

    async def serve(req: pb.Request, conn: anyio.abc.SocketStream) -> None:
        handler_addr.append(Multiaddr(req.streamHandler.addr))
        await conn.send(lp(pb.Response(type=OK)))
        registered.set()

    got: list[tuple[StreamInfo, bytes]] = []

    async def handler(info: StreamInfo, stream: anyio.abc.ByteStream) -> None:
        data = await stream.receive()
        got.append((info, data))
        await stream.send(data.upper())

    listen = f"/unix{tmp_path / 'client.sock'}" if unix else "/ip4/127.0.0.1/tcp/0"
    async with fake_daemon(serve) as (addr, seen), DaemonClient(addr, listen_addr=listen) as client:
        with anyio.fail_after(10):
            await client.stream_handler(["/up"], handler)
            await registered.wait()
            assert str(handler_addr[0]) == listen or not unix
            # a broken daemon connection: garbage instead of a StreamInfo, then a good one
            async with await connect_control(handler_addr[0]) as bad:
                await bad.send(b"\x05\xff\xff\xff\xff\xff")
                with pytest.raises(anyio.EndOfStream):
                    await bad.receive()
            async with await connect_control(handler_addr[0]) as good:
                info = pb.StreamInfo(peer=PEER.to_bytes(), addr=ADDR.to_bytes(), proto="/up")
                await good.send(lp(info) + b"hello")
                assert await good.receive() == b"HELLO"
    assert got == [(StreamInfo(PEER, ADDR, "/up"), b"hello")]
    assert not (tmp_path / "client.sock").exists()  # the client removed its socket file
    assert list(seen[0].streamHandler.proto) == ["/up"]


async def test_stream_handler_needs_the_client_entered() -> None:
    async def handler(info: StreamInfo, stream: anyio.abc.ByteStream) -> None:
        raise AssertionError("not called")

    with pytest.raises(RuntimeError, match="async with"):
        await DaemonClient("/ip4/127.0.0.1/tcp/1").stream_handler(["/x"], handler)
    with pytest.raises(ValueError, match="control address"):
        DaemonClient("/ip4/127.0.0.1/udp/1")


async def test_every_other_request_and_its_reply() -> None:
    public = generate_private_key().public_key
    info = pb.PeerInfo(id=PEER.to_bytes(), addrs=[ADDR.to_bytes()])
    value = pb.DHTResponse.VALUE

    async def serve(req: pb.Request, conn: anyio.abc.SocketStream) -> None:
        dht = req.dht.type if req.HasField("dht") else None
        if dht == pb.DHTRequest.SEARCH_VALUE:
            begin = pb.Response(type=OK, dht=pb.DHTResponse(type=pb.DHTResponse.BEGIN))
            vals = [pb.DHTResponse(type=value, value=v) for v in (b"1", b"2")]
            await conn.send(lp(begin, *vals, pb.DHTResponse(type=pb.DHTResponse.END)))
        elif dht == pb.DHTRequest.GET_PUBLIC_KEY:
            reply = pb.DHTResponse(type=value, value=public.to_protobuf())
            await conn.send(lp(pb.Response(type=OK, dht=reply)))
        elif dht == pb.DHTRequest.FIND_PEER:
            await conn.send(lp(pb.Response(type=OK, dht=pb.DHTResponse(type=value, peer=info))))
        elif req.type == pb.Request.PUBSUB:
            ps = pb.PSResponse(topics=["a", "b"], peerIDs=[PEER.to_bytes()])
            await conn.send(lp(pb.Response(type=OK, pubsub=ps)))
        elif req.type == pb.Request.PEERSTORE:
            store = pb.PeerstoreResponse(peer=info, protos=["/x/1", "/y/1"])
            await conn.send(lp(pb.Response(type=OK, peerStore=store)))
        else:
            await conn.send(lp(pb.Response(type=OK)))

    async with fake_daemon(serve) as (addr, seen):
        c = DaemonClient(addr)
        with anyio.fail_after(20):
            assert await c.dht.search_value(b"k", timeout=5).collect() == [b"1", b"2"]
            assert await c.dht.get_public_key(PEER) == public
            assert (await c.dht.find_peer(PEER)).addrs == (ADDR,)
            await c.dht.put_value(b"k", b"v")
            await c.dht.provide(b"cid")
            assert await c.pubsub.get_topics() == ("a", "b")
            assert await c.pubsub.list_peers("a") == (PEER,)
            await c.pubsub.publish("a", b"data")
            await c.connmanager.tag_peer(PEER, "keep", 7)
            await c.connmanager.untag_peer(PEER, "keep")
            await c.connmanager.trim()
            assert await c.peerstore.get_protocols(PEER) == ("/x/1", "/y/1")
            assert (await c.peerstore.get_peer_info(PEER)).peer_id == PEER
            await c.connect(PEER, [ADDR], timeout=2)
            await c.disconnect(PEER)
    kinds = [(r.type, r.dht.type if r.HasField("dht") else None) for r in seen]
    D = pb.DHTRequest
    assert [k for k, _ in kinds] == [pb.Request.DHT] * 5 + [pb.Request.PUBSUB] * 3 + [
        pb.Request.CONNMANAGER
    ] * 3 + [pb.Request.PEERSTORE] * 2 + [pb.Request.CONNECT, pb.Request.DISCONNECT]
    assert [d for _, d in kinds[:5]] == [
        D.SEARCH_VALUE, D.GET_PUBLIC_KEY, D.FIND_PEER, D.PUT_VALUE, D.PROVIDE,
    ]  # fmt: skip
    assert (seen[4].dht.cid, seen[3].dht.value) == (b"cid", b"v")
    assert seen[7].pubsub.data == b"data" and seen[6].pubsub.topic == "a"
    tag = seen[8].connManager
    assert (tag.type, PeerId.from_bytes(tag.peer), tag.tag, tag.weight) == (
        pb.ConnManagerRequest.TAG_PEER, PEER, "keep", 7,
    )  # fmt: skip
    assert seen[10].connManager.type == pb.ConnManagerRequest.TRIM
    assert seen[11].peerStore.type == pb.PeerstoreRequest.GET_PROTOCOLS
    assert seen[12].peerStore.type == pb.PeerstoreRequest.GET_PEER_INFO
    assert seen[13].connect.timeout == 2 and PeerId.from_bytes(seen[14].disconnect.peer) == PEER


async def test_a_handler_bug_propagates_out_of_the_client() -> None:
    async def serve(req: pb.Request, conn: anyio.abc.SocketStream) -> None:
        await conn.send(lp(pb.Response(type=OK)))

    async def buggy(info: StreamInfo, stream: anyio.abc.ByteStream) -> None:
        raise ValueError("handler bug")

    async with fake_daemon(serve) as (addr, _):
        with pytest.raises(BaseExceptionGroup) as caught:
            async with DaemonClient(addr) as client:
                with anyio.fail_after(10):
                    await client.stream_handler(["/bug"], buggy)
                    assert client.handler_addr is not None
                    async with await connect_control(client.handler_addr) as conn:
                        info = pb.StreamInfo(
                            peer=PEER.to_bytes(), addr=ADDR.to_bytes(), proto="/bug"
                        )
                        await conn.send(lp(info))
                        await anyio.sleep_forever()  # the handler's error cancels this
        assert caught.group_contains(ValueError, match="handler bug")
