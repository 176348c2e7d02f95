"""Fixtures for interop tests: our host over TCP + Noise, serving echo, ping, identify, perf."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream

from p2pstack.builder import open_host
from p2pstack.connection import Connection
from p2pstack.events import ConnectionOpened, HostEvent
from p2pstack.host import Host, HostConfig
from p2pstack.roots.defaults import make_muxers
from protocols.identify import Identify
from protocols.perf import Perf
from protocols.ping import Ping
from tests.interop.peers import ECHO, PeerProcess, run_peer
from tests.p2pstack.hosts import echo_handler
from transports.noise import Noise
from transports.tcp import TcpTransport

MUXER_IDS = {"yamux": "/yamux/1.0.0", "mplex": "/mplex/6.7.0"}

OurHost = Callable[[Sequence[str]], AbstractAsyncContextManager[Host]]
Peer = Callable[[str, Sequence[str]], AbstractAsyncContextManager[PeerProcess]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/interop/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.interop)


@pytest.fixture
def our_host() -> OurHost:
    @asynccontextmanager
    async def factory(muxers: Sequence[str]) -> AsyncIterator[Host]:
        async with open_host(
            transports=[TcpTransport()],
            security=[Noise()],
            muxers=make_muxers(muxers),
            services=[Identify(), Ping(), Perf(serve=True)],
            listen=["/ip4/127.0.0.1/tcp/0"],
            config=HostConfig(upgrade_timeout=30.0),
        ) as host:
            host.set_stream_handler(ECHO, echo_handler)
            yield host

    return factory


@pytest.fixture
def peer(tmp_path: Path) -> Peer:
    def factory(kind: str, args: Sequence[str]) -> AbstractAsyncContextManager[PeerProcess]:
        return run_peer(kind, args, log_dir=tmp_path)

    return factory


async def opened_connection(
    events: MemoryObjectReceiveStream[HostEvent], timeout: float = 30
) -> Connection:
    """The next connection opened to our host, from its events (it may be closed by now)."""
    with anyio.fail_after(timeout):
        async for event in events:
            if isinstance(event, ConnectionOpened):
                return event.connection
    raise AssertionError("host event stream ended")
