"""Attacks after a complete Noise handshake: yamux and mplex frames that break the spec, window
abuse, stream-ID abuse, 10,000 stream opens, GoAway storms, and control frames never read.

Expected outcomes: frames the spec forbids close the connection (yamux answers GoAway with
"protocol error" first); floods of legal frames are bounded by the muxer's limits (streams
beyond them are reset) and the connection may stay open; either way the node serves the honest
peer meanwhile and afterwards, and returns to its descriptor and memory baseline.
"""

from __future__ import annotations

import struct

import anyio
import pytest

from p2pstack.varint import encode_uvarint
from tests.adversarial.attack import close_all, outcome, secure_session
from tests.adversarial.conftest import Arena
from tests.adversarial.node import assert_healthy
from transports.mplex import Flag as MplexFlag
from transports.mplex import encode_header as mplex_header
from transports.yamux import INITIAL_WINDOW, GoAwayCode
from transports.yamux import Flag as YamuxFlag

pytestmark = pytest.mark.anyio

YAMUX = "/yamux/1.0.0"
MPLEX = "/mplex/6.7.0"
#: Seconds within which a spec violation must close the connection.
PROMPT = 2.0
#: Seconds a flood of legal frames may take to be absorbed (sent and answered or refused).
ABSORB = 10.0
#: Seconds the honest peer may need for a fresh connection, ping and identify during a flood.
#: Generous: tracemalloc slows the process about threefold, and CI machines are shared.
HONEST_DURING = 30.0

_YAMUX_HEADER = struct.Struct(">BBHII")
DATA, WINDOW_UPDATE, PING, GO_AWAY = 0, 1, 2, 3


def yamux(frame_type: int, flags: int, stream_id: int, length: int, *, version: int = 0) -> bytes:
    """A yamux header with any field values (the project's encoder refuses invalid ones)."""
    return _YAMUX_HEADER.pack(version, frame_type, flags, stream_id, length)


def syn(stream_id: int) -> bytes:
    return yamux(WINDOW_UPDATE, YamuxFlag.SYN, stream_id, 0)


def mplex(stream_id: int, flag: int, data: bytes = b"") -> bytes:
    return encode_uvarint(stream_id << 3 | flag) + encode_uvarint(len(data)) + data


#: name -> (bytes sent, expected outcome within PROMPT)
YAMUX_VIOLATIONS = {
    "yamux SYN reusing an open stream ID": syn(1) + syn(1),
    "yamux stream ID of the listener's parity": syn(2),
    "yamux data beyond the window": syn(1)
    + yamux(DATA, 0, 1, INITIAL_WINDOW + 1)
    + bytes(INITIAL_WINDOW + 1),
    "yamux unknown frame type": yamux(7, 0, 0, 0),
    "yamux unknown version": yamux(WINDOW_UPDATE, YamuxFlag.SYN, 1, 0, version=1),
}

MPLEX_VIOLATIONS = {
    "mplex NewStream reusing an open stream ID": mplex(1, MplexFlag.NEW_STREAM)
    + mplex(1, MplexFlag.NEW_STREAM),
    "mplex unknown flag 7": mplex(1, 7),
    "mplex message over the 1 MiB cap": mplex_header(1, MplexFlag.NEW_STREAM, 0)
    + encode_uvarint(1 << 3 | MplexFlag.MESSAGE_INITIATOR)
    + encode_uvarint(2 << 20)
    + bytes(64 * 1024),
    "mplex oversized varint header": b"\xff" * 11,
}


async def _attack(arena: Arena, muxer: str, name: str, payload: bytes, within: float) -> str:
    stream, _ = await secure_session(arena.port, muxer)
    try:
        with anyio.move_on_after(within):  # the node may close before reading it all
            await stream.send(payload)
        got = await outcome(stream, within=within)
    finally:
        await close_all([stream])
    arena.report.add(
        name,
        sent=f"{len(payload)} bytes",
        expected="closed",
        observed=got.result,
        seconds=round(got.seconds, 3),
    )
    return got.result


@pytest.mark.parametrize("name", sorted(YAMUX_VIOLATIONS))
async def test_yamux_violations_close_the_connection(name: str, arena: Arena) -> None:
    result = await _attack(arena, YAMUX, name, YAMUX_VIOLATIONS[name], PROMPT)
    assert result in ("closed", "reset")
    await arena.check()


@pytest.mark.parametrize("name", sorted(MPLEX_VIOLATIONS))
async def test_mplex_violations_close_the_connection(name: str, arena: Arena) -> None:
    result = await _attack(arena, MPLEX, name, MPLEX_VIOLATIONS[name], PROMPT)
    assert result in ("closed", "reset")
    await arena.check()


async def flood(arena: Arena, muxer: str, name: str, payload: bytes, expected: str) -> None:
    """Send a flood of legal frames, check the honest peer is served meanwhile, then close."""
    stream, _ = await secure_session(arena.port, muxer)
    started = anyio.current_time()
    got = None
    honest = 0.0
    try:
        async with anyio.create_task_group() as tg:

            async def send() -> None:
                with anyio.move_on_after(ABSORB):
                    await stream.send(payload)

            tg.start_soon(send)
            before = anyio.current_time()
            await assert_healthy(arena.node, arena.client, timeout=HONEST_DURING)
            honest = anyio.current_time() - before
            got = await outcome(stream, within=1.0)
    finally:
        await close_all([stream])
    assert got is not None
    arena.report.add(
        name,
        sent=f"{len(payload):,} bytes",
        expected=expected,
        observed=f"{got.result}; honest connect+ping+identify during it: {honest:.2f} s",
        seconds=round(anyio.current_time() - started, 3),
    )
    await arena.check()


async def test_yamux_window_update_to_the_maximum(arena: Arena) -> None:
    frames = syn(1) + yamux(WINDOW_UPDATE, 0, 1, 0xFFFFFFFF) * 2
    await flood(arena, YAMUX, "yamux window updates to 2^32-1", frames, "tolerated or closed")


async def test_yamux_ten_thousand_syns(arena: Arena) -> None:
    frames = b"".join(syn(2 * i + 1) for i in range(10_000))
    await flood(arena, YAMUX, "yamux 10,000 SYNs", frames, "streams over the limits reset")


async def test_yamux_go_away_storm(arena: Arena) -> None:
    frames = yamux(GO_AWAY, 0, 0, GoAwayCode.NORMAL) * 10_000
    await flood(arena, YAMUX, "yamux 10,000 GoAway frames", frames, "tolerated or closed")


async def test_mplex_ten_thousand_new_streams(arena: Arena) -> None:
    frames = b"".join(mplex(i, MplexFlag.NEW_STREAM) for i in range(10_000))
    await flood(arena, MPLEX, "mplex 10,000 NewStreams", frames, "streams over the limits reset")


async def test_mplex_frames_for_unknown_streams(arena: Arena) -> None:
    frames = b"".join(
        mplex(i, MplexFlag.MESSAGE_INITIATOR, b"x" * 16) + mplex(i, MplexFlag.CLOSE_INITIATOR)
        for i in range(10_000)
    )
    await flood(arena, MPLEX, "mplex 10,000 messages to unknown streams", frames, "ignored")
