"""Flood attackers run in a process of their own (``python -m tests.adversarial.flood KIND ...``):
the node's descriptors and resident memory are then the node's alone, and the attacker's work
runs on another core instead of slowing the node's event loop.

Kinds: ``idle`` and ``trickle`` (connections held open and reopened when the node closes them),
``complete`` (Noise + yamux connections held for a while), ``yamux-pings`` (100,000 pings whose
answers are never read). Prints one JSON object with what the attacker saw.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import anyio
import attrs

from p2pstack.errors import P2PError
from tests.adversarial.attack import (
    ATTACKER,
    MULTISTREAM,
    close_all,
    ms_message,
    raw_connect,
    secure_session,
    source_addresses,
)

__all__ = ["run_flood"]

_ROOT = Path(__file__).resolve().parents[2]
_YAMUX = "/yamux/1.0.0"


@attrs.define
class FloodStats:
    """What the attacker saw."""

    opened: int = 0
    refused: int = 0
    closed_by_node: int = 0


async def hold_connections(
    port: int, sources: list[str], count: int, seconds: float, *, trickle: bool
) -> FloodStats:
    """Keep ``count`` connections open for ``seconds``, reopening any the node closes. Idle
    ones send nothing; trickling ones send the multistream header one byte per second."""
    stats = FloodStats()
    header = ms_message(MULTISTREAM)
    deadline = time.monotonic() + seconds

    async def one(source: str) -> None:
        while (left := deadline - time.monotonic()) > 0:
            try:
                conn = await raw_connect(port, source)
            except OSError:
                stats.refused += 1
                await anyio.sleep(0.05)
                continue
            stats.opened += 1
            with anyio.move_on_after(left):
                try:
                    for i in range(10**6):
                        if trickle:
                            await conn.send(header[i % len(header) : i % len(header) + 1])
                            with anyio.move_on_after(1.0):
                                await conn.receive()
                        else:
                            await conn.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    stats.closed_by_node += 1
            await conn.aclose()

    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(one, sources[i % len(sources)])
    return stats


async def complete_connections(
    port: int, sources: list[str], count: int, seconds: float
) -> dict[str, int]:
    """Open ``count`` complete (Noise + yamux) connections, hold them ``seconds``, close them."""
    held, refused = [], 0
    try:
        for i in range(count):
            try:
                stream, _ = await secure_session(port, _YAMUX, sources[i % len(sources)])
            except (P2PError, OSError, anyio.BrokenResourceError, anyio.EndOfStream):
                refused += 1
                continue
            held.append(stream)
        await anyio.sleep(seconds)
    finally:
        await close_all(held)
    return {"accepted": len(held), "refused": refused}


async def yamux_pings(port: int, count: int, seconds: float) -> dict[str, int]:
    """Send ``count`` yamux pings on one connection and never read the answers."""
    stream, _ = await secure_session(port, _YAMUX, ATTACKER)
    sent = 0
    try:
        ping = bytes([0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7])  # version 0, Ping, SYN, opaque 7
        with anyio.move_on_after(seconds):
            for _ in range(count // 1000):
                await stream.send(ping * 1000)
                sent += 1000
            await anyio.sleep(seconds)
    finally:
        await close_all([stream])
    return {"pings_sent": sent}


async def _main(args: argparse.Namespace) -> object:
    sources = source_addresses(args.sources)
    if args.kind in ("idle", "trickle"):
        stats = await hold_connections(
            args.port, sources, args.count, args.seconds, trickle=args.kind == "trickle"
        )
        return attrs.asdict(stats)
    if args.kind == "complete":
        return await complete_connections(args.port, sources, args.count, args.seconds)
    return await yamux_pings(args.port, args.count, args.seconds)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["idle", "trickle", "complete", "yamux-pings"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--sources", type=int, default=1)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args(argv)
    print(json.dumps(anyio.run(_main, args)))


async def run_flood(kind: str, *, port: int, count: int, sources: int, seconds: float) -> object:
    """Run one flood in a child process and return what it printed (bounded in time).

    Raises:
        AssertionError: the attacker process failed.
    """
    argv = [sys.executable, "-m", "tests.adversarial.flood", kind, f"--port={port}"]
    argv += [f"--count={count}", f"--sources={sources}", f"--seconds={seconds}"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    with anyio.fail_after(seconds + 120):
        done = await anyio.run_process(argv, cwd=_ROOT, env=env, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout)


if __name__ == "__main__":
    main()
