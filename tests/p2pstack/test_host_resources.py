"""The host's use of the resource manager: pending-upgrade eviction on the accept path,
connection limits by direction, peer and source IP, bans, and stream scopes."""

from __future__ import annotations

import resource
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Protocol

import anyio
import attrs
import pytest

from p2pstack.builder import open_host
from p2pstack.errors import (
    ConnectionClosedError,
    DialError,
    ResourceLimitExceeded,
    StreamReset,
)
from p2pstack.events import ConnectionClosed
from p2pstack.host import Host, HostConfig, Stream
from p2pstack.interfaces import Transport
from p2pstack.resources import (
    BasicConnectionGater,
    LimitedResourceManager,
    Limits,
    ScopeLimit,
    SubnetLimit,
)
from tests.p2pstack.hosts import ECHO, echo_handler, echo_once, stack
from transports.memory import MemoryTransport
from transports.tcp import TcpTransport

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def hosts(
    *managers: LimitedResourceManager | None,
    config: HostConfig | None = None,
    tcp: bool = False,
) -> AsyncIterator[list[Host]]:
    async with AsyncExitStack() as stack_:
        started = []
        for manager in managers:
            sec, mux = stack()
            transport: Transport = TcpTransport() if tcp else MemoryTransport()
            host = await stack_.enter_async_context(
                open_host(
                    transports=[transport],
                    security=sec,
                    muxers=mux,
                    listen=["/ip4/127.0.0.1/tcp/0" if tcp else "/memory/0"],
                    config=config,
                    resource_manager=manager,
                )
            )
            host.set_stream_handler(ECHO, echo_handler)
            started.append(host)
        yield started


def limited(**fields: Any) -> LimitedResourceManager:
    return LimitedResourceManager(attrs.evolve(Limits(), **fields))


class Receiver(Protocol):
    async def receive(self, max_bytes: int = 65536) -> bytes: ...


async def read_until_closed(conn: Receiver) -> None:
    """Read (the listener may have sent its multistream header) until the other end closes."""
    while True:
        try:
            await conn.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            return


def tcp_port(host: Host) -> int:
    return int(str(host.listen_addrs[0].value_for_protocol(6)))


async def test_default_manager_follows_host_config() -> None:
    config = HostConfig(max_connections=10, max_pending_upgrades=3)
    async with hosts(None, config=config) as (a,):
        limits = a.resource_manager.limits
        assert limits.system.connections == 10
        assert limits.transient.connections_inbound == 3


async def test_silent_connections_are_evicted_for_an_honest_peer() -> None:
    async with hosts(None, None, config=HostConfig(max_pending_upgrades=3)) as (a, b):
        with anyio.fail_after(10):
            silent = [await MemoryTransport().dial(a.listen_addrs[0]) for _ in range(6)]
            await b.connect(a.addrs[0])
            stream = await b.new_stream(a.peer_id, ECHO)
            assert await echo_once(stream, b"still served") == b"still served"
            # The three oldest silent ones were evicted as newer ones arrived, then one more
            # for the honest peer; the evicted ones are closed.
            stats = a.resource_manager.statistics()
            assert stats.evictions == 4
            for raw in silent[:4]:
                await read_until_closed(raw)
            for raw in silent:
                await raw.aclose()


async def test_silent_tcp_flood_from_loopback_does_not_lock_out() -> None:
    config = HostConfig(max_pending_upgrades=4)
    async with hosts(None, None, config=config, tcp=True) as (a, b):
        port = tcp_port(a)
        with anyio.fail_after(20):
            silent = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(20)]
            await b.connect(a.addrs[0])
            assert await echo_once(await b.new_stream(a.peer_id, ECHO), b"hi") == b"hi"
            assert a.resource_manager.statistics().evictions >= 16
            for sock in silent:
                await sock.aclose()


