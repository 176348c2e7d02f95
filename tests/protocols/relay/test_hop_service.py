"""The relay service between three hosts on the memory network, driven by a raw test client."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import anyio
import anyio.lowlevel
import pytest
from multiaddr import Multiaddr

from p2pstack.builder import open_host
from p2pstack.errors import StreamReset
from p2pstack.events import ConnectionClosed
from p2pstack.framing import write_lp
from p2pstack.host import Host, Stream
from protocols.relay import (
    HOP_PROTOCOL_ID,
    PROTECTION_TAG,
    CircuitClosed,
    CircuitOpened,
    CircuitRefused,
    HopType,
    RelayConfig,
    RelayService,
    RelayStatusError,
    ReservationAccepted,
    ReservationRefused,
    Status,
    StopMessage,
    open_voucher,
    read_hop,
    read_stop,
)
from protocols.relay import _hop_service as service_module
from tests.protocols.relay.hop_client import (
    accept_stops,
    connect,
    memory_host,
    reserve,
    trio_of_hosts,
)
from transports.memory import MemoryNetwork
from transports.noise import Noise
from transports.tcp import TcpTransport
from transports.yamux import Yamux

pytestmark = pytest.mark.anyio


async def test_reserve_connect_and_echo() -> None:
    service = RelayService(RelayConfig(limit_data=1 << 16), wall_clock=lambda: 1_000_000.0)
    async with trio_of_hosts(service) as (relay, target, source):
        with relay.events.subscribe(ReservationAccepted, CircuitOpened, CircuitClosed) as events:
            answer = await reserve(target, relay.peer_id)
            assert answer.type is HopType.STATUS and answer.status is Status.OK
            rsvp = answer.reservation
            assert rsvp is not None and rsvp.voucher is not None
            assert rsvp.expire == 1_000_000 + 3600
            assert rsvp.addrs and all(a.get_peer_id() == str(relay.peer_id) for a in rsvp.addrs)
            voucher = open_voucher(rsvp.voucher, relay=relay.peer_id, peer=target.peer_id)
            assert voucher.expiration == rsvp.expire
            assert answer.limit is not None and answer.limit.data == 1 << 16
            assert answer.limit.duration == 120
            seen: list[StopMessage] = []
            accept_stops(target, seen=seen)
            stream, ok = await connect(source, relay.peer_id, target.peer_id)
            assert ok.limit == answer.limit
            with anyio.fail_after(10):
                await stream.send(b"hello through the relay")
                got = b""
                while len(got) < 23:
                    got += await stream.receive()
                await stream.send_eof()
                with pytest.raises(anyio.EndOfStream):
                    await stream.receive()
            assert got == b"hello through the relay"
            assert seen[0].peer is not None and seen[0].peer.id == source.peer_id
            assert seen[0].limit == answer.limit
            with anyio.fail_after(10):
                got_events = [await events.receive() for _ in range(3)]
        assert [type(e) for e in got_events] == [ReservationAccepted, CircuitOpened, CircuitClosed]
        closed = got_events[2]
        assert isinstance(closed, CircuitClosed)
        assert closed.reason == "closed" and closed.bytes_relayed == (23, 23)


async def test_connect_without_reservation_says_no_reservation() -> None:
    service = RelayService()
    async with trio_of_hosts(service) as (relay, target, source):
        with relay.events.subscribe(CircuitRefused) as events:
            with pytest.raises(RelayStatusError, match="NO_RESERVATION") as info:
                await connect(source, relay.peer_id, target.peer_id)
            assert info.value.status is Status.NO_RESERVATION
            with anyio.fail_after(10):
                refused = await events.receive()
        assert refused.status is Status.NO_RESERVATION


async def test_reservation_ends_with_its_connection() -> None:
    service = RelayService()
    async with trio_of_hosts(service) as (relay, target, source):
        assert (await reserve(target, relay.peer_id)).status is Status.OK
        assert service.statistics().reservations == 1
        assert relay.connmgr.is_protected(target.peer_id, PROTECTION_TAG)
        with relay.events.subscribe(ConnectionClosed) as events:
            await target.disconnect(relay.peer_id)
            with anyio.fail_after(10):
                await events.receive()
        assert service.statistics().reservations == 0
        assert not relay.connmgr.is_protected(target.peer_id, PROTECTION_TAG)
        with pytest.raises(RelayStatusError, match="NO_RESERVATION"):
            await connect(source, relay.peer_id, target.peer_id)


async def test_reservation_flood_is_refused() -> None:
    net = MemoryNetwork()
    service = RelayService(RelayConfig(max_reservations=2))
    async with memory_host(net, [service]) as relay:
        async with memory_host(net) as a, memory_host(net) as b, memory_host(net) as c:
            with relay.events.subscribe(ReservationRefused) as events:
                got = []
                for peer in (a, b, c):
                    await peer.connect(relay.addrs[0])
                    got.append((await reserve(peer, relay.peer_id)).status)
                with anyio.fail_after(10):
                    refused = await events.receive()
            # Renewing a held reservation is not a new one.
            assert (await reserve(a, relay.peer_id)).status is Status.OK
        assert got == [Status.OK, Status.OK, Status.RESERVATION_REFUSED]
        assert refused.peer == c.peer_id and "too many" in refused.reason


async def _send_until_reset(stream: Stream, total: int) -> int:
    sent = 0
    chunk = b"x" * 4096
    with anyio.fail_after(20):
        try:
            while sent < total:
                await stream.send(chunk)
                sent += len(chunk)
                await anyio.lowlevel.checkpoint()
            while True:
                await stream.receive()
        except (StreamReset, anyio.EndOfStream, anyio.BrokenResourceError):
            return sent
    return sent


async def test_data_limit_resets_the_circuit() -> None:
    service = RelayService(RelayConfig(limit_data=10_000))
    async with trio_of_hosts(service) as (relay, target, source):
        received = bytearray()

        async def sink(stream: Stream, _request: StopMessage) -> None:
            try:
                while True:
                    received.extend(await stream.receive())
            except (StreamReset, anyio.EndOfStream):
                return

        accept_stops(target, serve=sink)
        assert (await reserve(target, relay.peer_id)).status is Status.OK
        with relay.events.subscribe(CircuitClosed) as events:
            stream, _ = await connect(source, relay.peer_id, target.peer_id)
            await _send_until_reset(stream, 200_000)
            with anyio.fail_after(10):
                closed = await events.receive()
        assert closed.reason == "data limit"
        assert closed.bytes_relayed[0] == 10_000
        assert len(received) <= 10_000
        assert service.statistics().circuits == 0


async def test_duration_limit_resets_the_circuit() -> None:
    service = RelayService(RelayConfig(limit_duration=1))
    async with trio_of_hosts(service) as (relay, target, source):
        accept_stops(target)
        assert (await reserve(target, relay.peer_id)).status is Status.OK
        with relay.events.subscribe(CircuitClosed) as events:
            stream, ok = await connect(source, relay.peer_id, target.peer_id)
            assert ok.limit is not None and ok.limit.duration == 1
            started = anyio.current_time()
            with anyio.fail_after(10), pytest.raises((StreamReset, anyio.EndOfStream)):
                while True:
                    await stream.receive()
            closed = await events.receive()
        assert closed.reason == "duration limit"
        assert 0.9 <= anyio.current_time() - started < 8


async def test_circuit_limits_and_target_refusal() -> None:
    service = RelayService(RelayConfig(max_circuits=1))
    async with trio_of_hosts(service) as (relay, target, source):
        accept_stops(target)
        assert (await reserve(target, relay.peer_id)).status is Status.OK
        first, _ = await connect(source, relay.peer_id, target.peer_id)
        with pytest.raises(RelayStatusError, match="RESOURCE_LIMIT_EXCEEDED"):
            await connect(source, relay.peer_id, target.peer_id)
        with relay.events.subscribe(CircuitClosed) as events:
            await first.reset()
            with anyio.fail_after(10):
                assert (await events.receive()).reason == "reset"
        assert service.statistics().circuits == 0
        target.remove_stream_handler("/libp2p/circuit/relay/0.2.0/stop")
        with pytest.raises(RelayStatusError, match="CONNECTION_FAILED"):
            await connect(source, relay.peer_id, target.peer_id)


async def test_relay_loops_are_refused() -> None:
    net = MemoryNetwork()
    service = RelayService()
    async with (
        memory_host(net, [service], limited=True) as relay,
        memory_host(net, limited=True) as peer,
    ):
        await peer.connect(relay.addrs[0])
        answer = await reserve(peer, relay.peer_id)
        assert answer.status is Status.PERMISSION_DENIED and answer.reservation is None
        with pytest.raises(RelayStatusError, match="PERMISSION_DENIED"):
            await connect(peer, relay.peer_id, relay.peer_id)
        assert service.statistics().reservations == 0


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"\x08\x07", Status.MALFORMED_MESSAGE),  # unknown type
        (b"\x08\x01", Status.MALFORMED_MESSAGE),  # CONNECT without a peer
        (b"\x08\x01\x12\x02\x0a\x00", Status.MALFORMED_MESSAGE),  # empty peer id
        (b"\xff\xff", Status.MALFORMED_MESSAGE),  # not a protobuf
        (b"\x08\x02\x28\x64", Status.UNEXPECTED_MESSAGE),  # a STATUS sent to the relay
        (b"\x08\x00" * 2100, Status.MALFORMED_MESSAGE),  # over the 4 KiB message limit
    ],
)
async def test_malformed_and_unexpected_requests(body: bytes, status: Status) -> None:
    service = RelayService()
    async with trio_of_hosts(service) as (relay, _target, source):
        with anyio.fail_after(10):
            stream = await source.new_stream(relay.peer_id, HOP_PROTOCOL_ID)
            await write_lp(stream, body)
            answer = await read_hop(stream)
            assert answer.status is status
            with pytest.raises((anyio.EndOfStream, StreamReset)):
                await stream.receive()
        # The relay still serves.
        assert (await reserve(source, relay.peer_id)).status is Status.OK


async def test_silent_client_is_dropped() -> None:
    service = RelayService(RelayConfig(stream_timeout=0.3))
    async with trio_of_hosts(service) as (relay, _target, source):
        with anyio.fail_after(10):
            stream = await source.new_stream(relay.peer_id, HOP_PROTOCOL_ID)
            with pytest.raises((anyio.EndOfStream, StreamReset)):
                await stream.receive()


async def test_reservation_gives_the_advertised_addrs() -> None:
    addr = Multiaddr("/ip4/192.0.2.1/tcp/4001")
    service = RelayService(advertised_addrs=lambda: [addr])
    async with trio_of_hosts(service) as (relay, target, _source):
        answer = await reserve(target, relay.peer_id)
    assert answer.reservation is not None
    assert [str(a) for a in answer.reservation.addrs] == [f"{addr}/p2p/{relay.peer_id}"]


async def test_target_refusing_the_stop_gives_connection_failed() -> None:
    service = RelayService()
    async with trio_of_hosts(service) as (relay, target, source):
        accept_stops(target, status=Status.RESOURCE_LIMIT_EXCEEDED)
        assert (await reserve(target, relay.peer_id)).status is Status.OK
        with pytest.raises(RelayStatusError, match="CONNECTION_FAILED"):
            await connect(source, relay.peer_id, target.peer_id)
        assert service.statistics().circuits == 0


async def test_duration_counts_while_the_target_is_slow_to_accept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The circuit's time runs out before the target answers: relaying must not start unlimited.
    service = RelayService(RelayConfig(limit_duration=1))
    async with trio_of_hosts(service) as (relay, target, source):
        release = anyio.Event()

        async def slow(stream: Stream, _request: StopMessage) -> None:
            await release.wait()

        accept_stops(target, serve=slow)
        real_read = read_stop

        async def late_read(stream: Stream) -> StopMessage:
            answer = await real_read(stream)
            await anyio.sleep(1.5)
            return answer

        monkeypatch.setattr(service_module, "read_stop", late_read)
        with relay.events.subscribe(CircuitClosed) as events:
            try:
                assert (await reserve(target, relay.peer_id)).status is Status.OK
                stream, _ = await connect(source, relay.peer_id, target.peer_id)
                with anyio.fail_after(10):
                    closed = await events.receive()
            finally:
                release.set()
        assert closed.reason == "duration limit"
        with anyio.fail_after(10), pytest.raises((StreamReset, anyio.EndOfStream)):
            await stream.receive()


async def test_reservations_per_ip_over_tcp() -> None:
    # Every peer connects from 127.0.0.1: the third one is over the per-IP limit.
    service = RelayService(RelayConfig(max_reservations_per_ip=2))

    def tcp_host(services: list[RelayService]) -> AbstractAsyncContextManager[Host]:
        return open_host(
            transports=[TcpTransport()],
            security=[Noise()],
            muxers=[Yamux()],
            services=services,
            listen=["/ip4/127.0.0.1/tcp/0"],
        )

    async with (
        tcp_host([service]) as relay,
        tcp_host([]) as a,
        tcp_host([]) as b,
        tcp_host([]) as c,
    ):
        statuses = []
        for peer in (a, b, c):
            with anyio.fail_after(10):
                await peer.connect(relay.addrs[0])
            statuses.append((await reserve(peer, relay.peer_id)).status)
    assert statuses == [Status.OK, Status.OK, Status.RESERVATION_REFUSED]
