from __future__ import annotations

import hashlib
import os

import anyio
import anyio.lowlevel
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream

from p2pstack.errors import (
    DialError,
    PeerIdMismatch,
    ProtocolNotSupported,
    ServiceNotFound,
    StreamReset,
)
from p2pstack.events import (
    ConnectionClosed,
    ConnectionOpened,
    HostEvent,
    LocalProtocolsChanged,
)
from p2pstack.host import Host, Stream
from p2pstack.identity import Identity
from p2pstack.multiaddrs import with_peer_id
from tests.p2pstack.hosts import ECHO, echo_once, memory_hosts

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("security", ["noise", "plaintext"])
@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
async def test_connect_and_echo(security: str, muxer: str) -> None:
    async with memory_hosts(2, security=security, muxer=muxer) as (a, b):
        with anyio.fail_after(10):
            conn = await a.connect(b.addrs[0])
            assert conn.remote_peer == b.peer_id
            assert conn.direction == "outbound"
            assert conn.muxer_protocol == ("/yamux/1.0.0" if muxer == "yamux" else "/mplex/6.7.0")
            stream = await a.new_stream(b.peer_id, ["/nope/1.0.0", ECHO])
            assert stream.protocol == ECHO
            payload = os.urandom(300_000)
            assert await echo_once(stream, payload) == payload
            # the listener sees exactly one inbound connection from a
            assert [c.direction for c in b.connections(a.peer_id)] == ["inbound"]


async def test_connection_is_reused() -> None:
    async with memory_hosts(2) as (a, b):
        with anyio.fail_after(10):
            first = await a.connect(b.addrs[0])
            second = await a.connect(b.addrs[0])
            via_peer = await a.dial_peer(b.peer_id)
            assert first is second is via_peer
            # concurrent dials to one peer share one connection
            results: list[object] = []

            async def dial() -> None:
                results.append(await a.dial_peer(b.peer_id))

            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(dial)
            assert all(r is first for r in results)


async def test_concurrent_first_dials_make_one_connection() -> None:
    async with memory_hosts(2) as (a, b):
        a.peerstore.add_addrs(b.peer_id, b.listen_addrs, 60)
        results: list[object] = []

        async def dial() -> None:
            results.append(await a.dial_peer(b.peer_id))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(dial)
        assert len(results) == 5 and len({id(r) for r in results}) == 1
        assert len(a.connections(b.peer_id)) == 1


async def test_simultaneous_dial_is_resolved_to_one_connection() -> None:
    async with memory_hosts(2) as (a, b):
        with a.subscribe() as a_events, b.subscribe() as b_events, anyio.fail_after(20):

            async def next_event_of_either() -> None:
                async with anyio.create_task_group() as tg:

                    async def watch(events: MemoryObjectReceiveStream[HostEvent]) -> None:
                        await events.receive()
                        tg.cancel_scope.cancel()

                    tg.start_soon(watch, a_events)
                    tg.start_soon(watch, b_events)

            def settled() -> bool:
                # One connection on each side, and the same one: opposite directions, and no
                # upgrade still under way that could add another.
                ca, cb = a.connections(b.peer_id), b.connections(a.peer_id)
                return (
                    len(ca) == len(cb) == 1
                    and {ca[0].direction, cb[0].direction} == {"inbound", "outbound"}
                    and a.statistics().pending_upgrades == b.statistics().pending_upgrades == 0
                )

            async with anyio.create_task_group() as tg:
                tg.start_soon(a.connect, b.addrs[0])
                tg.start_soon(b.connect, a.addrs[0])
            while not settled():
                await next_event_of_either()
            stream = await a.new_stream(b.peer_id, [ECHO])
            assert await echo_once(stream, b"still works") == b"still works"
            assert settled()


async def test_the_loser_is_kept_when_the_peer_closes_the_connection_we_kept() -> None:
    # As after a DCUtR upgrade over a direct connection: the peer dials us anew, then closes
    # the old connection. If our rule kept the old one, the new one must survive its close.
    async with memory_hosts(2) as hosts:
        a, b = sorted(hosts, key=lambda h: h.peer_id.to_bytes())  # a's dials win the tie-break
        with anyio.fail_after(20), a.events.subscribe(ConnectionOpened) as opened:
            old = await a.connect(b.addrs[0])
            bare_a = str(a.addrs[0]).split("/p2p/")[0]
            new_at_b = await b.connect(bare_a)  # a new connection, inbound at a
            while len(a.connections(b.peer_id)) < 2:
                await opened.receive()
            (new,) = [c for c in a.connections(b.peer_id) if c is not old]
            assert new.draining and not old.draining  # a's own dial won
            old_at_b = next(c for c in b.connections(a.peer_id) if c is not new_at_b)
            with a.events.subscribe(ConnectionClosed) as closed:
                await old_at_b.aclose()  # b closes the connection our rule kept
                while old in a.connections(b.peer_id):
                    await closed.receive()
            assert a.connections(b.peer_id) == [new] and not new.draining
            await anyio.sleep(a.config.drain_grace + 0.5)  # past the time it would have closed
            assert not new.is_closed and a.connections(b.peer_id) == [new]
            stream = await a.new_stream(b.peer_id, [ECHO])
            assert await echo_once(stream, b"kept") == b"kept"