async def test_per_ip_limit_with_loopback_exemption_off() -> None:
    manager = limited(
        exempt_loopback=False, subnets=(SubnetLimit(version=4, prefix=32, connections=2),)
    )
    async with hosts(manager, tcp=True) as (a,):
        port = tcp_port(a)
        with anyio.fail_after(10):
            kept = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(2)]
            refused = await anyio.connect_tcp("127.0.0.1", port)
            await read_until_closed(refused)
            assert manager.statistics().refusals["ip/connections"] == 1
            for sock in [*kept, refused]:
                await sock.aclose()


async def test_outbound_cap_refuses_dials() -> None:
    manager = limited(system=ScopeLimit(connections_outbound=1))
    async with hosts(manager, None, None) as (a, b, c):
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
            with pytest.raises(DialError) as info:
                await a.connect(c.addrs[0])
            _addr, error = info.value.errors[0]
            assert isinstance(error, ResourceLimitExceeded)
            assert str(error) == "system at outbound connection limit (1)"
            await c.connect(a.addrs[0])  # inbound is another budget


async def test_banned_peer_is_refused_both_ways() -> None:
    gater = BasicConnectionGater()
    manager = LimitedResourceManager(gater=gater)
    async with hosts(manager, None) as (a, b):
        gater.ban_peer(b.peer_id)
        with anyio.fail_after(10):
            with pytest.raises(DialError, match="banned"):
                await a.connect(b.addrs[0])
            with pytest.raises((DialError, ConnectionClosedError, StreamReset, anyio.EndOfStream)):
                await b.connect(a.addrs[0])
                await b.new_stream(a.peer_id, ECHO)
            assert a.connections() == []
            assert manager.statistics().usage["system"].connections == 0


async def test_per_peer_protocol_limit_spares_other_peers() -> None:
    release = anyio.Event()

    async def hold(stream: Stream) -> None:
        await release.wait()

    async with hosts(None, None, None) as (a, b, c):
        a.set_stream_handler("/hold/1.0.0", hold, max_inbound_per_peer=2)
        with anyio.fail_after(10):
            await b.connect(a.addrs[0])
            await c.connect(a.addrs[0])
            held = [await b.new_stream(a.peer_id, "/hold/1.0.0") for _ in range(2)]
            with pytest.raises((StreamReset, anyio.EndOfStream)):
                extra = await b.new_stream(a.peer_id, "/hold/1.0.0")
                await extra.receive()
            other = await c.new_stream(a.peer_id, "/hold/1.0.0")  # another peer still served
            usage = a.resource_manager.statistics().protocols["/hold/1.0.0"]
            assert usage.streams_inbound == 3
            release.set()
            for stream in [*held, other]:
                with pytest.raises(anyio.EndOfStream):
                    await stream.receive()
                await stream.aclose()


async def test_scopes_released_when_streams_and_connections_end() -> None:
    async with hosts(None, None) as (a, b):
        with anyio.fail_after(10):
            await b.connect(a.addrs[0])
            streams = [await b.new_stream(a.peer_id, ECHO) for _ in range(3)]
            stats = b.resource_manager.statistics()
            assert stats.usage["system"].streams_outbound == 3
            assert stats.protocols[ECHO].streams_outbound == 3
            for stream in streams:
                await stream.aclose()
            assert b.resource_manager.statistics().usage["system"].streams == 0
            closed = anyio.Event()
            a.events.on(ConnectionClosed, lambda _: closed.set())
            await b.disconnect(a.peer_id)
            await closed.wait()  # a's scope is released before the event is published
            assert a.resource_manager.statistics().usage["system"].connections == 0
            stats = b.resource_manager.statistics()
            assert stats.usage["system"].connections == 0
            assert stats.peers == 0


async def test_outbound_stream_limit_raises_and_releases() -> None:
    manager = limited(protocol_peer=ScopeLimit(streams_outbound=1))
    async with hosts(manager, None) as (a, b):
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
            first = await a.new_stream(b.peer_id, ECHO)
            with pytest.raises(ResourceLimitExceeded, match="for this peer"):
                await a.new_stream(b.peer_id, ECHO)
            await first.aclose()
            second = await a.new_stream(b.peer_id, ECHO)
            assert await echo_once(second, b"ok") == b"ok"


