"""Streams to a protocol the peer announced are negotiated optimistically: the proposal goes
out with the first data, a refusal surfaces on the first read."""

from __future__ import annotations

import anyio
import pytest

from p2pstack.errors import ProtocolNotSupported
from p2pstack.host import Host, Stream
from tests.p2pstack.hosts import ECHO, echo_once, memory_hosts

pytestmark = pytest.mark.anyio

GREETER = "/test/greeter/1.0.0"
MISSING = "/test/missing/1.0.0"


async def _connected(a: Host, b: Host, announced: list[str]) -> None:
    await a.connect(b.addrs[0])
    a.set_peer_protocols(b.peer_id, announced)


@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
async def test_echo_on_an_optimistic_stream(muxer: str) -> None:
    async with memory_hosts(2, muxer=muxer) as (a, b):
        with anyio.fail_after(10):
            await _connected(a, b, [ECHO])
            payload = bytes(range(256)) * 600  # several muxer frames
            for _ in range(3):
                async with await a.new_stream(b.peer_id, ECHO) as stream:
                    assert stream.protocol == ECHO
                    assert await echo_once(stream, payload) == payload
            # One write larger than what goes before the confirmation, and more writes
            # while the reader waits for it.
            async with await a.new_stream(b.peer_id, ECHO) as stream:
                big = bytes(range(256)) * 1024
                async with anyio.create_task_group() as tg:
                    tg.start_soon(stream.send, big)
                    received = b""
                    while len(received) < len(big):
                        received += await stream.receive()
                    await stream.send(b"!")
                    assert await stream.receive() == b"!"
                assert received == big
            assert a.connections(b.peer_id)[0].streams == []


async def test_refusal_surfaces_on_first_read() -> None:
    async with memory_hosts(2) as (a, b):
        with anyio.fail_after(10):
            await _connected(a, b, [MISSING])  # announced, yet not served
            # Opening does not wait for the listener, so it cannot fail yet.
            stream = await a.new_stream(b.peer_id, MISSING)
            await stream.send(b"\x28" + bytes(40))
            with pytest.raises(ProtocolNotSupported) as info:
                await stream.receive()
            assert info.value.protocols == (MISSING,)
            conn = a.connections(b.peer_id)[0]
            assert conn.streams == []  # reset and released
            await stream.aclose()
            async with await a.new_stream(b.peer_id, ECHO) as echo:  # the connection lives on
                assert await echo_once(echo, b"still here") == b"still here"


async def test_unannounced_protocol_is_refused_at_open() -> None:
    async with memory_hosts(2) as (a, b):
        with anyio.fail_after(10):
            await _connected(a, b, [ECHO])
            with pytest.raises(ProtocolNotSupported):
                await a.new_stream(b.peer_id, MISSING)


async def test_reader_first_and_eof_first() -> None:
    async def greet(stream: Stream) -> None:
        await stream.send(b"hello")
        rest = b""
        while True:
            try:
                rest += await stream.receive()
            except anyio.EndOfStream:
                break
        await stream.send(b"got " + rest)

    async with memory_hosts(2) as (a, b):
        b.set_stream_handler(GREETER, greet)
        with anyio.fail_after(10):
            await _connected(a, b, [GREETER])
            # The listener speaks first: the first read sends the proposal before waiting.
            async with await a.new_stream(b.peer_id, GREETER) as stream:
                assert await stream.receive(5) == b"hello"
                await stream.send_eof()
                assert await stream.receive() == b"got "
            # A half-close before any data still carries the proposal.
            async with await a.new_stream(b.peer_id, GREETER) as stream:
                await stream.send_eof()
                received = b""
                while len(received) < len(b"hellogot "):
                    received += await stream.receive()
                assert received == b"hellogot "


async def test_write_only_exchange_learns_refusal_at_half_close() -> None:
    """A stream that only writes (a notification) still learns of a refusal: ``send_eof``
    waits for the listener's answer, as an eager open would have."""
    async with memory_hosts(2) as (a, b):
        with anyio.fail_after(10):
            await _connected(a, b, [MISSING])
            stream = await a.new_stream(b.peer_id, MISSING)
            await stream.send(b"\x04note")  # one length-prefixed message
            with pytest.raises(ProtocolNotSupported):
                await stream.send_eof()
            assert a.connections(b.peer_id)[0].streams == []


async def test_close_returns_after_the_listener_took_the_data() -> None:
    """Write, half-close, close, then close the host at once: the listener still gets it all
    (a close of an optimistic stream waits for the listener's answer)."""
    got: list[bytes] = []
    done = anyio.Event()

    async def sink(stream: Stream) -> None:
        data = b""
        with anyio.fail_after(5):
            while True:
                try:
                    data += await stream.receive()
                except anyio.EndOfStream:
                    break
        got.append(data)
        done.set()

    async with memory_hosts(2) as (a, b):
        b.set_stream_handler(GREETER, sink)
        with anyio.fail_after(10):
            await _connected(a, b, [GREETER])
            async with await a.new_stream(b.peer_id, GREETER) as stream:
                await stream.send(b"hello")
                await stream.send_eof()
            await a.connections(b.peer_id)[0].aclose()
            await done.wait()
    assert got == [b"hello"]
