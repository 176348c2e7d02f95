"""Attacks with streams, from a peer built with the project's own host: streams opened and never
written or read, ping floods, identify requested and never read. The honest peer must keep
getting its pings answered during the attack (>= 99%, with a p99 bound) and the node must return
to its baseline after."""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable

import anyio
import attrs
import pytest
from multiaddr import Multiaddr

from p2pstack.errors import P2PError
from p2pstack.host import Host, Stream
from p2pstack.identity import PeerId
from p2pstack.resources import LimitedResourceManager, Limits
from protocols.identify import PROTOCOL_ID as IDENTIFY
from protocols.ping import PAYLOAD_SIZE, Ping
from protocols.ping import PROTOCOL_ID as PING
from tests.adversarial.attack import in_thread, secure_session
from tests.adversarial.conftest import Arena
from tests.adversarial.node import (
    NODE_CONFIG,
    HonestPings,
    assert_healthy,
    measure,
    open_client,
    open_node,
)
from tests.adversarial.test_muxers import YAMUX, syn
from transports.yamux import Flag as YamuxFlag

pytestmark = pytest.mark.anyio

#: Honest pings that must succeed during an attack, and their p99 round trip (seconds; loose:
#: tracemalloc and a shared CI machine both slow the node down).
MIN_SUCCESS = 0.99
P99_BOUND = 1.0
#: How long each stream attack runs while the honest peer pings.
ATTACK_SECONDS = 4.0


async def _with_honest_pings(arena: Arena, attack: Callable[[], Awaitable[object]]) -> HonestPings:
    """Run ``attack`` while the honest client pings the node every 20 ms; check the outcome."""
    pings = HonestPings()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: pings.run(arena.node, arena.client, interval=0.02, timeout=5.0))
        await attack()
        tg.cancel_scope.cancel()
    assert pings.success_rate >= MIN_SUCCESS, pings.failures[:5]
    assert pings.p99() <= P99_BOUND, pings.p99()
    return pings


async def _open_many(attacker: Host, node: PeerId, protocol: str, count: int) -> list[Stream]:
    streams = []
    for _ in range(count):
        try:
            streams.append(await attacker.new_stream(node, [protocol]))
        except P2PError:
            continue
    return streams


def _target(arena: Arena) -> tuple[Multiaddr, PeerId]:
    node = arena.node
    return node.addrs[0].encapsulate(f"/p2p/{node.peer_id}"), node.peer_id


async def test_identify_requested_and_never_read(arena: Arena) -> None:
    addr, peer = _target(arena)

    async def attack() -> None:
        async with open_client() as attacker:
            await attacker.connect(addr)
            held = await _open_many(attacker, peer, IDENTIFY, 200)
            await anyio.sleep(ATTACK_SECONDS)
            for stream in held:
                await stream.reset()

    pings = await _with_honest_pings(arena, lambda: in_thread(attack))
    arena.report.add(
        "identify requested and never read",
        sent="200 streams on one connection",
        expected="answered into the window and closed",
        observed=_pings_text(pings),
        seconds=ATTACK_SECONDS,
    )
    await arena.check()


async def test_ping_streams_written_and_never_read(arena: Arena) -> None:
    addr, peer = _target(arena)

    async def attack() -> None:
        async with open_client() as attacker:
            await attacker.connect(addr)
            held = await _open_many(attacker, peer, PING, 64)
            for stream in held:
                try:
                    await stream.send(bytes(PAYLOAD_SIZE) * 1024)  # 32 KiB of pings each
                except P2PError:
                    continue  # reset: over the per-peer limit
            await anyio.sleep(ATTACK_SECONDS)
            for stream in held:
                await stream.reset()

    pings = await _with_honest_pings(arena, lambda: in_thread(attack))
    arena.report.add(
        "ping streams written and never read",
        sent="64 streams x 32 KiB of pings",
        expected="4 served (per-peer limit), 60 reset",
        observed=_pings_text(pings),
        seconds=ATTACK_SECONDS,
    )
    await arena.check()


async def test_ping_flood(arena: Arena) -> None:
    addr, peer = _target(arena)

    async def attack() -> int:
        sent = 0

        async def flood_one(attacker: Host) -> None:
            nonlocal sent
            while True:
                try:
                    sent += len(await attacker.service(Ping).ping(peer, count=50))
                except P2PError:
                    await anyio.sleep(0.01)  # refused: a slot was still held; try again

        async with open_client() as attacker, anyio.create_task_group() as tg:
            await attacker.connect(addr)
            for _ in range(4):  # the per-peer limit of inbound ping streams
                tg.start_soon(flood_one, attacker)
            await anyio.sleep(ATTACK_SECONDS)
            tg.cancel_scope.cancel()
        return sent

    sent: list[int] = []

    async def run() -> None:
        sent.append(await in_thread(attack))

    pings = await _with_honest_pings(arena, run)
    arena.report.add(
        "ping flood",
        sent=f"{sent[0]:,} pings on 4 streams at once from one peer",
        expected="served up to the per-peer limit",
        observed=_pings_text(pings),
        seconds=ATTACK_SECONDS,
    )
    assert sent[0] > 0  # the flood ran (its rate is what the machine allows)
    await arena.check()


