"""A minimal p2pd control client for the daemon's tests: varint-prefixed protobufs over a unix
socket, one reader that keeps what follows a message for the next read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio
import anyio.abc
from google.protobuf.message import Message

from p2pstack.framing import encode_lp
from p2pstack.p2pd.pb import p2pd_pb2 as pb
from p2pstack.varint import IncompleteVarint, decode_uvarint

M = TypeVar("M", bound=Message)


class Control:
    """One control connection."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def send(self, message: Message) -> None:
        await self.stream.send(encode_lp(message.SerializeToString()))

    async def read(self, kind: type[M]) -> M:
        with anyio.fail_after(30):
            while True:
                try:
                    length, start = decode_uvarint(self.buffer)
                    if len(self.buffer) >= start + length:
                        body = bytes(self.buffer[start : start + length])
                        del self.buffer[: start + length]
                        message = kind()
                        message.ParseFromString(body)
                        return message
                except IncompleteVarint:
                    pass
                self.buffer += await self.stream.receive()

    async def read_raw(self, size: int) -> bytes:
        with anyio.fail_after(30):
            while len(self.buffer) < size:
                self.buffer += await self.stream.receive()
            out = bytes(self.buffer[:size])
            del self.buffer[:size]
            return out

    async def request(self, request: pb.Request) -> pb.Response:
        await self.send(request)
        return await self.read(pb.Response)


@asynccontextmanager
async def control(path: str) -> AsyncIterator[Control]:
    stream = await anyio.connect_unix(path)
    async with stream:
        yield Control(stream)


async def ask(path: str, request: pb.Request) -> pb.Response:
    """One request on its own connection (as js's client does)."""
    async with control(path) as conn:
        return await conn.request(request)
