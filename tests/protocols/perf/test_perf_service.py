"""Perf between two hosts over the memory transport (plaintext, yamux)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
import pytest

from p2pstack.builder import open_host
from p2pstack.errors import ProtocolNotSupported
from p2pstack.host import Host
from p2pstack.interfaces import Service
from protocols.perf import DEFAULT_MAX_BYTES, PROTOCOL_ID, Perf, PerfRefused, encode_request
from transports.memory import MemoryNetwork, MemoryTransport
from transports.plaintext import Plaintext
from transports.yamux import Yamux


def _host(net: MemoryNetwork, services: Sequence[Service]) -> AbstractAsyncContextManager[Host]:
    return open_host(
        transports=[MemoryTransport(net)],
        security=[Plaintext()],
        muxers=[Yamux()],
        services=services,
        listen=["/memory/0"],
    )


@asynccontextmanager
async def host_pair(
    services_a: Sequence[Service], services_b: Sequence[Service]
) -> AsyncIterator[tuple[Host, Host]]:
    net = MemoryNetwork()
    async with _host(net, services_a) as a, _host(net, services_b) as b:
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
        yield a, b


@pytest.mark.anyio
@pytest.mark.parametrize(("upload", "download"), [(0, 0), (1, 3), (1 << 20, 2 << 20)])
async def test_measure(upload: int, download: int) -> None:
    async with host_pair([Perf(chunk_size=64 * 1024)], [Perf(serve=True)]) as (a, b):
        with anyio.fail_after(20):
            result = await a.service(Perf).measure(
                b.peer_id, upload_bytes=upload, download_bytes=download
            )
    assert result.upload_bytes == upload
    assert result.download_bytes == download
    assert result.upload_seconds >= 0
    assert result.download_seconds >= 0
    assert result.total_seconds >= result.upload_seconds + result.download_seconds


@pytest.mark.anyio
async def test_not_served_by_default() -> None:
    async with host_pair([Perf()], [Perf()]) as (a, b):
        assert not b.service(Perf).serving
        with anyio.fail_after(10), pytest.raises(ProtocolNotSupported):
            await a.service(Perf).measure(b.peer_id, upload_bytes=0, download_bytes=8)
        assert PROTOCOL_ID not in b.protocols


@pytest.mark.anyio
async def test_download_over_cap_is_refused_with_a_clear_error() -> None:
    async with host_pair([Perf()], [Perf(serve=True, max_download_bytes=1000)]) as (a, b):
        with anyio.fail_after(10), pytest.raises(PerfRefused, match="over the server's cap") as e:
            await a.service(Perf).measure(b.peer_id, upload_bytes=10, download_bytes=1001)
        assert e.value.reason == "size"
        with anyio.fail_after(10):
            ok = await a.service(Perf).measure(b.peer_id, upload_bytes=10, download_bytes=1000)
        assert ok.download_bytes == 1000


@pytest.mark.anyio
async def test_upload_over_cap_stops_early() -> None:
    server = Perf(serve=True, max_upload_bytes=64 * 1024)
    async with host_pair([Perf(chunk_size=16 * 1024)], [server]) as (a, b):
        started = anyio.current_time()
        with anyio.fail_after(10), pytest.raises(PerfRefused, match="over the server's cap"):
            await a.service(Perf).measure(b.peer_id, upload_bytes=1 << 30, download_bytes=0)
        # 1 GiB was not pushed: the client stopped when the server ended its side.
        assert anyio.current_time() - started < 5


@pytest.mark.anyio
async def test_default_caps_when_serving() -> None:
    async with host_pair([Perf()], [Perf(serve=True)]) as (a, b):
        with anyio.fail_after(10), pytest.raises(PerfRefused, match="over the server's cap"):
            await a.service(Perf).measure(
                b.peer_id, upload_bytes=0, download_bytes=DEFAULT_MAX_BYTES + 1
            )
    assert DEFAULT_MAX_BYTES >= 64 * 1024 * 1024


@pytest.mark.anyio
async def test_rate_limit_per_peer() -> None:
    # 6 per minute: a burst of one, then one every 10 s.
    server = Perf(serve=True, max_requests_per_minute=6)
    async with host_pair([Perf()], [server]) as (a, b):
        with anyio.fail_after(10):
            await a.service(Perf).measure(b.peer_id, upload_bytes=1, download_bytes=1)
            with pytest.raises(PerfRefused, match="reset by the server") as e:
                await a.service(Perf).measure(b.peer_id, upload_bytes=1, download_bytes=1)
        assert e.value.reason == "refused"


@pytest.mark.anyio
async def test_one_peer_cannot_take_every_slot() -> None:
    net = MemoryNetwork()
    server = Perf(serve=True, max_inbound_per_peer=1, max_requests_per_minute=None)
    async with (
        _host(net, [server]) as b,
        _host(net, [Perf()]) as hog,
        _host(net, [Perf()]) as honest,
    ):
        with anyio.fail_after(10):
            await hog.connect(b.addrs[0])
            await honest.connect(b.addrs[0])
            held = await hog.new_stream(b.peer_id, [PROTOCOL_ID])
            await held.send(encode_request(1))  # a request whose upload never ends
            with pytest.raises(PerfRefused):
                await hog.service(Perf).measure(b.peer_id, upload_bytes=1, download_bytes=1)
            result = await honest.service(Perf).measure(b.peer_id, upload_bytes=1, download_bytes=1)
            assert result.download_bytes == 1
            await held.reset()
