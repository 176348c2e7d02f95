"""Fixtures: p2pstack hosts over the memory transport, each with a daemon control server on a
unix socket in the test's directory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import anyio
import pytest

from p2pstack.errors import ServiceNotFound
from p2pstack.host import Host
from p2pstack.interfaces import Service
from p2pstack.roots.daemon import DaemonServer, ServerConfig
from protocols.identify import Identify
from protocols.kad import Kad
from protocols.ping import Ping
from protocols.pubsub import Pubsub
from tests.p2pstack.hosts import memory_hosts

Daemons = Callable[..., AbstractAsyncContextManager[list[tuple[Host, str, DaemonServer]]]]


@pytest.fixture
def daemons(tmp_path: Path) -> Daemons:
    @asynccontextmanager
    async def factory(
        count: int,
        extra: Callable[[], Sequence[Service]] = tuple,
        config: ServerConfig | None = None,
    ) -> AsyncIterator[list[tuple[Host, str, DaemonServer]]]:
        services: list[list[Service]] = [[Identify(), Ping(), *extra()] for _ in range(count)]
        async with (
            memory_hosts(count, services=services) as hosts,
            contextlib.AsyncExitStack() as listeners,
            anyio.create_task_group() as tg,
        ):
            out = []
            for i, host in enumerate(hosts):
                path = str(tmp_path / f"d{i}.sock")
                listener = await anyio.create_unix_listener(path)
                await listeners.enter_async_context(listener)
                server = DaemonServer(host, config=config)
                with contextlib.suppress(ServiceNotFound):
                    server.kad = host.service(Kad)
                with contextlib.suppress(ServiceNotFound):
                    server.pubsub = host.service(Pubsub)
                tg.start_soon(server.serve, listener)
                out.append((host, path, server))
            yield out
            with anyio.fail_after(10):  # cancelling a socket read in flight upsets asyncio
                for _, _, server in out:
                    await server.wait_idle()
            tg.cancel_scope.cancel()

    return factory