async def test_streams_opened_and_never_written(arena: Arena) -> None:
    stream, _ = await secure_session(arena.port, YAMUX)
    received = bytearray()

    async def attack() -> None:
        await stream.send(b"".join(syn(2 * i + 1) for i in range(200)))
        with anyio.move_on_after(NODE_CONFIG.negotiate_timeout + 2):
            while len(_reset_ids(received)) < 201:
                received.extend(await stream.receive())

    try:
        pings = await _with_honest_pings(arena, attack)
    finally:
        await stream.aclose()
    reset = {i for i in _reset_ids(received) if i % 2}  # even: the node's own identify stream
    arena.report.add(
        "streams opened and never written",
        sent="200 yamux SYNs, then silence",
        expected=f"reset at the negotiation timeout ({NODE_CONFIG.negotiate_timeout:g} s)",
        observed=f"{len(reset)} reset; " + _pings_text(pings),
        seconds=NODE_CONFIG.negotiate_timeout,
    )
    assert reset == {2 * i + 1 for i in range(200)}
    await arena.check()


def _reset_ids(data: bytes | bytearray) -> set[int]:
    """Stream IDs of the yamux frames with the RST flag in ``data`` (whole frames only)."""
    ids, pos = set(), 0
    while pos + 12 <= len(data):
        _, kind, flags, stream_id, length = struct.unpack_from(">BBHII", data, pos)
        if flags & YamuxFlag.RST:
            ids.add(stream_id)
        pos += 12 + (length if kind == 0 else 0)
    return ids


def _pings_text(pings: HonestPings) -> str:
    total = len(pings.rtts) + len(pings.failures)
    return f"honest pings {len(pings.rtts)}/{total} ok, p99 {pings.p99() * 1000:.0f} ms"


SINK = "/test/sink/1.0.0"


#: The node's per-connection memory limit in the test below (the default is 32 MiB): small, so
#: that what the node buffers stays well inside the suite's RSS bound.
CONNECTION_MEMORY = 4 << 20


async def test_data_on_streams_nobody_reads_hits_the_memory_limit(arena: Arena) -> None:
    """A peer fills the windows of 64 streams whose handler never reads: the node reserves what
    it buffers in the connection's memory scope, resets the streams beyond its limit, keeps
    serving honest peers, and holds no reservation once the attacker left."""
    defaults = Limits()
    limits = attrs.evolve(
        defaults, connection=attrs.evolve(defaults.connection, memory=CONNECTION_MEMORY)
    )
    async with open_node(resource_manager=LimitedResourceManager(limits)) as node:
        await assert_healthy(node, arena.client)
        await _fill_unread_streams(Arena(node, arena.client, measure(), arena.report))


async def _fill_unread_streams(arena: Arena) -> None:
    node, (addr, peer) = arena.node, _target(arena)
    release = anyio.Event()

    async def slow_application(stream: Stream) -> None:
        with anyio.move_on_after(ATTACK_SECONDS + 5):
            await release.wait()  # never reads

    node.set_stream_handler(SINK, slow_application)
    sent = {"complete": 0, "reset": 0}
    limits = node.resource_manager.limits

    async def attack() -> None:
        async with open_client() as attacker:
            await attacker.connect(addr)
            held = await _open_many(attacker, peer, SINK, 64)
            # One buffer for every stream: the attacker shares the node's process here, and
            # 64 fresh 240 KB buffers would count in the node's RSS.
            payload = bytes(240_000)
            for stream in held:
                try:
                    with anyio.fail_after(2):
                        await stream.send(payload)  # within the 256 KiB window
                    sent["complete"] += 1
                except (P2PError, TimeoutError):
                    sent["reset"] += 1
            await anyio.sleep(ATTACK_SECONDS / 2)
            for stream in held:
                await stream.reset()

    pings = await _with_honest_pings(arena, lambda: in_thread(attack))
    release.set()
    # The attacker's connection closes asynchronously, like the sockets in
    # assert_back_to_baseline; check until its reservations are gone (bounded).
    for _ in range(200):  # 10 s
        if not node.resource_manager.statistics().usage["system"].memory:
            break
        await anyio.sleep(0.05)
    stats = node.resource_manager.statistics()
    refused = sum(n for cause, n in stats.refusals.items() if cause.endswith("/memory"))
    arena.report.add(
        "data on streams nobody reads",
        sent="64 streams x 240,000 bytes (within each 256 KiB window), handler never reads",
        expected=f"buffers reserved up to the connection's memory limit "
        f"({(limits.connection.memory or 0) >> 20} MiB), streams beyond it reset",
        observed=f"{refused} reservations refused; " + _pings_text(pings),
        seconds=ATTACK_SECONDS,
    )
    assert refused >= 1
    assert stats.usage["system"].memory == 0  # every reservation released
    await arena.check()
