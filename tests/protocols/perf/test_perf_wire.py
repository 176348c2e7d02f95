"""Perf request codec, server read phase and client/server byte counts over in-memory streams."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pstack.errors import P2PTimeoutError, RemoteProtocolError
from p2pstack.streams import memory_connection_pair
from protocols.perf import (
    PROTOCOL_ID,
    PerfRefused,
    RequestReader,
    encode_request,
    run_perf_client,
    serve_perf,
)


def test_protocol_id() -> None:
    assert PROTOCOL_ID == "/perf/1.0.0"


def test_request_is_u64_big_endian() -> None:
    assert encode_request(0) == b"\x00" * 8
    assert encode_request(1) == b"\x00\x00\x00\x00\x00\x00\x00\x01"
    assert encode_request(0x0102030405060708) == bytes.fromhex("0102030405060708")
    assert encode_request(2**64 - 1) == b"\xff" * 8
    with pytest.raises(ValueError):
        encode_request(2**64)
    with pytest.raises(ValueError):
        encode_request(-1)


@given(st.integers(0, 2**64 - 1), st.binary(max_size=64), st.data())
def test_reader_any_split(size: int, upload: bytes, data: st.DataObject) -> None:
    wire = encode_request(size) + upload
    reader = RequestReader()
    pos = 0
    while pos < len(wire):
        step = data.draw(st.integers(1, len(wire) - pos))
        reader.feed(wire[pos : pos + step])
        pos += step
    assert reader.finish() == size
    assert reader.uploaded == len(upload)


@given(st.binary(max_size=7))
def test_reader_truncated_request(head: bytes) -> None:
    reader = RequestReader()
    reader.feed(head)
    with pytest.raises(RemoteProtocolError):
        reader.finish()


async def _exchange(upload: int, download: int, chunk: int) -> tuple[tuple[int, int], float, float]:
    client, server = memory_connection_pair()
    served: list[tuple[int, int]] = []

    async def run_server() -> None:
        served.append(await serve_perf(server, buffer=bytes(chunk), idle_timeout=5))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_server)
        with anyio.fail_after(10):
            up, down = await run_perf_client(
                client, upload_bytes=upload, download_bytes=download, buffer=bytes(chunk)
            )
    return served[0], up, down


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("upload", "download", "chunk"),
    [(0, 0, 1024), (1, 0, 1024), (0, 1, 1024), (100_000, 250_000, 4096), (65536, 65536, 65536)],
)
async def test_byte_counts(upload: int, download: int, chunk: int) -> None:
    served, up, down = await _exchange(upload, download, chunk)
    assert served == (upload, download)
    assert up >= 0
    assert down >= 0


@pytest.mark.anyio
async def test_short_download_is_detected() -> None:
    client, server = memory_connection_pair()

    async def cheating_server() -> None:
        reader = RequestReader()
        with pytest.raises(anyio.EndOfStream):
            while True:
                reader.feed(await server.receive(reader.missing or 1024))
        await server.send(bytes(reader.finish() - 1))
        await server.send_eof()

    async with anyio.create_task_group() as tg:
        tg.start_soon(cheating_server)
        with anyio.fail_after(5), pytest.raises(RemoteProtocolError, match="99 of 100"):
            await run_perf_client(client, upload_bytes=10, download_bytes=100)


@pytest.mark.anyio
async def test_long_download_is_detected() -> None:
    client, server = memory_connection_pair()

    async def cheating_server() -> None:
        reader = RequestReader()
        with pytest.raises(anyio.EndOfStream):
            while True:
                reader.feed(await server.receive(reader.missing or 1024))
        await server.send(bytes(reader.finish() + 1))
        await server.send_eof()

    async with anyio.create_task_group() as tg:
        tg.start_soon(cheating_server)
        with anyio.fail_after(5), pytest.raises(RemoteProtocolError, match="more than"):
            await run_perf_client(client, upload_bytes=0, download_bytes=100)


@pytest.mark.anyio
async def test_server_refuses_oversized_request() -> None:
    client, server = memory_connection_pair()
    await client.send(encode_request(1001))
    await client.send_eof()
    with anyio.fail_after(5), pytest.raises(PerfRefused, match="cap") as e:
        await serve_perf(server, max_download_bytes=1000)
    assert e.value.reason == "size"
    with anyio.fail_after(5), pytest.raises(anyio.EndOfStream):
        await client.receive()  # the refusal: an end of stream with no data


@pytest.mark.anyio
async def test_server_truncated_request() -> None:
    client, server = memory_connection_pair()
    await client.send(b"\x00\x01")
    await client.send_eof()
    with anyio.fail_after(5), pytest.raises(RemoteProtocolError):
        await serve_perf(server)


@pytest.mark.anyio
async def test_server_idle_timeout() -> None:
    client, server = memory_connection_pair()
    await client.send(encode_request(5))
    with anyio.fail_after(5), pytest.raises(P2PTimeoutError):
        await serve_perf(server, idle_timeout=0.05)


@pytest.mark.anyio
async def test_server_refuses_long_upload_and_client_stops() -> None:
    client, server = memory_connection_pair()
    refused: list[PerfRefused] = []

    async def run_server() -> None:
        with pytest.raises(PerfRefused) as e:
            await serve_perf(server, buffer=bytes(1024), max_upload_bytes=10_000)
        refused.append(e.value)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_server)
        with anyio.fail_after(5), pytest.raises(PerfRefused, match="over the server's cap") as e:
            await run_perf_client(
                client, upload_bytes=1 << 40, download_bytes=0, buffer=bytes(1024)
            )
    assert e.value.reason == "size"
    assert refused[0].reason == "size"


@pytest.mark.anyio
async def test_empty_reply_to_a_download_request_is_a_size_refusal() -> None:
    client, server = memory_connection_pair()

    async def refusing_server() -> None:
        await server.receive(8)
        await server.send_eof()

    async with anyio.create_task_group() as tg:
        tg.start_soon(refusing_server)
        with anyio.fail_after(5), pytest.raises(PerfRefused, match="over the server's cap"):
            await run_perf_client(client, upload_bytes=0, download_bytes=5)
