"""A rendezvous client facing a lying or broken point: forged records are skipped, garbage and
wrong answers raise typed errors, nothing reaches the host."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import pytest

from p2pstack.errors import RemoteProtocolError
from p2pstack.framing import read_lp, write_lp
from p2pstack.host import Stream
from p2pstack.identity import Identity
from protocols.discovery.rendezvous import (
    PROTOCOL_ID,
    DiscoverResponse,
    Register,
    RegisterResponse,
    Rendezvous,
    Status,
    encode_message,
)
from tests.protocols.discovery.rendezvous.records import ADDR, signed_record
from tests.protocols.discovery.rendezvous.test_rendezvous_service import hosts

HONEST, OTHER = Identity.generate(), Identity.generate()


def answering(payload: bytes) -> Callable[[Stream], Awaitable[None]]:
    async def handler(stream: Stream) -> None:
        await read_lp(stream, max_size=1 << 16)
        await write_lp(stream, payload)
        await stream.aclose()

    return handler


def forged() -> bytes:
    data = bytearray(signed_record(OTHER))
    data[-1] ^= 1
    return bytes(data)


@pytest.mark.anyio
async def test_forged_and_garbage_records_are_skipped() -> None:
    registrations = (
        Register(ns="app", record=signed_record(HONEST), ttl=100),
        Register(ns="app", record=forged(), ttl=100),
        Register(ns="app", record=b"\x0a\x01junk", ttl=100),
    )
    answer = DiscoverResponse(status=Status.OK, registrations=registrations, cookie=b"c")
    async with hosts([]) as (p,):
        p.set_stream_handler(PROTOCOL_ID, answering(encode_message(answer)))
        client = Rendezvous([str(p.addrs[0])])
        async with hosts([client]):
            with anyio.fail_after(20):
                found, cookie = await client.discover("app")
    assert [(r.peer_id, r.addrs, r.ttl) for r in found] == [(HONEST.peer_id, (ADDR,), 100)]
    assert cookie == b"c"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "payload",
    [b"\xff\xff", encode_message(RegisterResponse(status=Status.OK)), b"\x08\x03"],
)
async def test_wrong_answers_are_remote_protocol_errors(payload: bytes) -> None:
    async with hosts([]) as (p,):
        p.set_stream_handler(PROTOCOL_ID, answering(payload))
        client = Rendezvous([str(p.addrs[0])])
        async with hosts([client]):
            with anyio.fail_after(20), pytest.raises(RemoteProtocolError):
                await client.discover("app")
