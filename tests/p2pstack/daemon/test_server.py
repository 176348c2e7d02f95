from __future__ import annotations

import anyio
import pytest

from p2pstack.framing import encode_lp
from p2pstack.p2pd.pb import p2pd_pb2 as pb
from p2pstack.roots.daemon import ServerConfig
from tests.p2pstack.daemon.conftest import Daemons
from tests.p2pstack.daemon.control import ask, control
from tests.p2pstack.hosts import ECHO

pytestmark = pytest.mark.anyio


def connect_request(peer: bytes, addrs: list[bytes]) -> pb.Request:
    return pb.Request(type=pb.Request.CONNECT, connect=pb.ConnectRequest(peer=peer, addrs=addrs))


async def test_identify_answers_the_peer_id_and_listen_addresses(daemons: Daemons) -> None:
    async with daemons(1) as [(host, path, _)]:
        response = await ask(path, pb.Request(type=pb.Request.IDENTIFY))
    assert response.type == pb.Response.OK
    assert response.identify.id == host.peer_id.to_bytes()
    assert [bytes(a) for a in response.identify.addrs] == [a.to_bytes() for a in host.listen_addrs]


async def test_several_requests_on_one_connection(daemons: Daemons) -> None:
    async with daemons(2) as [(a, path, _), (b, _, _)], control(path) as conn:
        first = await conn.request(pb.Request(type=pb.Request.LIST_PEERS))
        assert list(first.peers) == []
        addrs = [x.to_bytes() for x in b.listen_addrs]
        connected = await conn.request(connect_request(b.peer_id.to_bytes(), addrs))
        assert connected.type == pb.Response.OK, connected.error.msg
        peers = await conn.request(pb.Request(type=pb.Request.LIST_PEERS))
        assert [p.id for p in peers.peers] == [b.peer_id.to_bytes()]
        gone = await conn.request(
            pb.Request(
                type=pb.Request.DISCONNECT,
                disconnect=pb.DisconnectRequest(peer=b.peer_id.to_bytes()),
            )
        )
        assert gone.type == pb.Response.OK
        assert not a.connections(b.peer_id)


async def test_connect_failure_is_an_error_response(daemons: Daemons) -> None:
    async with daemons(2) as [(_, path, _), (b, _, _)]:
        response = await ask(
            path, connect_request(b.peer_id.to_bytes(), [b"\x04\x7f\x00\x00\x01\x06\x00\x01"])
        )
    assert response.type == pb.Response.ERROR
    assert response.error.msg


async def test_malformed_request_gets_an_error_and_the_node_keeps_serving(
    daemons: Daemons,
) -> None:
    async with daemons(1) as [(_, path, _)]:
        async with control(path) as conn:
            await conn.stream.send(encode_lp(b"\xff\xff\xff"))
            response = await conn.read(pb.Response)
            assert response.type == pb.Response.ERROR
            assert "malformed" in response.error.msg
        async with control(path) as conn:  # an oversized length prefix closes the connection
            await conn.stream.send(b"\xff\xff\xff\xff\x0f")
            response = await conn.read(pb.Response)
            assert response.type == pb.Response.ERROR
            with anyio.fail_after(10):
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await conn.stream.receive()
        after = await ask(path, pb.Request(type=pb.Request.IDENTIFY))
        assert after.type == pb.Response.OK


async def test_a_silent_client_is_dropped_after_the_request_timeout(daemons: Daemons) -> None:
    config = ServerConfig(request_timeout=0.5)
    async with daemons(1, config=config) as [(_, path, _)], control(path) as conn:
        await conn.stream.send(b"\x05\x08")  # half a request, then nothing
        with anyio.fail_after(10), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            await conn.stream.receive()


async def test_dht_and_pubsub_requests_without_the_services_fail_readably(
    daemons: Daemons,
) -> None:
    async with daemons(1) as [(_, path, _)]:
        dht = await ask(
            path,
            pb.Request(
                type=pb.Request.DHT, dht=pb.DHTRequest(type=pb.DHTRequest.GET_VALUE, key=b"/pk/x")
            ),
        )
        ps = await ask(
            path,
            pb.Request(type=pb.Request.PUBSUB, pubsub=pb.PSRequest(type=pb.PSRequest.GET_TOPICS)),
        )
    assert dht.type == pb.Response.ERROR and "-dht" in dht.error.msg
    assert ps.type == pb.Response.ERROR and "-pubsub" in ps.error.msg


