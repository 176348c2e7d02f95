"""Perf between two hosts over the memory transport (plaintext, yamux)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
import pytest

from p2pstack.builder import open_host
from p2pstack.errors import P2PError
from p2pstack.host import Host
from p2pstack.interfaces import Service
from protocols.perf import Perf
from transports.memory import MemoryNetwork, MemoryTransport
from transports.plaintext import Plaintext
from transports.yamux import Yamux


@asynccontextmanager
async def host_pair(
    services_a: Sequence[Service], services_b: Sequence[Service]
) -> AsyncIterator[tuple[Host, Host]]:
    net = MemoryNetwork()

    def host(services: Sequence[Service]) -> AbstractAsyncContextManager[Host]:
        return open_host(
            transports=[MemoryTransport(net)],
            security=[Plaintext()],
            muxers=[Yamux()],
            services=services,
            listen=["/memory/0"],
        )

    async with host(services_a) as a, host(services_b) as b:
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
        yield a, b


@pytest.mark.anyio
@pytest.mark.parametrize(("upload", "download"), [(0, 0), (1, 3), (1 << 20, 2 << 20)])
async def test_measure(upload: int, download: int) -> None:
    async with host_pair([Perf(chunk_size=64 * 1024)], [Perf()]) as (a, b):
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
async def test_server_cap_resets_the_stream() -> None:
    async with host_pair([Perf()], [Perf(max_download_bytes=1000)]) as (a, b):
        with anyio.fail_after(10), pytest.raises(P2PError):
            await a.service(Perf).measure(b.peer_id, upload_bytes=10, download_bytes=1001)
        with anyio.fail_after(10):
            ok = await a.service(Perf).measure(b.peer_id, upload_bytes=10, download_bytes=1000)
        assert ok.download_bytes == 1000
