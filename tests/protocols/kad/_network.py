"""In-process DHT networks for the service tests: hosts on the memory transport (plaintext,
yamux) running identify, ping and kad."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import anyio

from p2pstack.builder import open_host
from p2pstack.events import Subscription
from p2pstack.host import Host
from p2pstack.identity import PeerId
from p2pstack.interfaces import Service
from protocols.identify import Identify
from protocols.kad import Kad, KadConfig, KadPeerAdded
from protocols.ping import Ping
from transports.memory import MemoryNetwork, MemoryTransport
from transports.plaintext import Plaintext
from transports.yamux import Yamux, YamuxConfig

#: Memory connections need no keep-alive, and its timers would dominate virtual-time tests.
NO_KEEPALIVE = YamuxConfig(keepalive_interval=None)

#: A test namespace accepted without validation.
TEST_CONFIG = KadConfig(passthrough_namespaces=("test",), request_timeout=5.0, query_timeout=20.0)


def kad(host: Host) -> Kad:
    return host.service(Kad)


@asynccontextmanager
async def open_kad_host(
    net: MemoryNetwork,
    config: KadConfig = TEST_CONFIG,
    *,
    service: Kad | None = None,
    extra: Sequence[Service] = (),
) -> AsyncIterator[Host]:
    async with open_host(
        transports=[MemoryTransport(net)],
        security=[Plaintext()],
        muxers=[Yamux(NO_KEEPALIVE)],
        services=[Identify(), Ping(), service or Kad(config), *extra],
        listen=["/memory/0"],
    ) as host:
        yield host


@asynccontextmanager
async def kad_network(
    size: int,
    config: KadConfig = TEST_CONFIG,
    *,
    bootstrap: bool = True,
    make: Callable[[], Kad] | None = None,
) -> AsyncIterator[list[Host]]:
    """``size`` DHT hosts (services from ``make``, else ``Kad(config)``); with ``bootstrap``,
    each joins through the first one, in order."""
    net = MemoryNetwork()
    async with AsyncExitStack() as stack:
        hosts = [
            await stack.enter_async_context(
                open_kad_host(net, config, service=make() if make else None)
            )
            for _ in range(size)
        ]
        if bootstrap:
            with anyio.fail_after(30):
                for host in hosts[1:]:
                    await kad(host).bootstrap([hosts[0].addrs[0]])
        yield hosts


async def connect_until_in_table(a: Host, b: Host) -> None:
    """Connect ``a`` to ``b`` and wait until each has the other in its routing table (through
    identify listing the kad protocol)."""
    with a.events.subscribe(KadPeerAdded) as a_added, b.events.subscribe(KadPeerAdded) as b_added:
        await a.connect(b.addrs[0])
        if b.peer_id not in kad(a).routing_table:
            await _until_added(a_added, b.peer_id)
        if a.peer_id not in kad(b).routing_table:
            await _until_added(b_added, a.peer_id)


async def _until_added(events: Subscription[KadPeerAdded], peer: PeerId) -> None:
    async for event in events:
        if event.peer_id == peer:
            return
