from __future__ import annotations

import contextlib

import anyio
import pytest

from p2pstack.connection import Stream
from p2pstack.errors import InvalidPeerIdError, ProtocolAlreadyRegistered, StreamReset
from p2pstack.events import ConnectionClosed, StreamHandlerFailed
from p2pstack.host import Host, HostConfig
from tests.p2pstack.hosts import ECHO, echo_handler, echo_once, memory_hosts

pytestmark = pytest.mark.anyio


class Recorder:
    """A service that records its lifecycle into a shared log."""

    def __init__(self, name: str, log: list[str], *, slow_stop: bool = False) -> None:
        self.name = name
        self.log = log
        self.slow_stop = slow_stop
        self.host: Host | None = None
        self.task_cancelled = False

    async def start(self, host: Host) -> None:
        self.host = host
        self.log.append(f"start {self.name}")
        host.start_soon(self._task)

    async def _task(self) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            self.log.append(f"task {self.name} cancelled")

    async def stop(self) -> None:
        assert self.host is not None
        connected = len(self.host.connections())
        self.log.append(f"stop {self.name} with {connected} connections")
        if self.slow_stop:
            await anyio.sleep_forever()


async def test_services_stop_in_reverse_before_tasks_and_connections_end() -> None:
    log: list[str] = []
    services = [Recorder("one", log), Recorder("two", log)]
    async with memory_hosts(1) as (b,):
        with b.events.subscribe(ConnectionClosed) as closed:
            async with memory_hosts(2, services=[services, []]) as (a, _):
                with anyio.fail_after(10):
                    await a.connect(b.addrs[0])
            with anyio.fail_after(10):
                await closed.receive()
    assert log[:4] == [
        "start one",
        "start two",
        "stop two with 1 connections",
        "stop one with 1 connections",
    ]
    assert sorted(log[4:]) == ["task one cancelled", "task two cancelled"]


async def test_a_stop_that_hangs_is_bounded() -> None:
    log: list[str] = []
    config = HostConfig(service_stop_timeout=0.2)
    with anyio.fail_after(10):
        async with memory_hosts(
            1, services=[[Recorder("slow", log, slow_stop=True)]], config=config
        ):
            pass
    assert log[-1] == "task slow cancelled"


async def test_registering_a_protocol_twice_is_an_error_unless_replacing() -> None:
    async with memory_hosts(2) as (a, b):
        with pytest.raises(ProtocolAlreadyRegistered):
            b.set_stream_handler(ECHO, echo_handler)

        async def shout(stream: Stream) -> None:
            await stream.send((await stream.receive()).upper())

        b.set_stream_handler(ECHO, shout, replace=True)
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
            stream = await a.new_stream(b.peer_id, ECHO)
            assert await echo_once(stream, b"hi") == b"HI"


async def test_handler_failure_is_counted_and_published() -> None:
    async def broken(stream: Stream) -> None:
        raise RuntimeError("handler bug")

    async with memory_hosts(2) as (a, b):
        b.set_stream_handler("/broken/1.0.0", broken)
        with b.events.subscribe(StreamHandlerFailed) as failures, anyio.fail_after(10):
            await a.connect(b.addrs[0])
            # The reset may overtake the negotiation's confirmation.
            with contextlib.suppress(StreamReset):
                await a.new_stream(str(b.peer_id), "/broken/1.0.0")
            event = await failures.receive()
        assert event.protocol == "/broken/1.0.0" and event.peer_id == a.peer_id
        assert isinstance(event.error, RuntimeError)
        assert b.statistics().handler_failures == 1


async def test_max_inbound_per_peer_limits_each_peer_separately() -> None:
    release = anyio.Event()

    async def hold(stream: Stream) -> None:
        await stream.send(b"in")
        await release.wait()

    async with memory_hosts(3) as (a, b, c):
        b.set_stream_handler("/hold/1.0.0", hold, max_inbound_per_peer=1)
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
            await c.connect(b.addrs[0])
            held = await a.new_stream(b.peer_id, "/hold/1.0.0")
            assert await held.receive() == b"in"
            with pytest.raises(StreamReset):
                extra = await a.new_stream(b.peer_id, "/hold/1.0.0")
                await extra.receive()
            other = await c.new_stream(b.peer_id, "/hold/1.0.0")  # another peer is not starved
            assert await other.receive() == b"in"
            release.set()


async def test_new_stream_takes_a_peer_id_string() -> None:
    async with memory_hosts(2) as (a, b):
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
            stream = await a.new_stream(str(b.peer_id), ECHO)
            assert stream.protocol == ECHO
            assert await echo_once(stream, b"x") == b"x"
            with pytest.raises(InvalidPeerIdError):
                await a.new_stream("not-a-peer-id", ECHO)


class Broken(Recorder):
    def __init__(self, name: str, log: list[str], *, fail_in: str) -> None:
        super().__init__(name, log)
        self.fail_in = fail_in

    async def start(self, host: Host) -> None:
        await super().start(host)
        if self.fail_in == "start":
            raise RuntimeError(f"{self.name} cannot start")

    async def stop(self) -> None:
        await super().stop()
        if self.fail_in == "stop":
            raise RuntimeError(f"{self.name} cannot stop")


async def test_a_failed_start_stops_the_services_already_started() -> None:
    log: list[str] = []
    services = [Recorder("one", log), Broken("two", log, fail_in="start"), Recorder("three", log)]
    with anyio.fail_after(10), pytest.raises(Exception) as info:
        async with memory_hosts(1, services=[services]):
            pass
    assert info.group_contains(RuntimeError, match="two cannot start")
    assert "start three" not in log
    assert "stop one with 0 connections" in log
    assert not any(entry.startswith("stop two") for entry in log)


async def test_a_failed_stop_is_raised_after_every_service_stopped() -> None:
    log: list[str] = []
    services = [Recorder("one", log), Broken("two", log, fail_in="stop")]
    with anyio.fail_after(10), pytest.raises(Exception) as info:
        async with memory_hosts(1, services=[services]):
            pass
    assert info.group_contains(RuntimeError, match="two cannot stop")
    assert "stop one with 0 connections" in log


class ListenWaiter:
    """A service whose task waits for the host to be listening, then records its addresses."""

    def __init__(self) -> None:
        self.bound_at_start: list[str] | None = None
        self.bound_when_listening: list[str] | None = None
        self.done = anyio.Event()

    async def start(self, host: Host) -> None:
        self.bound_at_start = [str(a) for a in host.bound_addrs]
        host.start_soon(self._task, host)

    async def _task(self, host: Host) -> None:
        await host.wait_listening()
        self.bound_when_listening = [str(a) for a in host.bound_addrs]
        self.done.set()

    async def stop(self) -> None:
        return


async def test_wait_listening_returns_once_the_listen_addresses_are_bound() -> None:
    waiter = ListenWaiter()
    with anyio.fail_after(10):
        async with memory_hosts(1, services=[[waiter]]) as (host,):
            await waiter.done.wait()
            await host.wait_listening()  # at once, now
    assert waiter.bound_at_start == []  # services start before the host listens
    assert waiter.bound_when_listening and waiter.bound_when_listening == [
        str(a) for a in host.bound_addrs
    ]