async def test_stream_open_pipes_the_control_connection_into_the_stream(
    daemons: Daemons,
) -> None:
    async with daemons(2) as [(_, path, _), (b, _, _)]:
        addrs = [x.to_bytes() for x in b.listen_addrs]
        assert (await ask(path, connect_request(b.peer_id.to_bytes(), addrs))).type == 0
        async with control(path) as conn:
            response = await conn.request(
                pb.Request(
                    type=pb.Request.STREAM_OPEN,
                    streamOpen=pb.StreamOpenRequest(peer=b.peer_id.to_bytes(), proto=[ECHO]),
                )
            )
            assert response.type == pb.Response.OK, response.error.msg
            assert response.streamInfo.proto == ECHO
            assert response.streamInfo.peer == b.peer_id.to_bytes()
            payload = bytes(range(256)) * 1000
            async with anyio.create_task_group() as tg:

                async def write() -> None:
                    await conn.stream.send(payload)
                    await conn.stream.send_eof()  # half-close: the echo ends, then ours

                tg.start_soon(write)
                assert await conn.read_raw(len(payload)) == payload
            with anyio.fail_after(10):
                with pytest.raises(anyio.EndOfStream):
                    await conn.stream.receive()


async def test_stream_open_of_an_unsupported_protocol_is_an_error(daemons: Daemons) -> None:
    async with daemons(2) as [(_, path, _), (b, _, _)]:
        addrs = [x.to_bytes() for x in b.listen_addrs]
        await ask(path, connect_request(b.peer_id.to_bytes(), addrs))
        response = await ask(
            path,
            pb.Request(
                type=pb.Request.STREAM_OPEN,
                streamOpen=pb.StreamOpenRequest(peer=b.peer_id.to_bytes(), proto=["/nope/1"]),
            ),
        )
    assert response.type == pb.Response.ERROR


async def test_stream_handler_forwards_inbound_streams_with_a_stream_info(
    daemons: Daemons, tmp_path: object
) -> None:
    proto = "/daemon-test/1.0.0"
    async with daemons(2) as [(a, _, _), (b, b_path, _)]:
        handler_path = f"{tmp_path}/handler.sock"
        received: list[tuple[pb.StreamInfo, bytes]] = []
        listener = await anyio.create_unix_listener(handler_path)
        async with listener, anyio.create_task_group() as tg:

            async def serve_one() -> None:
                from tests.p2pstack.daemon.control import Control

                stream = await listener.accept()
                async with stream:
                    conn = Control(stream)
                    info = await conn.read(pb.StreamInfo)
                    data = await conn.read_raw(5)
                    received.append((info, data))
                    await stream.send(data.upper())
                    await stream.send_eof()

            tg.start_soon(serve_one)
            response = await ask(
                b_path,
                pb.Request(
                    type=pb.Request.STREAM_HANDLER,
                    streamHandler=pb.StreamHandlerRequest(
                        addr=_unix_addr(handler_path), proto=[proto]
                    ),
                ),
            )
            assert response.type == pb.Response.OK, response.error.msg
            await a.connect(b.addrs[0])
            stream = await a.new_stream(b.peer_id, proto)
            await stream.send(b"hello")
            with anyio.fail_after(10):
                assert await stream.receive() == b"HELLO"
            await stream.aclose()
    [(info, data)] = received
    assert data == b"hello"
    assert info.proto == proto and info.peer == a.peer_id.to_bytes()


def _unix_addr(path: str) -> bytes:
    from multiaddr import Multiaddr

    return Multiaddr(f"/unix{path}").to_bytes()


async def test_stream_handler_refuses_a_protocol_the_node_serves(daemons: Daemons) -> None:
    async with daemons(1) as [(_, path, _)]:
        response = await ask(
            path,
            pb.Request(
                type=pb.Request.STREAM_HANDLER,
                streamHandler=pb.StreamHandlerRequest(
                    addr=_unix_addr("/tmp/x.sock"), proto=["/ipfs/ping/1.0.0"]
                ),
            ),
        )
    assert response.type == pb.Response.ERROR and "served by the node" in response.error.msg


async def test_stream_handler_registrations_are_bounded(daemons: Daemons) -> None:
    from p2pstack.roots.daemon._streams import MAX_HANDLERS

    async with daemons(1) as [(host, path, _)]:
        protos = [f"/many/{i}" for i in range(MAX_HANDLERS)]
        for start in range(0, MAX_HANDLERS, 64):
            ok = await ask(
                path,
                pb.Request(
                    type=pb.Request.STREAM_HANDLER,
                    streamHandler=pb.StreamHandlerRequest(
                        addr=_unix_addr("/tmp/x.sock"), proto=protos[start : start + 64]
                    ),
                ),
            )
            assert ok.type == pb.Response.OK
        over = await ask(
            path,
            pb.Request(
                type=pb.Request.STREAM_HANDLER,
                streamHandler=pb.StreamHandlerRequest(
                    addr=_unix_addr("/tmp/x.sock"), proto=["/one/more"]
                ),
            ),
        )
        assert over.type == pb.Response.ERROR and "more than" in over.error.msg
        assert "/one/more" not in host.protocols
