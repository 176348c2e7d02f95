"""Tests for the anyio multistream-select driver over in-memory connections."""

from __future__ import annotations

import math
import time

import anyio
import pytest

from p2pstack.errors import (
    NegotiationError,
    P2PTimeoutError,
    ProtocolNotSupported,
    RemoteProtocolError,
)
from p2pstack.multistream import (
    LazyOutbound,
    encode_message,
    negotiate_inbound,
    negotiate_outbound,
)
from p2pstack.streams import MemoryConnection, memory_connection_pair

HEADER = b"\x13/multistream/1.0.0\n"


async def _read(conn: MemoryConnection, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        buf += await conn.receive()
    return buf


async def _both(
    dialer_protocols: list[str], supports: object, *, payload: bytes = b""
) -> tuple[tuple[str, bytes], tuple[str, bytes]]:
    a, b = memory_connection_pair()
    results: dict[str, tuple[str, bytes]] = {}

    async def inbound() -> None:
        results["in"] = await negotiate_inbound(b, supports)  # type: ignore[arg-type]  # varied

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(inbound)
            results["out"] = await negotiate_outbound(a, dialer_protocols)
            if payload:
                await a.send(payload)
    return results["out"], results["in"]


@pytest.mark.anyio
async def test_negotiates_second_choice() -> None:
    out, inn = await _both(["/tls/1.0.0", "/noise"], {"/noise", "/plaintext/2.0.0"})
    assert out == ("/noise", b"")
    assert inn == ("/noise", b"")


@pytest.mark.anyio
@pytest.mark.parametrize("supports", ["/noise", ["/noise"], {"/noise": 1}, "/noise".__eq__])
async def test_supports_forms(supports: object) -> None:
    out, inn = await _both(["/noise"], supports)
    assert out[0] == inn[0] == "/noise"


@pytest.mark.anyio
async def test_all_refused() -> None:
    a, b = memory_connection_pair()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(negotiate_inbound, b, {"/other"})
            with pytest.raises(ProtocolNotSupported):
                await negotiate_outbound(a, ["/x", "/y"])
            tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_listener_gets_optimistic_data_as_leftover() -> None:
    a, b = memory_connection_pair()
    # A lazy dialer: header, proposal and protocol data in one write, without waiting.
    await a.send(HEADER + encode_message("/echo/1.0.0") + b"early data")
    with anyio.fail_after(5):
        proto, leftover = await negotiate_inbound(b, ["/echo/1.0.0"])
    assert proto == "/echo/1.0.0"
    assert leftover == b"early data"
    expected = HEADER + encode_message("/echo/1.0.0")
    assert await _read(a, len(expected)) == expected


@pytest.mark.anyio
async def test_dialer_gets_server_data_as_leftover() -> None:
    a, b = memory_connection_pair()
    await b.send(HEADER + encode_message("/srv") + b"greeting")
    with anyio.fail_after(5):
        assert await negotiate_outbound(a, ["/srv"]) == ("/srv", b"greeting")
    # Header and proposal went out in one write.
    assert await b.receive() == HEADER + encode_message("/srv")


async def _silent_peer_times_out(conn: MemoryConnection, outbound: bool) -> None:
    start = time.monotonic()
    with anyio.fail_after(5), pytest.raises(P2PTimeoutError, match="timed out"):
        if outbound:
            await negotiate_outbound(conn, ["/a"], timeout=0.2)
        else:
            await negotiate_inbound(conn, ["/a"], timeout=0.2)
    assert time.monotonic() - start < 2


@pytest.mark.anyio
@pytest.mark.parametrize("outbound", [True, False])
async def test_silent_peer_times_out(outbound: bool) -> None:
    a, _b = memory_connection_pair()
    await _silent_peer_times_out(a, outbound)


@pytest.mark.anyio
@pytest.mark.parametrize("outbound", [True, False])
async def test_end_of_stream_is_negotiation_error(outbound: bool) -> None:
    a, b = memory_connection_pair()
    await b.send_eof()
    with anyio.fail_after(5), pytest.raises(NegotiationError, match="ended"):
        if outbound:
            await negotiate_outbound(a, ["/a"])
        else:
            await negotiate_inbound(a, ["/a"])


@pytest.mark.anyio
async def test_garbage_is_remote_protocol_error_and_stream_left_open() -> None:
    a, b = memory_connection_pair()
    await b.send(HEADER + b"\x00")
    with anyio.fail_after(5), pytest.raises(RemoteProtocolError):
        await negotiate_outbound(a, ["/a"], timeout=math.inf)
    # The caller owns the stream: it is still usable after the failure.
    sent = HEADER + encode_message("/a")
    assert await _read(b, len(sent)) == sent
    await a.send(b"still open")
    assert await b.receive() == b"still open"


@pytest.mark.anyio
async def test_lazy_outbound_sends_data_with_the_proposal() -> None:
    a, b = memory_connection_pair()
    lazy = LazyOutbound("/kad/1.0.0")
    assert lazy.proposal == HEADER + encode_message("/kad/1.0.0")
    with anyio.fail_after(5):
        # One write, before anything was read: the listener finds the request as leftover.
        await a.send(lazy.proposal + b"request")
        proto, leftover = await negotiate_inbound(b, {"/kad/1.0.0"})
        assert (proto, leftover) == ("/kad/1.0.0", b"request")
        await b.send(b"answer")
        # The answer follows the echo, in the same read or a later one.
        leftover = await lazy.finish(a)
        assert leftover + (b"" if leftover else await a.receive()) == b"answer"


@pytest.mark.anyio
async def test_lazy_outbound_refused_with_data_after_the_proposal() -> None:
    a, b = memory_connection_pair()
    lazy = LazyOutbound("/kad/1.0.0")
    # A FIND_NODE-like request: the listener takes it for a proposal and finds no newline.
    await a.send(lazy.proposal + b"\x28" + bytes(40))
    with anyio.fail_after(5):
        with pytest.raises(RemoteProtocolError):
            await negotiate_inbound(b, {"/other/1.0.0"})
        # The refusal was written before the listener gave up on the stream.
        with pytest.raises(ProtocolNotSupported) as info:
            await lazy.finish(a)
    assert info.value.protocols == ("/kad/1.0.0",)


@pytest.mark.anyio
async def test_lazy_outbound_finish_times_out() -> None:
    a, _b = memory_connection_pair()
    lazy = LazyOutbound("/kad/1.0.0", timeout=0.05)
    await a.send(lazy.proposal)
    with anyio.fail_after(5), pytest.raises(P2PTimeoutError):
        await lazy.finish(a)
