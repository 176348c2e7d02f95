"""The anyio mplex driver over in-memory connections, on both backends: streams, limits, pacing
and how the connection ends."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import anyio
import attrs
import pytest

from p2pstack.errors import (
    ConnectionClosedError,
    LocalProtocolError,
    P2PTimeoutError,
    RemoteProtocolError,
    StreamReset,
)
from p2pstack.interfaces import MuxedConnection, Muxer, SecureConnection
from p2pstack.sim import run_virtual
from p2pstack.streams import MemoryConnection, memory_connection_pair
from transports.mplex import (
    PROTOCOL_ID,
    Flag,
    Frame,
    Mplex,
    MplexConfig,
    MplexConnection,
    MplexStream,
    encode_header,
    parse_frame,
)

pytestmark = pytest.mark.anyio

#: Most tests open streams as fast as they like; the pacing tests set their own window.
UNPACED = MplexConfig(stream_open_window=0)
H = bytes.fromhex


@asynccontextmanager
async def mplex_pair(
    config_a: MplexConfig = UNPACED, config_b: MplexConfig = UNPACED
) -> AsyncIterator[tuple[MplexConnection, MplexConnection]]:
    a, b = memory_connection_pair()
    ca = MplexConnection(a, is_initiator=True, config=config_a)
    cb = MplexConnection(b, is_initiator=False, config=config_b)
    async with anyio.create_task_group() as tg:
        tg.start_soon(ca.run)
        tg.start_soon(cb.run)
        try:
            yield ca, cb
        finally:
            await ca.aclose()
            await cb.aclose()


class RawPeer:
    """The far end of an mplex connection, speaking bytes directly."""

    def __init__(self, conn: MemoryConnection) -> None:
        self.conn = conn
        self.buf = b""

    async def send(self, data: bytes) -> None:
        await self.conn.send(data)

    async def frame(self) -> Frame:
        with anyio.fail_after(5):
            while (parsed := parse_frame(self.buf, 0, 1 << 20)) is None:
                self.buf += await self.conn.receive()
        frame, end = parsed
        self.buf = self.buf[end:]
        return frame


@asynccontextmanager
async def raw_pair(
    config: MplexConfig = UNPACED, *, max_chunks: int = 64
) -> AsyncIterator[tuple[MplexConnection, RawPeer]]:
    a, b = memory_connection_pair(max_chunks=max_chunks)
    conn = MplexConnection(a, is_initiator=True, config=config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run)
        try:
            yield conn, RawPeer(b)
        finally:
            await conn.aclose()


async def read_all(stream: MplexStream) -> bytes:
    out = bytearray()
    with anyio.fail_after(5):
        while True:
            try:
                out += await stream.receive()
            except anyio.EndOfStream:
                return bytes(out)


# ---------------------------------------------------------------- the factory


async def test_factory() -> None:
    muxer: Muxer = Mplex()
    assert muxer.protocol_id == PROTOCOL_ID == "/mplex/6.7.0"
    assert Mplex().config == MplexConfig()
    a, _ = memory_connection_pair()
    conn: MuxedConnection = muxer.new_connection(cast(SecureConnection, a), is_initiator=True)
    assert isinstance(conn, MplexConnection)
    assert not conn.is_closed
    with pytest.raises(TypeError):
        Mplex(MplexConfig())  # type: ignore[call-arg]  # keyword-only, on purpose


def test_config_validates_bounds() -> None:
    with pytest.raises(ValueError):
        MplexConfig(max_stream_buffer=0)
    with pytest.raises(ValueError):
        MplexConfig(idle_timeout=0)
    assert attrs.evolve(MplexConfig(), idle_timeout=None).idle_timeout is None


# ---------------------------------------------------------------- streams


async def test_request_response() -> None:
    async with mplex_pair() as (a, b):
        out = await a.open_stream()
        await out.send(b"ping")
        await out.send_eof()
        with anyio.fail_after(5):
            inbound = await b.accept_stream()
        assert inbound.stream_id == out.stream_id == 0
        assert await read_all(inbound) == b"ping"
        await inbound.send(b"pong")
        await inbound.send_eof()
        assert await read_all(out) == b"pong"
        with pytest.raises(anyio.ClosedResourceError):
            await out.send(b"late")


async def test_wire_bytes_of_a_stream() -> None:
    async with raw_pair() as (conn, peer):
        stream = await conn.open_stream()
        assert await peer.frame() == Frame(0, Flag.NEW_STREAM, b"0")
        await stream.send(b"hi")
        assert await peer.frame() == Frame(0, Flag.MESSAGE_INITIATOR, b"hi")
        await peer.send(H("01 02 68 6f"))  # MessageReceiver "ho"
        with anyio.fail_after(5):
            assert await stream.receive() == b"ho"
        await stream.send_eof()
        assert await peer.frame() == Frame(0, Flag.CLOSE_INITIATOR, b"")
        await peer.send(H("03 00"))
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()


async def test_large_transfer_is_split_and_reassembled() -> None:
    config = attrs.evolve(UNPACED, max_message_size=64 << 10)
    payload = bytes(range(256)) * 12_000  # ~3 MiB, above the 1 MiB and the 64 KiB limits
    async with mplex_pair(config, config) as (a, b):
        out = await a.open_stream()

        async def upload() -> None:
            await out.send(payload)
            await out.send_eof()

        async with anyio.create_task_group() as tg:
            tg.start_soon(upload)
            with anyio.fail_after(5):
                inbound = await b.accept_stream()
            assert await read_all(inbound) == payload


async def test_receive_respects_max_bytes() -> None:
    async with mplex_pair() as (a, b):
        out = await a.open_stream()
        await out.send(b"abcdef")
        with anyio.fail_after(5):
            inbound = await b.accept_stream()
            assert await inbound.receive(4) == b"abcd"
            assert await inbound.receive(4) == b"ef"


async def test_many_concurrent_streams_both_directions() -> None:
    async with mplex_pair() as (a, b):

        async def echo_server(conn: MplexConnection, count: int) -> None:
            async with anyio.create_task_group() as tg:
                for _ in range(count):
                    stream = await conn.accept_stream()
                    tg.start_soon(echo, stream)

        async def echo(stream: MplexStream) -> None:
            data = await read_all(stream)
            await stream.send(data)
            await stream.aclose()

        async def client(conn: MplexConnection, i: int) -> None:
            stream = await conn.open_stream()
            message = f"message {i}".encode() * 100
            await stream.send(message)
            await stream.send_eof()
            assert await read_all(stream) == message

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(echo_server, b, 50)
                tg.start_soon(echo_server, a, 50)
                for i in range(50):
                    tg.start_soon(client, a, i)
                    tg.start_soon(client, b, i)


async def test_reset_reaches_peer() -> None:
    async with mplex_pair() as (a, b):
        out = await a.open_stream()
        await out.send(b"data")
        with anyio.fail_after(5):
            inbound = await b.accept_stream()
        await out.reset()
        await out.reset()  # idempotent
        with pytest.raises(StreamReset), anyio.fail_after(5):
            # Buffered data is dropped: the spec wants errors, not data, after a reset.
            while True:
                await inbound.receive()
        with pytest.raises(StreamReset):
            await inbound.send(b"x")
        with pytest.raises(StreamReset):
            await out.send(b"x")


async def test_stream_aclose_gives_peer_eof() -> None:
    async with mplex_pair() as (a, b):
        out = await a.open_stream()
        await out.send(b"bye")
        await out.aclose()
        await out.aclose()  # idempotent
        with pytest.raises(anyio.ClosedResourceError):
            await out.receive()
        with anyio.fail_after(5):
            inbound = await b.accept_stream()
        assert await read_all(inbound) == b"bye"
        await inbound.send(b"dropped")  # the closed side discards it
        await inbound.send_eof()


async def test_receive_waiter_is_cancel_safe() -> None:
    async with mplex_pair() as (a, b):
        out = await a.open_stream()
        await out.send(b"1")
        with anyio.fail_after(5):
            inbound = await b.accept_stream()
        assert await inbound.receive() == b"1"
        with anyio.move_on_after(0.01):
            await inbound.receive()
        await out.send(b"2")
        with anyio.fail_after(5):
            assert await inbound.receive() == b"2"


# ---------------------------------------------------------------- limits


async def test_oversized_message_closes_connection() -> None:
    async with raw_pair() as (conn, peer):
        await peer.send(H("00 01 30"))
        with anyio.fail_after(5):
            stream = await conn.accept_stream()
        await peer.send(encode_header(0, Flag.MESSAGE_INITIATOR, (1 << 20) + 1))
        with pytest.raises(StreamReset), anyio.fail_after(5):
            await stream.receive()
        assert conn.is_closed
        assert isinstance(conn.close_reason, RemoteProtocolError)
        with pytest.raises(ConnectionClosedError):
            await conn.open_stream()
        with pytest.raises(anyio.EndOfStream), anyio.fail_after(5):
            await peer.conn.receive()  # the underlying connection was closed


async def test_buffer_overflow_resets_that_stream_only() -> None:
    config = attrs.evolve(UNPACED, max_stream_buffer=8)
    async with raw_pair(config) as (conn, peer):
        await peer.send(H("00 01 30") + H("08 01 31"))
        with anyio.fail_after(5):
            slow = await conn.accept_stream()
            fast = await conn.accept_stream()
        await peer.send(H("02 05") + b"aaaaa" + H("0a 05") + b"bbbbb")
        with anyio.fail_after(5):
            assert await fast.receive() == b"bbbbb"
        await peer.send(H("02 05") + b"aaaaa" + H("0a 05") + b"bbbbb")
        assert await peer.frame() == Frame(0, Flag.RESET_RECEIVER, b"")
        with pytest.raises(StreamReset, match="overflow"):
            await slow.receive()
        with anyio.fail_after(5):
            assert await fast.receive() == b"bbbbb"
        assert not conn.is_closed


async def test_accept_backlog_resets_extra_streams() -> None:
    config = attrs.evolve(UNPACED, accept_backlog=2)
    async with raw_pair(config) as (conn, peer):
        await peer.send(H("00 01 30") + H("08 01 31") + H("10 01 32"))
        assert await peer.frame() == Frame(2, Flag.RESET_RECEIVER, b"")
        assert conn.rejected_streams == 1
        with anyio.fail_after(5):
            assert (await conn.accept_stream()).stream_id == 0
            assert (await conn.accept_stream()).stream_id == 1


async def test_full_backlog_pauses_reading_instead_of_resetting_later_opens() -> None:
    config = attrs.evolve(UNPACED, accept_backlog=2)
    async with raw_pair(config) as (conn, peer):
        await peer.send(H("00 01 30") + H("08 01 31"))
        await anyio.sleep(0.1)  # the reader takes both and pauses: the backlog is full
        await peer.send(H("10 01 32"))  # a later read: waits for an accept, not reset
        await anyio.sleep(0.2)
        with anyio.fail_after(5):
            ids = [(await conn.accept_stream()).stream_id for _ in range(3)]
        assert ids == [0, 1, 2]
        assert conn.rejected_streams == 0
        with anyio.move_on_after(0.2):
            assert await peer.frame() is None, "a stream was reset"


async def test_inbound_stream_limit() -> None:
    config = attrs.evolve(UNPACED, max_inbound_streams=1)
    async with raw_pair(config) as (conn, peer):
        await peer.send(H("00 01 30") + H("08 01 31"))
        assert await peer.frame() == Frame(1, Flag.RESET_RECEIVER, b"")
        with anyio.fail_after(5):
            first = await conn.accept_stream()
        await first.reset()
        assert await peer.frame() == Frame(0, Flag.RESET_RECEIVER, b"")
        await peer.send(H("10 01 32"))  # room again
        with anyio.fail_after(5):
            assert (await conn.accept_stream()).stream_id == 2


# ---------------------------------------------------------------- pacing


async def test_open_pacing_spaces_new_streams() -> None:
    window = 0.2
    config = MplexConfig(max_stream_opens_per_window=2, stream_open_window=window)
    async with raw_pair(config) as (conn, peer):
        arrivals: list[float] = []

        async def watch() -> None:
            for _ in range(5):
                frame = await peer.frame()
                assert frame.flag is Flag.NEW_STREAM
                arrivals.append(anyio.current_time())

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                start = anyio.current_time()
                streams = [await conn.open_stream() for _ in range(5)]
        assert [s.stream_id for s in streams] == [0, 1, 2, 3, 4]
        # At most 2 NewStream within any 0.2 s: the 3rd comes a window after the 1st.
        for i in range(len(arrivals) - 2):
            assert arrivals[i + 2] - arrivals[i] >= window * 0.75
        assert arrivals[1] - start < window  # the first burst is not delayed


# ---------------------------------------------------------------- ending


async def test_connection_aclose_resets_streams_on_both_sides() -> None:
    async with mplex_pair() as (a, b):
        out = await a.open_stream()
        await out.send(b"x")
        with anyio.fail_after(5):
            inbound = await b.accept_stream()
        await a.aclose()
        await a.aclose()  # idempotent
        assert a.is_closed
        assert a.close_reason is None
        with pytest.raises(StreamReset):
            await out.send(b"y")
        with pytest.raises(StreamReset), anyio.fail_after(5):
            while True:
                await inbound.receive()
        with pytest.raises(ConnectionClosedError), anyio.fail_after(5):
            await b.accept_stream()
        assert b.is_closed
        assert b.close_reason is None  # the peer closed cleanly
        with pytest.raises(ConnectionClosedError):
            await a.open_stream()


async def test_peer_eof_keeps_completed_streams_readable() -> None:
    async with raw_pair() as (conn, peer):
        await peer.send(H("00 01 30") + H("02 03 61 62 63") + H("04 00") + H("08 01 31"))
        with anyio.fail_after(5):
            done = await conn.accept_stream()
            pending = await conn.accept_stream()
        await peer.conn.aclose()
        with pytest.raises(StreamReset), anyio.fail_after(5):
            await pending.receive()
        assert await read_all(done) == b"abc"  # complete before the connection ended
        with pytest.raises(StreamReset):
            await done.send(b"x")
        assert conn.close_reason is None


async def test_run_returns_on_peer_eof_and_twice_is_an_error() -> None:
    a, b = memory_connection_pair()
    conn = MplexConnection(a, is_initiator=False)
    await b.aclose()
    with anyio.fail_after(5):
        await conn.run()
    assert conn.is_closed
    with pytest.raises(LocalProtocolError):
        await conn.run()


async def test_write_timeout_ends_connection() -> None:
    config = attrs.evolve(UNPACED, write_timeout=0.1)
    async with raw_pair(config, max_chunks=1) as (conn, _peer):
        stream = await conn.open_stream()
        with pytest.raises(StreamReset), anyio.fail_after(5):
            while True:  # the peer never reads: the pipe fills, then a write times out
                await stream.send(b"x" * 1000)
        assert isinstance(conn.close_reason, P2PTimeoutError)


async def test_idle_timeout_ends_connection() -> None:
    config = attrs.evolve(UNPACED, idle_timeout=0.1)
    a, _b = memory_connection_pair()
    conn = MplexConnection(a, is_initiator=True, config=config)
    with anyio.fail_after(5):
        await conn.run()
    assert isinstance(conn.close_reason, P2PTimeoutError)


def test_traffic_keeps_idle_connection_alive_and_silence_ends_it() -> None:
    config = attrs.evolve(UNPACED, idle_timeout=30.0)

    async def main() -> float:
        async with raw_pair(config) as (conn, peer):
            await peer.send(H("00 01 30"))
            with anyio.fail_after(5):
                stream = await conn.accept_stream()
            for _ in range(12):  # three minutes of traffic every 15 s
                await peer.send(H("02 01 61"))
                with anyio.fail_after(5):
                    assert await stream.receive() == b"a"
                await anyio.sleep(15)
            assert not conn.is_closed
            with anyio.fail_after(60), pytest.raises(StreamReset):
                await stream.receive()  # silence since t = 165 s: closed at 195 s
            assert isinstance(conn.close_reason, P2PTimeoutError)
            return anyio.current_time()

    assert run_virtual(main) == 195.0


async def test_slow_reader_pauses_the_connection_instead_of_losing_the_stream() -> None:
    # Above the backpressure threshold the reader stops reading the connection: the sender is
    # held back by the transport, and the stream survives once its reader catches up.
    config = attrs.evolve(UNPACED, backpressure_threshold=16, max_stream_buffer=1024)
    async with raw_pair(config) as (conn, peer):
        await peer.send(H("00 01 30") + H("08 01 31"))
        with anyio.fail_after(5):
            slow = await conn.accept_stream()
            other = await conn.accept_stream()
        await peer.send((H("02 10") + b"a" * 16) * 3)  # 48 bytes: over the threshold
        await peer.send(H("0a 03") + b"xyz")
        with anyio.move_on_after(0.3) as waited:
            await other.receive()
        assert waited.cancelled_caught, "the connection kept reading past the threshold"
        received = b""
        with anyio.fail_after(5):
            while len(received) < 48:
                received += await slow.receive()
            assert await other.receive() == b"xyz"
        assert received == b"a" * 48
        assert not conn.is_closed


async def test_stream_congested_past_the_timeout_is_reset() -> None:
    config = attrs.evolve(
        UNPACED, backpressure_threshold=16, max_stream_buffer=1024, backpressure_timeout=0.2
    )
    async with raw_pair(config) as (conn, peer):
        await peer.send(H("00 01 30") + H("08 01 31"))
        with anyio.fail_after(5):
            slow = await conn.accept_stream()
            other = await conn.accept_stream()
        await peer.send(H("02 10") + b"a" * 16 + H("0a 03") + b"bcd")
        with anyio.fail_after(5):
            assert await peer.frame() == Frame(0, Flag.RESET_RECEIVER, b"")
            assert await other.receive() == b"bcd"
        with pytest.raises(StreamReset, match="backpressure"):
            while True:
                await slow.receive()
        assert not conn.is_closed


async def test_send_takes_buffers_and_copies_mutable_ones() -> None:
    async with mplex_pair() as (a, b):
        stream = await a.open_stream()
        buffer = bytearray(b"abc")
        await stream.send(buffer)
        buffer[:] = b"xyz"  # the caller may reuse its buffer once send returned
        await stream.send(memoryview(b"0123")[1:3])
        await stream.send_eof()
        with anyio.fail_after(5):
            peer = await b.accept_stream()
            got = b""
            with contextlib.suppress(anyio.EndOfStream):
                while True:
                    got += await peer.receive()
        assert got == b"abc12"
