"""Ping payload framing and echo loops over in-memory streams."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pstack.errors import LocalProtocolError, P2PTimeoutError, RemoteProtocolError
from p2pstack.interfaces import Buffer
from p2pstack.streams import memory_connection_pair
from protocols.ping import (
    PAYLOAD_SIZE,
    PROTOCOL_ID,
    PayloadBuffer,
    check_echo,
    ping_round_trips,
    serve_ping,
)


def test_protocol_id() -> None:
    assert PROTOCOL_ID == "/ipfs/ping/1.0.0"
    assert PAYLOAD_SIZE == 32


def test_buffer_cuts_payloads() -> None:
    buf = PayloadBuffer()
    buf.feed(b"a" * 20)
    assert buf.pop_payloads() == []
    buf.feed(b"b" * 20)
    assert buf.pop_payloads() == [b"a" * 20 + b"b" * 12]
    assert buf.pending == 8
    with pytest.raises(RemoteProtocolError):
        buf.finish()


def test_buffer_refuses_overfill() -> None:
    buf = PayloadBuffer()
    with pytest.raises(LocalProtocolError):
        buf.feed(bytes(65))


@given(st.lists(st.binary(min_size=1, max_size=PAYLOAD_SIZE), max_size=40))
def test_buffer_reassembles_any_chunking(chunks: list[bytes]) -> None:
    buf = PayloadBuffer()
    out: list[bytes] = []
    for chunk in chunks:
        buf.feed(chunk)
        out += buf.pop_payloads()
    data = b"".join(chunks)
    whole = len(data) // PAYLOAD_SIZE * PAYLOAD_SIZE
    assert b"".join(out) == data[:whole]
    assert buf.pending == len(data) - whole


def test_check_echo() -> None:
    check_echo(b"x" * 32, b"x" * 32)
    with pytest.raises(RemoteProtocolError, match="mismatch"):
        check_echo(b"x" * 32, b"y" * 32)


@pytest.mark.anyio
async def test_one_stream_many_pings() -> None:
    client, server = memory_connection_pair()
    payloads = [bytes([i]) * 32 for i in range(5)]
    async with anyio.create_task_group() as tg:
        result: list[int] = []

        async def run_server() -> None:
            result.append(await serve_ping(server, idle_timeout=5))

        tg.start_soon(run_server)
        with anyio.fail_after(5):
            rtts = await ping_round_trips(client, payloads)
            await client.send_eof()
    assert len(rtts) == 5
    assert all(rtt >= 0 for rtt in rtts)
    assert result == [5]


@pytest.mark.anyio
async def test_js_style_single_ping_then_half_close() -> None:
    """js sends 32 bytes and half-closes at once; the echo must still come back."""
    client, server = memory_connection_pair()

    async def run_server() -> None:
        await serve_ping(server)
        await server.send_eof()  # what the host does when the handler returns

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_server)
        with anyio.fail_after(5):
            await client.send(b"\x07" * 32)
            await client.send_eof()
            echo = await client.receive()
            with pytest.raises(anyio.EndOfStream):
                while True:
                    echo += await client.receive()
    assert echo == b"\x07" * 32


@pytest.mark.anyio
async def test_payload_split_across_writes() -> None:
    client, server = memory_connection_pair()
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve_ping, server)
        with anyio.fail_after(5):
            await client.send(b"\x01" * 10)
            await client.send(b"\x01" * 22 + b"\x02" * 32)
            got = b""
            while len(got) < 64:
                got += await client.receive()
            await client.send_eof()
    assert got == b"\x01" * 32 + b"\x02" * 32


@pytest.mark.anyio
async def test_mismatched_echo_raises() -> None:
    client, server = memory_connection_pair()

    async def bad_server() -> None:
        data = await server.receive(32)
        await server.send(bytes(b ^ 0xFF for b in data))

    async with anyio.create_task_group() as tg:
        tg.start_soon(bad_server)
        with anyio.fail_after(5), pytest.raises(RemoteProtocolError, match="mismatch"):
            await ping_round_trips(client, [b"\x00" * 32])


@pytest.mark.anyio
async def test_server_closing_early_raises() -> None:
    client, server = memory_connection_pair()

    async def short_server() -> None:
        await server.receive(32)
        await server.send(b"\x00" * 5)
        await server.send_eof()

    async with anyio.create_task_group() as tg:
        tg.start_soon(short_server)
        with anyio.fail_after(5), pytest.raises(RemoteProtocolError, match="ended"):
            await ping_round_trips(client, [b"\x00" * 32])


@pytest.mark.anyio
async def test_truncated_payload_at_eof_is_a_protocol_error() -> None:
    client, server = memory_connection_pair()
    await client.send(b"\x00" * 31)
    await client.send_eof()
    with anyio.fail_after(5), pytest.raises(RemoteProtocolError):
        await serve_ping(server)


@pytest.mark.anyio
async def test_idle_timeout() -> None:
    _client, server = memory_connection_pair()
    with anyio.fail_after(5), pytest.raises(P2PTimeoutError):
        await serve_ping(server, idle_timeout=0.05)


@pytest.mark.anyio
async def test_round_trip_timeout() -> None:
    client, _server = memory_connection_pair()
    with anyio.fail_after(5), pytest.raises(P2PTimeoutError):
        await ping_round_trips(client, [b"\x00" * 32], timeout=0.05)


@pytest.mark.anyio
async def test_wrong_payload_size_refused() -> None:
    client, _server = memory_connection_pair()
    with pytest.raises(LocalProtocolError):
        await ping_round_trips(client, [b"short"])


class _EagerStream:
    """A stream whose data is all buffered: receive and send never wait (as a muxed stream
    behaves when its window holds many pipelined payloads)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.sent = bytearray()

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self._data:
            raise anyio.EndOfStream
        chunk, self._data = self._data[:max_bytes], self._data[max_bytes:]
        return chunk

    async def send(self, item: Buffer) -> None:
        self.sent += item

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


@pytest.mark.anyio
async def test_pipelined_payloads_are_echoed_in_batches_and_yield() -> None:
    payloads = b"".join(bytes([i % 256]) * PAYLOAD_SIZE for i in range(10_000))
    stream = _EagerStream(payloads)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        with anyio.fail_after(10):
            echoed = await serve_ping(stream)
        tg.cancel_scope.cancel()
    assert echoed == 10_000
    assert bytes(stream.sent) == payloads
    # Other tasks ran while 10,000 pipelined payloads were served (one batch at a time).
    assert ticks >= 10_000 // 64


def test_buffer_capacity() -> None:
    buf = PayloadBuffer(capacity=4 * PAYLOAD_SIZE)
    buf.feed(bytes(4 * PAYLOAD_SIZE))
    assert len(buf.pop_payloads()) == 4
    with pytest.raises(ValueError, match="at least"):
        PayloadBuffer(capacity=PAYLOAD_SIZE - 1)
