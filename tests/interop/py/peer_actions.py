"""Client actions of the py-libp2p interop peer (ping, identify, echo, streams, perf, idle).

Perf follows https://github.com/libp2p/specs/blob/master/perf/perf.md; the action list and the
events they emit are described in ../README.md.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
import time
from dataclasses import dataclass
from typing import Any

import multiaddr
import trio
from libp2p.abc import INetConn
from libp2p.crypto.pb import crypto_pb2
from libp2p.crypto.serialization import deserialize_public_key
from libp2p.identity.identify.identify import ID as IDENTIFY_PROTOCOL
from libp2p.identity.identify.pb.identify_pb2 import Identify
from libp2p.io.utils import read_exactly
from libp2p.peer.id import ID
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID
from peer_common import (
    BLOCK,
    ECHO_PROTOCOL,
    MAX_IDENTIFY_BYTES,
    MPLEX_LOCKSTEP_BLOCK,
    PERF_PROTOCOL,
    PING_PROTOCOL,
    Config,
    PeerError,
    emit,
    muxer_of,
    read_chunk,
    write_zeros,
)

# ------------------------------------------------------------------ client actions


@dataclass
class Ctx:
    host: Any
    peer: ID
    conn: INetConn
    cfg: Config


async def ping_rtts(ctx: Ctx, count: int) -> list[float]:
    """Round-trip times in ms: one stream for all pings (spec allows it), 32 random bytes each."""
    rtts: list[float] = []
    with trio.fail_after(ctx.cfg.timeout):
        stream = await ctx.host.new_stream(ctx.peer, [PING_PROTOCOL])
        for seq in range(count):
            payload = secrets.token_bytes(32)
            start = time.perf_counter()
            await stream.write(payload)
            pong = await read_exactly(stream, 32)
            rtts.append((time.perf_counter() - start) * 1000)
            if pong != payload:
                raise PeerError(f"ping {seq}: wrong payload back")
        await stream.close()
    return rtts


async def action_ping(ctx: Ctx, count: int) -> None:
    for seq, rtt in enumerate(await ping_rtts(ctx, count)):
        emit("ping", seq=seq, rtt_ms=rtt)


def key_type(public_key: bytes) -> str | None:
    pk = crypto_pb2.PublicKey()
    pk.ParseFromString(public_key)
    return crypto_pb2.KeyType.Name(pk.key_type)


def decode_uvarint(buf: bytes) -> tuple[int, int]:
    value = shift = 0
    for i, b in enumerate(buf[:10]):
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i + 1
        shift += 7
    raise PeerError("identify: bad length prefix")


async def action_identify(ctx: Ctx) -> None:
    with trio.fail_after(ctx.cfg.timeout):
        stream = await ctx.host.new_stream(ctx.peer, [IDENTIFY_PROTOCOL])
        buf = b""
        while (data := await read_chunk(stream)) is not None:
            buf += data
            if len(buf) > MAX_IDENTIFY_BYTES:
                raise PeerError("identify: response too large")
    length, off = decode_uvarint(buf)
    if len(buf) != off + length:
        raise PeerError(f"identify: length prefix {length} but {len(buf) - off} bytes")
    msg = Identify()
    msg.ParseFromString(buf[off:])
    observed = (
        str(multiaddr.Multiaddr(msg.observed_addr)) if msg.HasField("observed_addr") else None
    )
    pk_type = key_type(msg.public_key) if msg.HasField("public_key") else None
    pk_matches = None
    if msg.HasField("public_key"):
        pk_matches = str(ID.from_pubkey(deserialize_public_key(msg.public_key))) == str(ctx.peer)
    emit(
        "identify",
        peer_id=str(ctx.peer),
        agent_version=msg.agent_version if msg.HasField("agent_version") else None,
        protocol_version=msg.protocol_version if msg.HasField("protocol_version") else None,
        protocols=sorted(msg.protocols),
        listen_addrs=[str(multiaddr.Multiaddr(a)) for a in msg.listen_addrs],
        observed_addr=observed,
        public_key_type=pk_type,
        public_key_matches_peer_id=pk_matches,
        signed_peer_record=(
            {"bytes": len(msg.signedPeerRecord)} if msg.HasField("signedPeerRecord") else None
        ),
    )


async def echo_once(ctx: Ctx, size: int) -> bool:
    data = os.urandom(size)
    got = hashlib.sha256()
    received = 0
    # py-libp2p's mplex streams are half duplex (a pending read() holds a lock that write()
    # waits for), so over mplex we echo block by block; over yamux we read while uploading.
    lockstep = muxer_of(ctx.conn) == MPLEX_PROTOCOL_ID
    step = MPLEX_LOCKSTEP_BLOCK
    with trio.fail_after(ctx.cfg.timeout):
        stream = await ctx.host.new_stream(ctx.peer, [ECHO_PROTOCOL])
        view = memoryview(data)

        async def upload() -> None:
            for off in range(0, size, BLOCK):
                await stream.write(bytes(view[off : off + BLOCK]))
            await stream.close_write()

        if lockstep:
            for off in range(0, size, step):
                block = bytes(view[off : off + step])
                await stream.write(block)
                want = received + len(block)
                while received < want and (chunk := await read_chunk(stream)) is not None:
                    got.update(chunk)
                    received += len(chunk)
            await stream.close_write()
            while (chunk := await read_chunk(stream)) is not None:  # anything extra, then EOF
                got.update(chunk)
                received += len(chunk)
        else:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(upload)
                while (chunk := await read_chunk(stream)) is not None:
                    got.update(chunk)
                    received += len(chunk)
    return received == size and got.digest() == hashlib.sha256(data).digest()


async def action_echo(ctx: Ctx, size: int) -> None:
    start = time.perf_counter()
    if not await echo_once(ctx, size):
        raise PeerError(f"echo of {size} bytes came back different")
    emit("echo", bytes=size, ok=True, seconds=time.perf_counter() - start)


async def action_streams(ctx: Ctx, count: int, size: int) -> None:
    results: list[bool] = []
    start = time.perf_counter()

    async def one() -> None:
        results.append(await echo_once(ctx, size))

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)
    bad = results.count(False)
    if bad or len(results) != count:
        raise PeerError(f"{bad} of {count} echo streams came back different")
    emit("streams", count=count, bytes=size, ok=True, seconds=time.perf_counter() - start)


async def action_perf(ctx: Ctx, up: int, down: int) -> None:
    start = time.perf_counter()
    first: float | None = None
    received = 0
    with trio.fail_after(ctx.cfg.timeout):
        stream = await ctx.host.new_stream(ctx.peer, [PERF_PROTOCOL])

        # Upload, then download: the server sends nothing before our EOF, so its first byte
        # ends the upload phase (sequential also suits py-libp2p's half-duplex mplex streams).
        await stream.write(struct.pack(">Q", down))
        await write_zeros(stream, up)
        await stream.close_write()
        while (chunk := await read_chunk(stream)) is not None:
            if first is None:
                first = time.perf_counter()
            received += len(chunk)
    end = time.perf_counter()
    first = end if first is None else first
    if received != down:
        raise PeerError(f"perf: asked for {down} bytes, got {received}")
    up_s, down_s = first - start, end - first
    emit(
        "perf",
        upload_bytes=up,
        download_bytes=down,
        seconds=end - start,
        upload_seconds=up_s,
        download_seconds=down_s,
        upload_mbps=up / 1e6 / up_s if up_s > 0 else None,
        download_mbps=down / 1e6 / down_s if down_s > 0 else None,
    )


async def action_idle(ctx: Ctx, seconds: int) -> None:
    await trio.sleep(seconds)
    conns = ctx.host.get_network().get_connections(ctx.peer)
    if ctx.conn.is_closed or conns != [ctx.conn]:
        raise PeerError(f"connection did not survive idle: closed={ctx.conn.is_closed} {conns}")
    # Prove it carries traffic, on the same connection.
    (rtt,) = await ping_rtts(ctx, 1)
    if ctx.host.get_network().get_connections(ctx.peer) != [ctx.conn]:
        raise PeerError("reconnected during the idle check")
    emit(
        "idle",
        seconds=seconds,
        still_connected=True,
        connection_id=id(ctx.conn),
        rtt_ms_after=rtt,
    )


async def run_actions(ctx: Ctx) -> None:
    for a in ctx.cfg.actions:
        if a.name == "ping":
            await action_ping(ctx, *a.args)
        elif a.name == "identify":
            await action_identify(ctx)
        elif a.name == "echo":
            await action_echo(ctx, *a.args)
        elif a.name == "streams":
            await action_streams(ctx, *a.args)
        elif a.name == "perf":
            await action_perf(ctx, *a.args)
        elif a.name == "idle":
            await action_idle(ctx, *a.args)
