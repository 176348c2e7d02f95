"""Identify and identify push between two hosts over the memory transport (plaintext, yamux)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream
from multiaddr import Multiaddr

from p2pstack.builder import open_host
from p2pstack.errors import RemoteProtocolError
from p2pstack.events import HostEvent
from p2pstack.host import Host, Stream
from p2pstack.identity import Identity, PeerId, PeerRecord
from p2pstack.interfaces import SecurityChannel, Service
from protocols.identify import (
    PROTOCOL_ID,
    PUSH_PROTOCOL_ID,
    Identify,
    IdentifyMessage,
    PeerIdentified,
    frame_identify,
)
from protocols.ping import Ping
from transports.memory import MemoryNetwork, MemoryTransport
from transports.noise import Noise
from transports.plaintext import Plaintext
from transports.yamux import Yamux


@asynccontextmanager
async def host_pair(
    services_a: Sequence[Service],
    services_b: Sequence[Service],
    *,
    connect: bool = True,
    security: Callable[[], SecurityChannel] = Plaintext,
) -> AsyncIterator[tuple[Host, Host]]:
    net = MemoryNetwork()

    def host(services: Sequence[Service]) -> AbstractAsyncContextManager[Host]:
        return open_host(
            transports=[MemoryTransport(net)],
            security=[security()],
            muxers=[Yamux()],
            services=services,
            listen=["/memory/0"],
        )

    async with host(services_a) as a, host(services_b) as b:
        if connect:
            with anyio.fail_after(10):
                await a.connect(b.addrs[0])
        yield a, b


async def identified(
    events: MemoryObjectReceiveStream[HostEvent], peer: PeerId, protocol: str | None = None
) -> PeerIdentified:
    """The next ``PeerIdentified`` for ``peer`` (listing ``protocol``, if given)."""
    async for event in events:
        if (
            isinstance(event, PeerIdentified)
            and event.peer_id == peer
            and (protocol is None or protocol in event.protocols)
        ):
            return event
    raise AssertionError("event stream ended")


@pytest.mark.anyio
async def test_new_connections_are_identified() -> None:
    async with host_pair([Identify(), Ping()], [Identify(), Ping()], connect=False) as (a, b):
        with a.subscribe() as a_events, b.subscribe() as b_events, anyio.fail_after(10):
            await a.connect(b.addrs[0])
            a_saw = await identified(a_events, b.peer_id)
            b_saw = await identified(b_events, a.peer_id)
        assert set(a_saw.protocols) == {PROTOCOL_ID, PUSH_PROTOCOL_ID, "/ipfs/ping/1.0.0"}
        assert list(a_saw.listen_addrs) == b.listen_addrs
        assert a_saw.agent_version == b.agent_version
        assert b_saw.peer_id == a.peer_id
        store = a.peerstore
        assert "/ipfs/ping/1.0.0" in store.protocols(b.peer_id)
        assert b.listen_addrs[0] in store.addrs(b.peer_id)
        assert store.public_key(b.peer_id) == b.identity.public_key
        assert store.metadata(b.peer_id, "agent_version") == b.agent_version
        assert store.metadata(b.peer_id, "protocol_version") == b.protocol_version


@pytest.mark.anyio
@pytest.mark.parametrize("security", [Plaintext, Noise])
async def test_identify_explicitly(security: Callable[[], SecurityChannel]) -> None:
    services_a = [Identify(identify_on_connect=False)]
    async with host_pair(services_a, [Identify()], security=security) as (a, b):
        with anyio.fail_after(10):
            info = await a.service(Identify).identify(b.peer_id)
            again = await a.service(Identify).identify(b.peer_id)
        conn = a.connections(b.peer_id)[0]
    assert info.peer_id == b.peer_id
    assert info.public_key == b.identity.public_key
    assert info.observed_addr == conn.local_multiaddr
    assert info.listen_addrs == tuple(b.listen_addrs)
    assert info.protocol_version == b.protocol_version
    record = info.signed_peer_record
    assert record is not None
    assert record.peer_id == b.peer_id
    assert record.addrs == tuple(b.listen_addrs)
    # Same addresses, same record: the sequence number only moves when they change.
    assert again.signed_peer_record == record


@pytest.mark.anyio
async def test_identify_stores_the_signed_record() -> None:
    async with host_pair([Identify(identify_on_connect=False)], [Identify()]) as (a, b):
        assert a.peerstore.signed_record(b.peer_id) is None
        with anyio.fail_after(10):
            info = await a.service(Identify).identify(b.peer_id)
        envelope = a.peerstore.signed_record(b.peer_id)
        assert envelope is not None
        assert envelope.public_key == b.identity.public_key
        stored = a.peerstore.peer_record(b.peer_id)
        assert stored is not None
        assert stored == info.signed_peer_record
        assert stored.addrs == tuple(b.listen_addrs)


@pytest.mark.anyio
async def test_push_on_protocol_change() -> None:
    async with host_pair([Identify()], [Identify()], connect=False) as (a, b):
        with a.subscribe() as a_events, b.subscribe() as b_events, anyio.fail_after(10):
            await a.connect(b.addrs[0])
            await identified(a_events, b.peer_id)
            # b pushes only to peers it knows accept pushes: wait until it has identified a.
            await identified(b_events, a.peer_id, PUSH_PROTOCOL_ID)

            async def noop(stream: Stream) -> None:
                pass

            b.set_stream_handler("/test/new/1.0.0", noop)
            event = await identified(a_events, b.peer_id, "/test/new/1.0.0")
        assert "/test/new/1.0.0" in a.peerstore.protocols(b.peer_id)
        assert event.agent_version == b.agent_version
        assert list(event.listen_addrs) == b.listen_addrs


@pytest.mark.anyio
async def test_inbound_partial_push_keeps_other_fields() -> None:
    async with host_pair([Identify()], [Identify()], connect=False) as (a, b):
        with a.subscribe() as events, anyio.fail_after(10):
            await a.connect(b.addrs[0])
            await identified(events, b.peer_id)
            conn_b = b.connections(a.peer_id)[0]
            push = await conn_b.new_stream([PUSH_PROTOCOL_ID])
            await push.send(frame_identify(IdentifyMessage(protocols=("/only/1.0.0",))))
            await push.send_eof()
            event = await identified(events, b.peer_id, "/only/1.0.0")
            await push.aclose()
        assert a.peerstore.protocols(b.peer_id) == ["/only/1.0.0"]
        assert event.agent_version == b.agent_version  # absent from the push: kept
        assert a.peerstore.public_key(b.peer_id) == b.identity.public_key


def answer_with(msg: IdentifyMessage) -> Callable[[Stream], Awaitable[None]]:
    async def handler(stream: Stream) -> None:
        await stream.send(frame_identify(msg))

    return handler


@pytest.mark.anyio
async def test_foreign_public_key_is_rejected() -> None:
    other = Identity.generate()
    async with host_pair([Identify(identify_on_connect=False), Ping()], [Ping()]) as (a, b):
        b.set_stream_handler(
            PROTOCOL_ID, answer_with(IdentifyMessage(public_key=other.public_key.to_protobuf()))
        )
        with anyio.fail_after(10), pytest.raises(RemoteProtocolError, match="not its own"):
            await a.service(Identify).identify(b.peer_id)
        with anyio.fail_after(10):
            assert len(await a.service(Ping).ping(b.peer_id)) == 1  # connection unharmed


@pytest.mark.anyio
async def test_bad_signed_records_are_ignored() -> None:
    other = Identity.generate()
    async with host_pair([Identify(identify_on_connect=False)], []) as (a, b):
        foreign = PeerRecord(peer_id=other.peer_id, seq=1, addrs=[Multiaddr("/memory/99")])
        for bad in (b"garbage", foreign.seal(other.private_key).to_bytes()):
            msg = IdentifyMessage(
                public_key=b.identity.public_key.to_protobuf(),
                agent_version="x/1",
                listen_addrs=(Multiaddr("/memory/7"),),
                signed_peer_record=bad,
            )
            b.set_stream_handler(PROTOCOL_ID, answer_with(msg), replace=True)
            with anyio.fail_after(10):
                info = await a.service(Identify).identify(b.peer_id)
            assert info.signed_peer_record is None
            assert info.agent_version == "x/1"
            assert info.listen_addrs == (Multiaddr("/memory/7"),)
        assert Multiaddr("/memory/99") not in a.peerstore.addrs(b.peer_id)
        assert a.peerstore.signed_record(b.peer_id) is None
        assert a.peerstore.signed_record(other.peer_id) is None


@pytest.mark.anyio
async def test_missing_public_key_falls_back_to_the_connection() -> None:
    async with host_pair([Identify(identify_on_connect=False)], []) as (a, b):
        b.set_stream_handler(PROTOCOL_ID, answer_with(IdentifyMessage(agent_version="bare")))
        with anyio.fail_after(10):
            info = await a.service(Identify).identify(b.peer_id)
        assert info.public_key == b.identity.public_key
        assert info.protocols == ()
        assert info.protocol_version == ""


@pytest.mark.anyio
async def test_failed_automatic_identify_keeps_the_connection() -> None:
    answered = anyio.Event()

    async def garbage(stream: Stream) -> None:
        await stream.send(b"\x05\xff\xff")
        answered.set()

    async with host_pair([Identify(), Ping()], [Ping()], connect=False) as (a, b):
        b.set_stream_handler(PROTOCOL_ID, garbage)
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
            await answered.wait()
            assert len(await a.service(Ping).ping(b.peer_id)) == 1
        assert a.connections(b.peer_id)


@pytest.mark.anyio
async def test_identified_by_waits_for_the_peer_to_ask() -> None:
    ours = Identify()
    async with host_pair([ours], [Identify()], connect=False) as (a, b):
        with anyio.fail_after(10):
            await a.connect(b.addrs[0])
            # b identifies every new connection: a answers, and the wait ends with it.
            assert await ours.identified_by(b.peer_id, within=5.0)
            assert await ours.identified_by(b.peer_id, within=0.0)  # remembered


@pytest.mark.anyio
async def test_identified_by_gives_up_when_the_connection_is_old_enough() -> None:
    ours = Identify()
    async with host_pair([ours], [Identify(identify_on_connect=False)], connect=False) as (
        a,
        b,
    ):
        with anyio.fail_after(10):
            assert not await ours.identified_by(b.peer_id)  # not connected: at once
            await a.connect(b.addrs[0])
            started = anyio.current_time()
            assert not await ours.identified_by(b.peer_id, within=0.5)
            waited = anyio.current_time() - started
            assert 0.3 <= waited <= 2.0
            assert not await ours.identified_by(b.peer_id, within=0.5)  # old now: at once
            assert anyio.current_time() - started - waited < 0.3
            await b.service(Identify).identify(a.peer_id)  # b asks after all
            assert await ours.identified_by(b.peer_id, within=5.0)
