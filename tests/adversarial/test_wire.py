"""Attacks before a connection is secured: resets, malformed multistream-select, broken and
forged Noise handshakes. Each states what the node must do (close or reset the connection, or
drop it in accept) and how fast; after each the node must still serve an honest peer and be
back to its descriptor and memory baseline."""

from __future__ import annotations

import os

import anyio
import pytest

from p2pstack.identity import Identity
from p2pstack.varint import encode_uvarint
from tests.adversarial.attack import (
    MULTISTREAM,
    close_all,
    encode_frame,
    ms_message,
    noise_secured,
    noise_session,
    outcome,
    raw_connect,
    read_frame,
    reset_connect,
    source_addresses,
)
from tests.adversarial.conftest import Arena
from tests.adversarial.node import NODE_CONFIG, assert_back_to_baseline, assert_healthy

pytestmark = pytest.mark.anyio

#: Seconds within which the node must close a connection that broke the protocol.
PROMPT = 2.0
#: Seconds within which a stalled upgrade must be closed: the upgrade timeout, plus slack.
STALLED = NODE_CONFIG.upgrade_timeout + 2.0

_HTTP = b"GET / HTTP/1.1\r\nHost: node\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"

RAW_ATTACKS = {
    # 'G' reads as a 71-byte message that does not end in a newline.
    "HTTP request instead of multistream": _HTTP,
    "garbage before the multistream header": b"\x05\x00\xff\xfe\x00\x01" + os.urandom(64),
    "garbage after the multistream header": ms_message(MULTISTREAM) + b"\x03\x00\x00\x00" * 64,
    "oversized varint (11 bytes of 0xff)": b"\xff" * 11 + b"\x01",
    "varint announcing 2^32 bytes": encode_uvarint(1 << 32) + b"a" * 1024,
    "64 KiB line without newline (length-prefixed)": encode_uvarint(65536) + b"a" * 65536,
    "64 KiB line without newline (no prefix)": b"a" * 65536,
    "unknown protocol, then a 64 KiB proposal": ms_message(MULTISTREAM)
    + ms_message("/nonexistent/1.0.0")
    + encode_uvarint(65536)
    + b"/" * 65536,
}


@pytest.mark.parametrize("name", sorted(RAW_ATTACKS))
async def test_malformed_multistream_is_closed(name: str, arena: Arena) -> None:
    payload = RAW_ATTACKS[name]
    conn = await raw_connect(arena.port)
    try:
        with anyio.move_on_after(PROMPT):  # the node may close before reading it all
            await conn.send(payload)
        got = await outcome(conn, within=PROMPT)
    finally:
        await close_all([conn])
    arena.report.add(
        name,
        sent=f"{len(payload)} bytes",
        expected="closed",
        observed=got.result,
        seconds=round(got.seconds, 3),
    )
    assert got.result in ("closed", "reset"), got
    await arena.check()


async def test_connect_and_reset_flood(arena: Arena) -> None:
    port = arena.port
    started = anyio.current_time()
    for source in source_addresses(20):
        for _ in range(10):
            await reset_connect(port, source)
    seconds = anyio.current_time() - started
    await assert_healthy(arena.node, arena.client)
    arena.report.add(
        "connect + RST",
        sent="200 from 20 addresses",
        expected="dropped in accept",
        observed="node alive, honest peer served",
        seconds=round(seconds, 3),
    )
    await assert_back_to_baseline(arena.baseline)


async def test_half_finished_noise_handshakes(arena: Arena) -> None:
    port = arena.port
    streams = []
    for _ in range(50):
        stream, handshake, decoder = await noise_session(port)
        handshake.read_message(await read_frame(stream, decoder))  # message 2, then silence
        streams.append(stream)
    # Message 1's payload is not authenticated and is ignored: 65 KiB of garbage there is
    # answered like any message 1, and the connection then stalls like the others.
    big = await raw_connect(port)
    await big.send(ms_message(MULTISTREAM) + ms_message("/noise") + b"\xff\xff" + os.urandom(65535))
    streams.append(big)
    try:
        await assert_healthy(arena.node, arena.client)  # served while the 51 handshakes hang
        with anyio.fail_after(STALLED + 1):
            results = [await outcome(s, within=STALLED) for s in streams]
    finally:
        await close_all(streams)
    longest = max(r.seconds for r in results)
    arena.report.add(
        "half-finished Noise handshakes",
        sent="50 x message 1 then silence, 1 x 65,535-byte message 1",
        expected=f"closed at the upgrade timeout ({NODE_CONFIG.upgrade_timeout:g} s)",
        observed=sorted({r.result for r in results}),
        seconds=round(longest, 3),
    )
    assert {r.result for r in results} <= {"closed", "reset"}
    await assert_back_to_baseline(arena.baseline)


@pytest.mark.parametrize(
    ("name", "frame"),
    [
        ("Noise message 1 of length 0", b"\x00\x00"),
        ("Noise message 1 of 3 bytes", b"\x00\x03abc"),
    ],
)
async def test_bad_noise_handshake_frames(name: str, frame: bytes, arena: Arena) -> None:
    conn = await raw_connect(arena.port)
    try:
        await conn.send(ms_message(MULTISTREAM) + ms_message("/noise"))
        await conn.send(frame)
        got = await outcome(conn, within=PROMPT)
    finally:
        await close_all([conn])
    arena.report.add(
        name,
        sent=f"{len(frame)} bytes after /noise",
        expected="closed",
        observed=got.result,
        seconds=round(got.seconds, 3),
    )
    assert got.result in ("closed", "reset"), got
    await arena.check()


@pytest.mark.parametrize(
    ("name", "frame"),
    [
        ("Noise transport frame with a bad tag", encode_frame(os.urandom(64))),
        ("Noise transport frame shorter than its tag", encode_frame(b"12345")),
        ("Noise transport frame of length 0", b"\x00\x00"),
    ],
)
async def test_bad_noise_transport_frames(name: str, frame: bytes, arena: Arena) -> None:
    secure, raw = await noise_secured(arena.port)
    try:
        await raw.send(frame)
        got = await outcome(secure, within=PROMPT)
    finally:
        await close_all([secure])
    arena.report.add(
        name,
        sent="after a complete handshake",
        expected="closed",
        observed=got.result,
        seconds=round(got.seconds, 3),
    )
    assert got.result in ("closed", "reset"), got
    await arena.check()


async def test_identity_signed_by_another_key(arena: Arena) -> None:
    stream, handshake, decoder = await noise_session(arena.port)
    handshake.signer = Identity.generate()  # names one key, signs with another
    try:
        handshake.read_message(await read_frame(stream, decoder))
        await stream.send(handshake.write_message())
        got = await outcome(stream, within=PROMPT)
    finally:
        await close_all([stream])
    arena.report.add(
        "Noise payload signed by another key",
        sent="message 3 with a forged signature",
        expected="closed",
        observed=got.result,
        seconds=round(got.seconds, 3),
    )
    assert got.result in ("closed", "reset"), got
    assert all(c.remote_peer == arena.client.peer_id for c in arena.node.connections())
    await arena.check()