async def test_descriptor_budget_refuses_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    # 80% of a soft limit of 86 descriptors, minus the 64 reserved: room for 4 connections.
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (86, 4096))
    async with hosts(None, None, None) as (a, b, c):
        assert a.resource_manager.limits.system.connections == 4
        with anyio.fail_after(10):
            await b.connect(a.addrs[0])
            await c.connect(a.addrs[0])
            silent = [await MemoryTransport().dial(a.listen_addrs[0]) for _ in range(3)]
            for raw in silent[2:]:
                await read_until_closed(raw)  # refused on arrival: the budget is spent
            assert a.resource_manager.statistics().refusals == {"system/connections": 1}
            for raw in silent:
                await raw.aclose()


async def test_default_limits_serve_100_streams_of_one_protocol_from_one_peer() -> None:
    # An application protocol may run many streams to one peer at once (the interop echo test
    # opens 100): the default per-peer protocol limit must not refuse them.
    release, all_served = anyio.Event(), anyio.Event()
    served = 0

    async def hold(stream: Stream) -> None:
        nonlocal served
        served += 1
        if served == 100:
            all_served.set()
        await release.wait()

    async with hosts(None, None) as (a, b):
        a.set_stream_handler("/hold/1.0.0", hold)
        with anyio.fail_after(20):
            await b.connect(a.addrs[0])
            held = [await b.new_stream(a.peer_id, "/hold/1.0.0") for _ in range(100)]
            await all_served.wait()
            release.set()
            for stream in held:
                with pytest.raises(anyio.EndOfStream):
                    await stream.receive()
                await stream.aclose()


def losing_the_connection(
    negotiate: Callable[..., Awaitable[Any]], host: Host, peer: Host
) -> Callable[..., Awaitable[Any]]:
    """``negotiate`` that, once done, ends ``host``'s connection scopes to ``peer`` (as a
    connection closing during negotiation does)."""

    async def negotiate_then_lose_the_connection(*args: Any, **kwargs: Any) -> Any:
        result = await negotiate(*args, **kwargs)
        for conn in host.connections(peer.peer_id):
            assert conn._scope is not None
            conn._scope.done()
        return result

    return negotiate_then_lose_the_connection


async def test_connection_ending_while_a_stream_negotiates_raises_connection_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The connection (and with it the stream's scope) can end between the muxer opening a
    # stream and its protocol being agreed: the opener gets ConnectionClosedError, a network
    # error its callers handle, not the scope's ValueError (which once crashed the host from
    # identify's task).
    import p2pstack.connection as connection_module
    from p2pstack.multistream import negotiate_outbound

    async with hosts(None, None) as (a, b):
        with anyio.fail_after(10):
            await b.connect(a.addrs[0])
            monkeypatch.setattr(
                connection_module,
                "negotiate_outbound",
                losing_the_connection(negotiate_outbound, b, a),
            )
            with pytest.raises(ConnectionClosedError):
                await b.new_stream(a.peer_id, ECHO)
            with pytest.raises(ConnectionClosedError):
                await b.connections(a.peer_id)[0].new_stream([ECHO])
            assert b.resource_manager.statistics().usage["system"].streams == 0


async def test_connection_ending_while_an_inbound_stream_negotiates_resets_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import p2pstack._handlers as handlers_module
    from p2pstack.multistream import negotiate_inbound

    async with hosts(None, None) as (a, b):
        with anyio.fail_after(10):
            await b.connect(a.addrs[0])
            monkeypatch.setattr(
                handlers_module, "negotiate_inbound", losing_the_connection(negotiate_inbound, a, b)
            )
            with pytest.raises((StreamReset, anyio.EndOfStream)):
                stream = await b.new_stream(a.peer_id, ECHO)
                await stream.receive()
            assert a.resource_manager.statistics().usage["system"].streams == 0
