"""Request/response between two (or three) hosts over the memory transport."""

from __future__ import annotations

import anyio
import pytest

from p2pstack.errors import RemoteProtocolError, StreamReset
from p2pstack.framing import encode_lp
from p2pstack.identity import PeerId
from p2pstack.reqresp import (
    RequestRefused,
    RequestTimeout,
    ServerStatistics,
    request,
    serve,
)
from tests.p2pstack.hosts import memory_hosts

pytestmark = pytest.mark.anyio

RPC = "/test/rpc/1.0.0"


async def upper(peer: PeerId, data: bytes) -> bytes:
    return data.upper() + b" for " + str(peer).encode()[:8]


async def test_request_and_response() -> None:
    async with memory_hosts(2) as (a, b):
        server = serve(b, RPC, upper)
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
            got = await request(a, b.peer_id, ["/other/1", RPC], b"hello")
            assert got == b"HELLO for " + str(a.peer_id).encode()[:8]
            assert await request(a, b.peer_id, [RPC], b"") == b" for " + str(a.peer_id).encode()[:8]
        assert server.statistics() == ServerStatistics(
            active=0, served=2, rejected=0, timed_out=0, failed=0
        )


class Counter:
    """A count that tasks can wait on."""

    def __init__(self) -> None:
        self.value = 0
        self._changed = anyio.Event()

    def bump(self) -> None:
        self.value += 1
        self._changed.set()
        self._changed = anyio.Event()

    async def reach(self, target: int) -> None:
        while self.value < target:
            await self._changed.wait()


async def test_per_peer_limit_resets_excess_streams_and_spares_other_peers() -> None:
    release = anyio.Event()
    started = Counter()

    async def held(peer: PeerId, data: bytes) -> bytes:
        started.bump()
        await release.wait()
        return data

    async with memory_hosts(3) as (a, b, c):
        server = serve(b, RPC, held, max_per_peer=2, max_total=3)
        results: list[bytes] = []

        async def ask(host_index: int, payload: bytes) -> None:
            host = (a, c)[host_index]
            results.append(await request(host, b.peer_id, [RPC], payload))

        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
            await c.connect(b.addrs[0])
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask, 0, b"a1")
                tg.start_soon(ask, 0, b"a2")
                await started.reach(2)
                with pytest.raises(RequestRefused):
                    await request(a, b.peer_id, [RPC], b"a3")
                tg.start_soon(ask, 1, b"c1")  # another peer still gets the third slot
                await started.reach(3)
                with pytest.raises(RequestRefused):  # now the total is reached
                    await request(c, b.peer_id, [RPC], b"c2")
                assert server.statistics().active == 3
                release.set()
        assert sorted(results) == [b"a1", b"a2", b"c1"]
        stats = server.statistics()
        assert (stats.served, stats.rejected, stats.active) == (3, 2, 0)


async def test_server_timeout_resets_the_stream() -> None:
    async def slow(peer: PeerId, data: bytes) -> bytes:
        await anyio.sleep(5)
        return data

    async with memory_hosts(2) as (a, b):
        server = serve(b, RPC, slow, timeout=0.2)
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
            with pytest.raises(RequestRefused):
                await request(a, b.peer_id, [RPC], b"x", timeout=5)
        assert server.statistics().timed_out == 1


async def test_client_timeout() -> None:
    async def never(peer: PeerId, data: bytes) -> bytes:
        await anyio.sleep_forever()
        raise AssertionError

    async with memory_hosts(2) as (a, b):
        serve(b, RPC, never)
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
            with pytest.raises(RequestTimeout, match=r"within 0\.2 s"):
                await request(a, b.peer_id, [RPC], b"x", timeout=0.2)


async def test_size_bounds() -> None:
    async def big(peer: PeerId, data: bytes) -> bytes:
        return bytes(1000)

    async with memory_hosts(2) as (a, b):
        server = serve(b, RPC, big, max_request_size=100)
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
            with pytest.raises(RequestRefused):
                await request(a, b.peer_id, [RPC], bytes(101))
            assert server.statistics().failed == 1
            with pytest.raises(RemoteProtocolError, match="larger than"):
                await request(a, b.peer_id, [RPC], b"ok", max_response_size=999)
            assert await request(a, b.peer_id, [RPC], b"ok", max_response_size=1000) == bytes(1000)


async def test_handler_error_and_garbled_request_reset_the_stream() -> None:
    async def broken(peer: PeerId, data: bytes) -> bytes:
        raise ValueError("handler bug")

    async with memory_hosts(2) as (a, b):
        server = serve(b, RPC, broken)
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
            with pytest.raises(RequestRefused):
                await request(a, b.peer_id, [RPC], b"x")
            stream = await a.new_stream(b.peer_id, [RPC])
            await stream.send(b"\x80" * 11)  # not a varint
            await stream.send_eof()
            with pytest.raises(StreamReset):
                await stream.receive()
        assert server.statistics().failed == 1


async def test_server_ends_without_response_when_client_half_closes_early() -> None:
    async with memory_hosts(2) as (a, b):
        server = serve(b, RPC, upper)
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
            stream = await a.new_stream(b.peer_id, [RPC])
            await stream.send(encode_lp(b"abc")[:2])  # cut short
            await stream.send_eof()
            with pytest.raises(StreamReset):
                await stream.receive()
        assert server.statistics().failed == 1


async def test_a_string_of_protocols_is_rejected() -> None:
    async with memory_hosts(2) as (a, b):
        with pytest.raises(TypeError):
            await request(a, b.peer_id, RPC, b"x")