async def test_a_loser_is_revivable_as_soon_as_it_is_marked() -> None:
    # The connection our rule kept can close in the same turn of the event loop in which the
    # loser is added (js closes a DCUtR carrier right after its dial): the loser must be
    # registered for revival when it is marked, not when its drain task first runs.
    async with memory_hosts(2) as hosts:
        a, b = sorted(hosts, key=lambda h: h.peer_id.to_bytes())  # a's dials win the tie-break
        seen: list[tuple[bool, bool]] = []

        def on_open(ev: ConnectionOpened) -> None:
            conn = ev.connection
            seen.append((conn.draining, conn in a._draining))

        with anyio.fail_after(20), a.events.subscribe(ConnectionOpened) as opened:
            await a.connect(b.addrs[0])
            a.events.on(ConnectionOpened, on_open)
            await b.connect(str(a.addrs[0]).split("/p2p/")[0])  # inbound at a: it loses
            while len(a.connections(b.peer_id)) < 2:
                await opened.receive()
        assert seen == [(True, True)]


async def test_protocol_not_supported() -> None:
    async with memory_hosts(2) as (a, b):
        with anyio.fail_after(10), pytest.raises(ProtocolNotSupported) as info:
            await a.connect(b.addrs[0])
            await a.new_stream(b.peer_id, ["/missing/1.0.0", "/also-missing/2.0.0"])
        assert info.value.protocols == ("/missing/1.0.0", "/also-missing/2.0.0")


async def test_dial_errors_are_typed() -> None:
    async with memory_hosts(2) as (a, b):
        with anyio.fail_after(10):
            with pytest.raises(DialError) as info:
                await a.connect("/memory/999999")
            assert len(info.value.errors) == 1
            wrong = Identity.generate().peer_id
            with pytest.raises(DialError) as info:
                await a.connect(with_peer_id(b.listen_addrs[0], wrong))
            assert isinstance(info.value.errors[0][1], PeerIdMismatch)
            with pytest.raises(DialError, match="no known addresses"):
                await a.dial_peer(wrong)
            with pytest.raises(ValueError, match="invalid multiaddr"):
                await a.connect("/ip4/999/tcp/1")


async def test_failing_handler_resets_only_its_stream() -> None:
    async def broken(stream: Stream) -> None:
        raise RuntimeError("handler bug")

    async with memory_hosts(2) as (a, b):
        b.set_stream_handler("/broken/1.0.0", broken)
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
            # The reset may overtake the negotiation's confirmation, so it can surface from
            # new_stream itself or from the first receive.
            with pytest.raises(StreamReset):
                bad = await a.new_stream(b.peer_id, ["/broken/1.0.0"])
                await bad.receive()
            good = await a.new_stream(b.peer_id, [ECHO])
            assert await echo_once(good, b"ok") == b"ok"


async def test_events_and_graceful_close() -> None:
    async with memory_hosts(1) as (b,):
        with b.events.subscribe(
            ConnectionOpened, ConnectionClosed, LocalProtocolsChanged
        ) as events:
            async with memory_hosts(1) as (a,):
                with anyio.fail_after(10):
                    await a.connect(b.addrs[0])
                    opened = await events.receive()
                    assert isinstance(opened, ConnectionOpened)
                    assert opened.connection.remote_peer == a.peer_id
            # leaving a's block closed its connection; b hears about it
            with anyio.fail_after(10):
                closed = await events.receive()
            assert isinstance(closed, ConnectionClosed)
            assert b.connections() == []
            b.set_stream_handler("/new/1.0.0", lambda s: anyio.lowlevel.checkpoint())
            changed = events.receive_nowait()
            assert isinstance(changed, LocalProtocolsChanged)
            assert "/new/1.0.0" in changed.protocols


async def test_statistics_and_service_lookup() -> None:
    async with memory_hosts(2) as (a, b):
        with anyio.fail_after(10):
            stream = await _open(a, b)
            stats = a.statistics()
            assert stats.connections == 1 and stats.streams == 1 and stats.listeners == 1
            await stream.aclose()
            assert a.statistics().streams == 0
        with pytest.raises(ServiceNotFound):
            a.service(int)


async def _open(a: Host, b: Host) -> Stream:
    await a.connect(b.addrs[0])
    return await a.new_stream(b.peer_id, [ECHO])


async def test_large_transfer_hash_checked() -> None:
    async with memory_hosts(2) as (a, b):
        with anyio.fail_after(30):
            stream = await _open(a, b)
            payload = os.urandom(4 * 1024 * 1024)
            echoed = await echo_once(stream, payload)
            assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()


async def test_handler_limit_resets_streams_beyond_it() -> None:
    release = anyio.Event()
    both_entered = anyio.Event()
    entered: list[Stream] = []

    async def hold(stream: Stream) -> None:
        entered.append(stream)
        if len(entered) == 2:
            both_entered.set()
        await release.wait()

    async with memory_hosts(2) as (a, b):
        b.set_stream_handler("/hold/1.0.0", hold, max_inbound=2)
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
            held = [await a.new_stream(b.peer_id, ["/hold/1.0.0"]) for _ in range(2)]
            await both_entered.wait()
            with pytest.raises(StreamReset):
                extra = await a.new_stream(b.peer_id, ["/hold/1.0.0"])
                await extra.receive()
            release.set()
            for stream in held:  # the held streams end normally once released
                with pytest.raises(anyio.EndOfStream):
                    await stream.receive()
        with pytest.raises(ValueError, match="at least 1"):
            b.set_stream_handler("/hold/1.0.0", hold, max_inbound=0)
