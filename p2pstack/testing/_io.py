"""Reading helpers shared by the conformance suites: they fail loudly (``AssertionError``) on a
stream that breaks the ``ByteStream`` contract instead of hanging or returning short."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from p2pstack.interfaces import ByteStream

__all__ = ["read_all", "receive_exactly"]


async def read_all(stream: ByteStream, limit: int) -> bytes:
    """Read until end of stream; fail if more than ``limit`` bytes arrive or ``b""`` is seen."""
    chunks = bytearray()
    while True:
        try:
            chunk = await stream.receive()
        except anyio.EndOfStream:
            return bytes(chunks)
        if not chunk:
            raise AssertionError("receive() returned b'' instead of raising EndOfStream")
        chunks += chunk
        if len(chunks) > limit:
            raise AssertionError(f"received more than the {limit} bytes that were sent")


async def receive_exactly(stream: ByteStream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await stream.receive(size - len(data))
        if not chunk or len(chunk) > size - len(data):
            raise AssertionError(f"receive({size - len(data)}) returned {len(chunk)} bytes")
        data += chunk
    return bytes(data)
