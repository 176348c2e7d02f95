"""The anyio yamux driver: pairs of connections over memory pipes, and a raw scripted peer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from p2pstack.errors import (
    ConnectionClosedError,
    MuxerError,
    P2PTimeoutError,
    RemoteProtocolError,
    StreamReset,
)
from p2pstack.interfaces import Buffer, MuxedStream, StreamPushingConnection
from p2pstack.sim import run_virtual
from p2pstack.testing import FakeSecureConnection, fake_secure_pair
from transports.yamux import (
    INITIAL_WINDOW,
    Flag,
    FrameType,
    Yamux,
    YamuxConfig,
    YamuxConnection,
    decode_header,
    encode_header,
)

pytestmark = pytest.mark.anyio

QUIET = YamuxConfig(keepalive_interval=None)


@asynccontextmanager
async def yamux_pair(
    config_a: YamuxConfig = QUIET, config_b: YamuxConfig = QUIET, *, limit: float = 10
) -> AsyncIterator[tuple[YamuxConnection, YamuxConnection]]:
    conn_a, conn_b = fake_secure_pair()
    a = Yamux(config_a).new_connection(conn_a, is_initiator=True)
    b = Yamux(config_b).new_connection(conn_b, is_initiator=False)
    async with anyio.create_task_group() as group:
        group.start_soon(a.run)
        group.start_soon(b.run)
        with anyio.fail_after(limit):
            yield a, b
        await a.aclose()
        await b.aclose()


@asynccontextmanager
async def yamux_and_raw_peer(
    config: YamuxConfig = QUIET, *, limit: float = 10
) -> AsyncIterator[tuple[YamuxConnection, FakeSecureConnection, anyio.Event]]:
    """A yamux listener and the raw other end of its connection; the event is set when
    ``run()`` has returned."""
    ours, raw = fake_secure_pair()
    conn = Yamux(config).new_connection(ours, is_initiator=False)
    finished = anyio.Event()

    async def run() -> None:
        await conn.run()
        finished.set()

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        with anyio.fail_after(limit):
            yield conn, raw, finished
        await conn.aclose()
        await raw.aclose()


async def read_frames_until(
    raw: FakeSecureConnection, wanted: Callable[[FrameType, int, int, int], bool]
) -> None:
    """Parse frames from ``raw`` until one matches ``wanted(type, flags, stream_id, length)``."""
    buffer = b""
    while True:
        buffer += await raw.receive()
        while len(buffer) >= 12:
            header = decode_header(buffer)
            size = 12 + (header.length if header.type is FrameType.DATA else 0)
            if len(buffer) < size:
                break
            buffer = buffer[size:]
            if wanted(header.type, header.flags, header.stream_id, header.length):
                return


# Timing tests run on the simulator's virtual clock: real spec-sized intervals, exact times,
# no real sleeping.


def test_keepalive_timeout_closes_the_connection() -> None:
    config = YamuxConfig(keepalive_interval=30, keepalive_timeout=10)

    async def main() -> tuple[float, float]:
        async with yamux_and_raw_peer(config, limit=100) as (conn, raw, finished):
            # The peer reads everything and answers nothing: the first keep-alive ping
            # (opaque 0) goes unanswered.
            await read_frames_until(raw, lambda t, f, s, n: t is FrameType.PING and n == 0)
            pinged = anyio.current_time()
            await finished.wait()
            assert isinstance(conn.close_reason, P2PTimeoutError)
            assert conn.is_closed
            return pinged, anyio.current_time()

    assert run_virtual(main) == (30.0, 40.0)


def test_keepalive_pings_are_answered_and_measure_rtt() -> None:
    config = YamuxConfig(keepalive_interval=30, keepalive_timeout=10)

    async def main() -> None:
        async with yamux_pair(config, config, limit=1000) as (a, b):
            rtt = await a.ping()
            assert 0 <= rtt < 5
            assert a.rtt == rtt
            await anyio.sleep(600)  # twenty intervals: the keep-alive answers keep it open
            assert not a.is_closed and not b.is_closed
            stream = await a.open_stream()
            await stream.send(b"alive")
            assert await (await b.accept_stream()).receive() == b"alive"

    run_virtual(main)


def test_keepalive_waits_while_frames_arrive() -> None:
    config = YamuxConfig(keepalive_interval=30, keepalive_timeout=10)

    async def main() -> float:
        async with yamux_and_raw_peer(config, limit=1000) as (conn, raw, _finished):
            pinged = anyio.Event()

            async def watch() -> None:
                await read_frames_until(
                    raw, lambda t, f, s, n: t is FrameType.PING and bool(f & Flag.SYN)
                )
                pinged.set()

            async with anyio.create_task_group() as group:
                group.start_soon(watch)
                # Our own pings arrive every 6 s, a fifth of the interval: no keep-alive.
                for opaque in range(30):
                    await raw.send(encode_header(FrameType.PING, Flag.SYN, 0, 1000 + opaque))
                    await anyio.sleep(6)
                assert not pinged.is_set()
                # Silence since the last ping (t = 174): the keep-alive follows one interval on.
                await pinged.wait()
                when = anyio.current_time()
            assert not conn.is_closed
            return when

    assert run_virtual(main) == 204.0


def test_rtt_is_measured_once_data_flows() -> None:
    async def main() -> None:
        async with yamux_pair() as (a, b):
            await anyio.sleep(5)
            assert a.rtt is None and b.rtt is None  # no traffic, no probe
            stream = await a.open_stream()
            payload = bytes(1024 * 1024)

            async def sink() -> None:
                peer = await b.accept_stream()
                got = 0
                while got < len(payload):
                    got += len(await peer.receive())

            async with anyio.create_task_group() as group:
                group.start_soon(sink)
                await stream.send(payload)
            for _ in range(200):  # the reader's window updates carry the probe
                if b.rtt is not None:
                    break
                await anyio.sleep(0.01)
            assert b.rtt is not None and 0 <= b.rtt < 2

    run_virtual(main)


async def test_protocol_violation_sends_go_away_and_records_reason() -> None:
    async with yamux_and_raw_peer() as (conn, raw, finished):
        await raw.send(bytes.fromhex("01 00 0000 00000001 00000000"))
        await finished.wait()
        assert isinstance(conn.close_reason, RemoteProtocolError)
        await read_frames_until(raw, lambda t, f, s, n: t is FrameType.GO_AWAY and n == 1)
        with pytest.raises(ConnectionClosedError):
            await conn.accept_stream()


async def test_go_away_with_error_code_ends_the_connection() -> None:
    async with yamux_and_raw_peer() as (conn, raw, finished):
        await raw.send(encode_header(FrameType.GO_AWAY, 0, 0, 2))
        await finished.wait()
        assert isinstance(conn.close_reason, MuxerError)
        assert "code 2" in str(conn.close_reason)


async def test_normal_go_away_refuses_new_outbound_streams() -> None:
    async with yamux_and_raw_peer() as (conn, raw, finished):
        await raw.send(encode_header(FrameType.WINDOW_UPDATE, Flag.SYN, 1, 0))
        stream = await conn.accept_stream()
        # GoAway, then a ping: once the ping is answered the GoAway was processed.
        await raw.send(encode_header(FrameType.GO_AWAY, 0, 0, 0))
        await raw.send(encode_header(FrameType.PING, Flag.SYN, 0, 99))
        await read_frames_until(raw, lambda t, f, s, n: t is FrameType.PING and n == 99)
        with pytest.raises(ConnectionClosedError):
            await conn.open_stream()
        await stream.send(b"still works")
        assert not finished.is_set()


async def test_peer_closing_the_connection_resets_open_streams() -> None:
    async with yamux_and_raw_peer() as (conn, raw, finished):
        await raw.send(
            encode_header(FrameType.WINDOW_UPDATE, Flag.SYN, 1, 0)
            + encode_header(FrameType.DATA, Flag.SYN | Flag.FIN, 3, 4)
            + b"done"
        )
        open_stream = await conn.accept_stream()
        finished_stream = await conn.accept_stream()
        await raw.aclose()
        await finished.wait()
        # EOF seen by the reader, or a write (the ACKs) failing first: both are network ends.
        assert conn.close_reason is None or isinstance(conn.close_reason, anyio.BrokenResourceError)
        with pytest.raises(StreamReset):
            await open_stream.receive()
        with pytest.raises(StreamReset):
            await open_stream.send(b"x")
        # Fully received data survives the connection.
        assert await finished_stream.receive() == b"done"
        with pytest.raises(anyio.EndOfStream):
            await finished_stream.receive()


async def test_accept_backlog_overflow_resets_new_streams() -> None:
    async with yamux_pair(QUIET, YamuxConfig(keepalive_interval=None, accept_backlog=2)) as (
        a,
        b,
    ):
        streams = [await a.open_stream() for _ in range(3)]
        for stream in streams:
            await stream.send(b"x")
        with pytest.raises(StreamReset):
            await streams[2].receive()
        for stream in streams[:2]:
            inbound = await b.accept_stream()
            assert inbound.stream_id == stream.stream_id
            assert await inbound.receive() == b"x"


async def test_open_stream_limit() -> None:
    async with yamux_pair(YamuxConfig(keepalive_interval=None, max_streams=1)) as (a, _b):
        await a.open_stream()
        with pytest.raises(MuxerError, match="too many"):
            await a.open_stream()


async def test_send_blocks_on_zero_window_and_wakes_on_window_update() -> None:
    async with yamux_pair() as (a, b):
        out = await a.open_stream()
        await out.send(bytes(INITIAL_WINDOW))
        inbound = await b.accept_stream()
        done = anyio.Event()

        async def send_one_more() -> None:
            await out.send(b"!")
            done.set()

        async with anyio.create_task_group() as group:
            group.start_soon(send_one_more)
            await anyio.wait_all_tasks_blocked()
            assert not done.is_set(), "send() did not wait for the peer's window"
            received = 0
            while received < INITIAL_WINDOW // 2:
                received += len(await inbound.receive())
            await done.wait()
        assert received <= INITIAL_WINDOW


async def test_stream_aclose_delivers_reply_and_resets_late_writer() -> None:
    async with yamux_pair() as (a, b):
        out = await a.open_stream()
        await out.send(b"request")
        inbound = await b.accept_stream()
        assert await inbound.receive() == b"request"
        await inbound.send(b"response")
        await inbound.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await inbound.receive()
        assert await out.receive() == b"response"
        with pytest.raises(anyio.EndOfStream):
            await out.receive()
        # Still writing to a stream the peer closed: the peer answers with RST.
        with pytest.raises(StreamReset):
            while True:
                await out.send(bytes(16 * 1024))


async def test_writes_are_coalesced() -> None:
    sends: list[int] = []
    conn_a, conn_b = fake_secure_pair()
    original = conn_a.send

    async def counting_send(item: Buffer) -> None:
        sends.append(len(item))
        await original(item)

    conn_a.send = counting_send  # type: ignore[method-assign]  # instrument one instance
    a = Yamux(QUIET).new_connection(conn_a, is_initiator=True)
    b = Yamux(QUIET).new_connection(conn_b, is_initiator=False)
    async with anyio.create_task_group() as group:
        group.start_soon(a.run)
        group.start_soon(b.run)
        await anyio.wait_all_tasks_blocked()
        sends.clear()
        for _ in range(20):
            stream = await a.open_stream()
            await stream.send(b"small")
        with anyio.fail_after(5):
            for _ in range(20):
                assert await (await b.accept_stream()).receive() == b"small"
        assert 1 <= len(sends) <= 2, sends
        await a.aclose()
        await b.aclose()


async def test_ten_thousand_streams() -> None:
    config = YamuxConfig(keepalive_interval=None, max_streams=10_000, accept_backlog=10_000)
    async with yamux_pair(config, config) as (a, b):
        count = 10_000
        streams = []
        for _ in range(count):
            stream = await a.open_stream()
            await stream.send(b"x")
            streams.append(stream)
        with pytest.raises(MuxerError):
            await a.open_stream()
        for _ in range(count):
            inbound = await b.accept_stream()
            assert await inbound.receive() == b"x"
            await inbound.aclose()
        for stream in streams:
            with pytest.raises(anyio.EndOfStream):
                await stream.receive()
            await stream.aclose()
        # Every stream is finished on both sides: the limit is free again.
        await a.open_stream()


async def test_aclose_before_run_makes_run_return() -> None:
    conn_a, _conn_b = fake_secure_pair()
    conn = Yamux().new_connection(conn_a, is_initiator=True)
    await conn.aclose()
    with anyio.fail_after(5):
        await conn.run()
    assert conn.is_closed
    with pytest.raises(ConnectionClosedError):
        await conn.open_stream()


async def test_receive_joins_frame_pieces_up_to_max_bytes() -> None:
    async with yamux_pair() as (a, b):
        stream = await a.open_stream()
        for piece in (b"ab", b"cde", b"f"):
            await stream.send(piece)
        await stream.send_eof()
        inbound = await b.accept_stream()
        got = bytearray()
        while True:
            try:
                chunk = await inbound.receive(4)
            except anyio.EndOfStream:
                break
            assert isinstance(chunk, bytes)
            assert 1 <= len(chunk) <= 4
            got += chunk
        assert bytes(got) == b"abcdef"


async def test_send_takes_buffers_and_copies_mutable_ones() -> None:
    async with yamux_pair() as (a, b):
        stream = await a.open_stream()
        buffer = bytearray(b"abc")
        await stream.send(buffer)
        buffer[:] = b"xyz"  # the caller may reuse its buffer once send returned
        await stream.send(memoryview(b"0123")[1:3])
        await stream.send_eof()
        peer = await b.accept_stream()
        got = b""
        with contextlib.suppress(anyio.EndOfStream):
            while True:
                got += await peer.receive()
        assert got == b"abc12"


async def test_a_read_full_of_small_frames_makes_the_next_read_small() -> None:
    # A flood of pings must not hold the event loop for a whole 256 KiB read: after a read of
    # many frames the driver yields and asks for less; after a normal read, for the full size.
    ours, raw = fake_secure_pair()
    sizes: list[int] = []
    inner = ours.receive

    async def recording(max_bytes: int = 65536) -> bytes:
        sizes.append(max_bytes)
        return await inner(max_bytes)

    ours.receive = recording  # type: ignore[method-assign]
    conn = Yamux(QUIET).new_connection(ours, is_initiator=False)
    async with anyio.create_task_group() as group:
        group.start_soon(conn.run)
        with anyio.fail_after(10):
            flood = b"".join(encode_header(FrameType.PING, Flag.SYN, 0, i) for i in range(2000))
            await raw.send(flood)
            await read_frames_until(raw, lambda t, f, s, n: t is FrameType.PING and n == 1999)
            await raw.send(encode_header(FrameType.PING, Flag.SYN, 0, 5000))
            await read_frames_until(raw, lambda t, f, s, n: t is FrameType.PING and n == 5000)
        await conn.aclose()
        await raw.aclose()
    full = YamuxConfig().read_size
    assert sizes[0] == full
    small = sizes.index(16 * 1024)
    assert full in sizes[small + 1 :]  # back to full reads once the frames are few again


async def test_stream_handler_gets_queued_and_new_inbound_streams() -> None:
    handed: list[int] = []
    async with yamux_pair() as (a, b):
        assert isinstance(b, StreamPushingConnection)
        first = await a.open_stream()
        await first.send(b"queued")  # the SYN travels with the first data
        await anyio.wait_all_tasks_blocked()
        assert len(b._backlog) == 1
        two = anyio.Event()

        def handler(stream: MuxedStream) -> None:
            handed.append(stream.stream_id)
            if len(handed) == 2:
                two.set()

        b.set_stream_handler(handler)
        assert handed == [first.stream_id] and not b._backlog
        second = await a.open_stream()
        await second.send(b"pushed")
        await two.wait()
        assert handed == [first.stream_id, second.stream_id]
        with pytest.raises(ConnectionClosedError):
            await a.aclose()
            await b.accept_stream()  # only the end of the connection wakes it


async def test_stream_handler_gets_at_most_the_backlog_per_read() -> None:
    handed: list[object] = []
    config = YamuxConfig(keepalive_interval=None, accept_backlog=4)
    async with yamux_and_raw_peer(config) as (conn, raw, _finished):
        conn.set_stream_handler(handed.append)
        syns = b"".join(
            encode_header(FrameType.WINDOW_UPDATE, Flag.SYN, 1 + 2 * i, 0) for i in range(10)
        )
        await raw.send(syns)  # ten SYNs in one read: four handed over, six reset
        resets: list[int] = []

        def reset(kind: FrameType, flags: int, stream_id: int, _length: int) -> bool:
            if Flag.RST in Flag(flags):
                resets.append(stream_id)
            return len(resets) == 6

        await read_frames_until(raw, reset)
    assert len(handed) == 4
    assert resets == [9, 11, 13, 15, 17, 19]


def _writer_tasks() -> int:
    return sum("_write_loop" in task.get_name() for task in asyncio.all_tasks())


def test_idle_connection_ends_its_writer_task_and_restarts_it_for_output() -> None:
    config = YamuxConfig(keepalive_interval=30, keepalive_timeout=10)

    async def main() -> None:
        async with yamux_pair(config, config, limit=1000) as (a, b):
            await anyio.sleep(0.05)
            assert _writer_tasks() == 2  # started by run(), until the linger passes
            await anyio.sleep(5)
            assert _writer_tasks() == 0  # idle: one task per connection, the reader
            stream = await a.open_stream()
            await stream.send(b"after idle")
            peer = await b.accept_stream()
            assert await peer.receive() == b"after idle"
            await peer.send(b"reply")
            assert await stream.receive() == b"reply"
            await anyio.sleep(5)
            assert _writer_tasks() == 0
            await anyio.sleep(600)  # keep-alives started from loop timers keep it open
            assert not a.is_closed and not b.is_closed
            assert a.rtt is not None and b.rtt is not None
            assert await b.ping() >= 0

    run_virtual(main)


def test_writer_of_a_busy_connection_lingers_longer() -> None:
    async def main() -> None:
        async with yamux_pair(limit=1000) as (a, b):
            stream = await a.open_stream()
            await stream.send(b"first")
            peer = await b.accept_stream()
            assert await peer.receive() == b"first"
            await anyio.sleep(0.3)
            assert _writer_tasks() == 0  # a new connection's writer leaves after 0.1 s
            for _ in range(20):  # request and answer: both sides become busy
                await stream.send(b"ping")
                assert await peer.receive() == b"ping"
                await peer.send(b"pong")
                assert await stream.receive() == b"pong"
                await anyio.sleep(0.5)
            assert _writer_tasks() == 2  # busy: the writers stayed between round trips
            await anyio.sleep(1.5)
            assert _writer_tasks() == 0

    run_virtual(main)
