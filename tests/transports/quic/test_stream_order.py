"""Streams whose first frames arrive out of order: opening stream N implicitly opens the
peer's lower-numbered streams (RFC 9000 section 3.2), whose data may come later; js-libp2p
(quinn) does this when it opens many streams at once."""

from __future__ import annotations

import contextlib

import anyio
import pytest

from p2pstack.errors import StreamReset
from tests.transports.quic.conftest import connected_pair

pytestmark = pytest.mark.anyio


async def test_lower_stream_first_seen_after_a_higher_one() -> None:
    async with connected_pair() as (dialed, accepted, _):
        first = await dialed.muxed.open_stream()
        second = await dialed.muxed.open_stream()
        third = await dialed.muxed.open_stream()
        with anyio.fail_after(10):
            await third.send(b"third")
            inbound = await accepted.muxed.accept_stream()
            assert await inbound.receive() == b"third"
            await first.send(b"first")
            await second.send(b"second")
            got = set()
            for _ in range(2):
                stream = await accepted.muxed.accept_stream()
                got.add(await stream.receive())
        assert got == {b"first", b"second"}


async def test_a_forgotten_stream_is_not_reopened() -> None:
    async with connected_pair() as (dialed, accepted, _):
        out = await dialed.muxed.open_stream()
        with anyio.fail_after(10):
            await out.send(b"once")
            inbound = await accepted.muxed.accept_stream()
            assert await inbound.receive() == b"once"
            await inbound.reset()
            with contextlib.suppress(StreamReset):  # in flight before the peer's STOP_SENDING
                await out.send(b"late")
            check = await dialed.muxed.open_stream()
            await check.send(b"next")
            nxt = await accepted.muxed.accept_stream()
            assert await nxt.receive() == b"next"
