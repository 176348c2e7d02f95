"""QUIC streams as muxed streams: bulk echo, many concurrent streams, flow-control bounds,
resets, idle timeout and keep-alive."""

from __future__ import annotations

import hashlib
import os

import anyio
import pytest

from p2pstack.errors import ConnectionClosedError, StreamReset
from p2pstack.interfaces import MuxedStream
from tests.transports.quic.conftest import connected_pair
from transports.quic import QuicConfig, QuicMuxedConnection

pytestmark = pytest.mark.anyio

CHUNK = 64 * 1024


async def _echo(stream: MuxedStream) -> None:
    while True:
        try:
            data = await stream.receive(CHUNK)
        except anyio.EndOfStream:
            await stream.send_eof()
            return
        await stream.send(data)


async def _echo_through(stream: MuxedStream, size: int) -> None:
    """Send ``size`` pseudo-random bytes and check the echo by digest."""
    block = os.urandom(min(size, CHUNK))
    sent, received = hashlib.sha256(), hashlib.sha256()

    async def write() -> None:
        for _ in range(size // len(block)):
            sent.update(block)
            await stream.send(block)
        await stream.send_eof()

    total = 0
    async with anyio.create_task_group() as tg:
        tg.start_soon(write)
        while True:
            try:
                data = await stream.receive(CHUNK)
            except anyio.EndOfStream:
                break
            received.update(data)
            total += len(data)
    assert total == size
    assert received.digest() == sent.digest()


async def _serve_echo(accepted: QuicMuxedConnection, tg: anyio.abc.TaskGroup) -> None:
    while True:
        try:
            stream = await accepted.accept_stream()
        except ConnectionClosedError:
            return
        tg.start_soon(_echo, stream)


async def _echo_test(size: int, limit: float) -> None:
    async with connected_pair() as (dialed, accepted, _):
        assert isinstance(accepted.muxed, QuicMuxedConnection)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_serve_echo, accepted.muxed, tg)
            with anyio.fail_after(limit):
                await _echo_through(await dialed.muxed.open_stream(), size)
            tg.cancel_scope.cancel()


async def test_echo_4_mib() -> None:
    await _echo_test(4 * 1024 * 1024, 60)


@pytest.mark.slow
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_echo_64_mib() -> None:
    await _echo_test(64 * 1024 * 1024, 300)


async def test_100_concurrent_streams() -> None:
    async with connected_pair() as (dialed, accepted, _):
        assert isinstance(accepted.muxed, QuicMuxedConnection)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_serve_echo, accepted.muxed, tg)
            with anyio.fail_after(60):
                async with anyio.create_task_group() as clients:
                    for _ in range(100):
                        stream = await dialed.muxed.open_stream()
                        clients.start_soon(_echo_through, stream, 16 * 1024)
            tg.cancel_scope.cancel()


async def test_unread_stream_is_bounded_by_its_window() -> None:
    window = 64 * 1024
    config = QuicConfig(stream_window=window, send_buffer=window)
    async with connected_pair(config=config) as (dialed, accepted, _):
        out = await dialed.muxed.open_stream()
        await out.send(b"x")
        with anyio.fail_after(10):
            inc = await accepted.muxed.accept_stream()
        sent = 1
        block = b"y" * 16384
        with anyio.move_on_after(1.0):
            while True:
                await out.send(block)
                sent += len(block)
        # The peer's window plus our own send buffer (and one send past it) at most.
        assert sent <= 2 * window + 2 * len(block)
        got = 0
        with anyio.fail_after(20):
            await out.send_eof()
            while True:
                try:
                    got += len(await inc.receive())
                except anyio.EndOfStream:
                    break
        assert got == sent


async def test_reset_reaches_the_peer() -> None:
    async with connected_pair() as (dialed, accepted, _):
        out = await dialed.muxed.open_stream()
        await out.send(b"hello")
        with anyio.fail_after(10):
            inc = await accepted.muxed.accept_stream()
            assert await inc.receive() == b"hello"
            await out.reset()
            with pytest.raises(StreamReset):
                while True:
                    await inc.receive()
            with pytest.raises(StreamReset):
                for _ in range(100):
                    await inc.send(b"z" * 1024)
                    await anyio.sleep(0.01)


async def test_close_then_peer_reads_reply() -> None:
    # A request/response where the responder closes without reading the requester's FIN.
    async with connected_pair() as (dialed, accepted, _):
        out = await dialed.muxed.open_stream()
        await out.send(b"request")
        with anyio.fail_after(10):
            inc = await accepted.muxed.accept_stream()
            assert await inc.receive() == b"request"
            await inc.send(b"response")
            await inc.aclose()
            assert await out.receive() == b"response"
            with pytest.raises(anyio.EndOfStream):
                await out.receive()


async def test_idle_timeout_closes() -> None:
    config = QuicConfig(idle_timeout=0.5, keep_alive=None)
    async with connected_pair(config=config) as (dialed, accepted, _):
        with anyio.fail_after(10):
            for conn in (dialed.muxed, accepted.muxed):
                with pytest.raises(ConnectionClosedError):
                    await conn.accept_stream()  # returns only when the connection has ended
        assert isinstance(dialed.muxed.close_reason, ConnectionClosedError)
        with pytest.raises(ConnectionClosedError):
            await dialed.muxed.open_stream()


async def test_keep_alive_keeps_an_idle_connection() -> None:
    config = QuicConfig(idle_timeout=0.6, keep_alive=0.2)
    async with connected_pair(config=config) as (dialed, accepted, _):
        await anyio.sleep(2.0)
        assert not dialed.muxed.is_closed
        assert not accepted.muxed.is_closed


async def test_data_written_before_close_arrives() -> None:
    payload = os.urandom(512 * 1024)
    async with connected_pair() as (dialed, accepted, _):
        out = await dialed.muxed.open_stream()
        await out.send(payload)
        await out.send_eof()
        with anyio.fail_after(20):
            await dialed.muxed.aclose()  # lingers until the peer acknowledged everything
            inc = await accepted.muxed.accept_stream()
            with pytest.raises(ConnectionClosedError):
                await accepted.muxed.accept_stream()  # the peer's CONNECTION_CLOSE arrived
            got = bytearray()
            while True:
                try:
                    got += await inc.receive()
                except anyio.EndOfStream:
                    break
        assert got == payload
