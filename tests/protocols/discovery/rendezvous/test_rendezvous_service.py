"""Rendezvous point and client services between hosts over the memory transport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import pytest

from p2pstack.builder import open_host
from p2pstack.framing import read_lp, write_lp
from p2pstack.host import Host
from p2pstack.interfaces import Service
from protocols.discovery.rendezvous import (
    PROTOCOL_ID,
    Discover,
    DiscoverResponse,
    Register,
    RegisterResponse,
    Rendezvous,
    RendezvousPoint,
    RendezvousRefused,
    Status,
    decode_message,
    encode_message,
    encode_peer_info,
)
from transports.memory import MemoryNetwork, MemoryTransport
from transports.plaintext import Plaintext
from transports.yamux import Yamux

NET = MemoryNetwork()


@asynccontextmanager
async def hosts(*services: Sequence[Service]) -> AsyncIterator[list[Host]]:
    async with AsyncExitStack() as stack:
        out = []
        for svcs in services:
            host = await stack.enter_async_context(
                open_host(
                    transports=[MemoryTransport(NET)],
                    security=[Plaintext()],
                    muxers=[Yamux()],
                    services=svcs,
                    listen=["/memory/0"],
                )
            )
            out.append(host)
        yield out


def point_addr(host: Host) -> str:
    return str(host.addrs[0])


@pytest.mark.anyio
async def test_register_discover_unregister() -> None:
    point = RendezvousPoint()
    async with hosts([point]) as (p,):
        a, b = Rendezvous([point_addr(p)]), Rendezvous([point_addr(p)])
        async with hosts([a], [b]) as (ha, _hb):
            with anyio.fail_after(20):
                assert await a.register("app") == 7200
                found, cookie = await b.discover("app")
                assert [(r.peer_id, r.addrs, r.signed) for r in found] == [
                    (ha.peer_id, tuple(ha.listen_addrs), True)
                ]
                again, _ = await b.discover("app", cookie=cookie)
                assert again == []
                removed = anyio.Event()
                real = point.registry.unregister

                def spy(peer: object, ns: str) -> None:
                    real(peer, ns)  # type: ignore[arg-type]  # the spy forwards the peer as it got it
                    removed.set()

                point.registry.unregister = spy  # type: ignore[method-assign]  # a spy stands in for the method in this test
                await a.unregister("app")
                await removed.wait()
                assert (await b.discover("app"))[0] == []


@pytest.mark.anyio
async def test_refusals_are_typed() -> None:
    point = RendezvousPoint()
    async with hosts([point]) as (p,):
        a = Rendezvous([point_addr(p)])
        async with hosts([a]):
            with anyio.fail_after(20):
                with pytest.raises(RendezvousRefused) as info:
                    await a.register("app", ttl=10)
                assert info.value.status == Status.E_INVALID_TTL
                with pytest.raises(RendezvousRefused) as info:
                    await a.discover("app", cookie=b"forged")
                assert info.value.status == Status.E_INVALID_COOKIE


@pytest.mark.anyio
async def test_peer_discovery_polls_namespaces() -> None:
    point = RendezvousPoint()
    async with hosts([point]) as (p,):
        registrant = Rendezvous([point_addr(p)], register=["app"])
        watcher = Rendezvous([point_addr(p)], discover=["app"], poll_interval=0.2)
        async with hosts([registrant], [watcher]) as (hr, _hw):
            with anyio.fail_after(20):
                async for found in watcher.discovered():
                    if found.peer_id == hr.peer_id:
                        break
            assert found.source == "rendezvous"
            assert found.addrs == tuple(hr.listen_addrs)


@pytest.mark.anyio
async def test_point_resets_streams_with_bad_input_and_keeps_serving() -> None:
    point = RendezvousPoint()
    async with hosts([point], []) as (p, attacker):
        await attacker.connect(p.addrs[0])
        with anyio.fail_after(20):
            for payload in [b"\xff\xff\xff\xff\x0f", b"\x05\xff\xff\xff\xff\xff", b"\x02\x08\x01"]:
                stream = await attacker.new_stream(p.peer_id, [PROTOCOL_ID])
                await stream.send(payload)
                with pytest.raises(Exception):  # noqa: B017 - reset or end: any stream error
                    await read_lp(stream, max_size=1 << 20)
            assert point.statistics().bad_streams == 3
            # a well-formed request on a new stream is still served
            stream = await attacker.new_stream(p.peer_id, [PROTOCOL_ID])
            info = encode_peer_info(attacker.peer_id, tuple(attacker.listen_addrs))
            await write_lp(stream, encode_message(Register(ns="x", record=info, ttl=7200)))
            answer = decode_message(await read_lp(stream, max_size=1 << 20))
            assert answer == RegisterResponse(status=Status.OK, ttl=7200)
            # and several requests on one stream (py-libp2p's style) are answered in turn
            await write_lp(stream, encode_message(Discover(ns="x")))
            answer = decode_message(await read_lp(stream, max_size=1 << 20))
            assert isinstance(answer, DiscoverResponse) and len(answer.registrations) == 1
            await stream.aclose()


@pytest.mark.anyio
async def test_client_falls_back_to_peer_info_for_points_that_refuse_records() -> None:
    seen: list[bool] = []

    async def picky_point(stream: object) -> None:  # py-libp2p 0.8.1's behaviour
        from p2pstack.host import Stream

        assert isinstance(stream, Stream)
        msg = decode_message(await read_lp(stream, max_size=1 << 16))
        assert isinstance(msg, Register)
        unsigned = msg.record.startswith(b"\x0a") and not msg.record.startswith(b"\x0a\x24\x08")
        seen.append(unsigned)
        status = Status.OK if unsigned else Status.E_NOT_AUTHORIZED
        await write_lp(stream, encode_message(RegisterResponse(status=status, ttl=msg.ttl or 0)))
        await stream.aclose()

    async with hosts([]) as (p,):
        p.set_stream_handler(PROTOCOL_ID, picky_point)
        a = Rendezvous([point_addr(p)])
        async with hosts([a]):
            with anyio.fail_after(20):
                assert await a.register("app") == 7200
                assert await a.register("app") == 7200
    assert seen == [False, True, True]
