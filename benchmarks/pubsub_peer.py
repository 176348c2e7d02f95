"""A p2pstack pubsub benchmark peer (gossipsub at its defaults, TCP + Noise + yamux). The js
(benchmarks/pubsub_js.mjs) and py (benchmarks/pubsub_py.py) peers speak the same contract, so
benchmarks/pubsub.py drives the three alike.

``python -m benchmarks.pubsub_peer [--listen /ip4/127.0.0.1/tcp/0] [--profile FILE]`` prints
``listening`` (``peer_id``, ``addrs``) and ``ready``, then answers one command per stdin line
with one JSON event carrying ``command`` (``command_error`` on failure); EOF on stdin stops it:

| command | reply |
|---|---|
| ``connect ADDR`` | ``connected`` (``peer_id``) |
| ``subscribe TOPIC`` | ``subscribed`` |
| ``mesh TOPIC`` | ``mesh`` (``peers``: sorted mesh peer IDs) |
| ``ack K`` | ``ack``: from now on publish the count received on ``bench-ack`` every K messages |
| ``reset`` | ``reset``: forget what was received and acknowledged |
| ``publish TOPIC N SIZE WINDOW INTERVAL_MS`` | ``published`` (``count``, ``seconds``, ``stalled``)|
| ``wait N IDLE_S`` | ``received`` (``count``, ``duplicates``, ``first_sent_ns``, |
| | ``last_arrival_ns``, ``latencies_us``) |

``publish`` sends N messages of SIZE bytes: the index and the send time (CLOCK_MONOTONIC, ns) as
two big-endian 64-bit numbers, then zeros; with WINDOW > 0 at most WINDOW messages are
unacknowledged (acks arrive on ``bench-ack``; 10 s without one ends the run, ``stalled``);
INTERVAL_MS > 0 paces them. ``wait`` returns once N distinct messages arrived (since ``reset``)
or none arrived for IDLE_S seconds. Every message on a subscribed topic other than
``bench-ack`` counts.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import anyio
from anyio.abc import TaskGroup

from p2pstack.host import Host
from p2pstack.roots.defaults import open_default_host
from protocols.identify import Identify
from protocols.pubsub import Pubsub, Subscription

ACK_TOPIC = "bench-ack"
STALL_SECONDS = 10.0
Reply = dict[str, Any]


def emit(event: str, **fields: object) -> None:
    """Print one JSON event line, flushed at once."""
    print(json.dumps({"event": event, **fields}), flush=True)


def payload(index: int, size: int) -> bytes:
    """A benchmark message: index and send time (ns), then zeros up to ``size`` bytes."""
    head = index.to_bytes(8, "big") + time.monotonic_ns().to_bytes(8, "big")
    return head + bytes(max(0, size - 16))


class Bench:
    """What one node received and acknowledged, and the publishing loop.

    Args:
        host: the node.
        pubsub: its pubsub service.
    """

    def __init__(self, host: Host, pubsub: Pubsub) -> None:
        self.host = host
        self.pubsub = pubsub
        self.ack_every = 0
        self.subs: dict[str, Subscription] = {}
        self._changed = anyio.Event()
        self.reset()

    def reset(self) -> None:
        """Forget what was received and acknowledged."""
        self.seen: set[int] = set()
        self.latencies_us: list[float] = []
        self.first_sent: int | None = None
        self.last_arrival: int | None = None
        self.duplicates = 0
        self.acked = 0

    def _signal(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def on_message(self, topic: str, data: bytes) -> None:
        """Count one arrival (or an ack) and acknowledge every ``ack_every`` messages."""
        now = time.monotonic_ns()
        if topic == ACK_TOPIC:
            self.acked = max(self.acked, int.from_bytes(data[:8], "big"))
            self._signal()
            return
        index = int.from_bytes(data[:8], "big")
        sent = int.from_bytes(data[8:16], "big")
        if index in self.seen:
            self.duplicates += 1
            return
        self.seen.add(index)
        if self.first_sent is None or sent < self.first_sent:
            self.first_sent = sent
        self.last_arrival = now
        self.latencies_us.append((now - sent) / 1000)
        n = len(self.seen)
        if self.ack_every and n % self.ack_every == 0:
            self.pubsub.publish(ACK_TOPIC, n.to_bytes(8, "big"))
        self._signal()

    async def read(self, sub: Subscription) -> None:
        """Feed one subscription's messages to ``on_message`` until it closes."""
        async for message in sub:
            self.on_message(message.topic, message.data)

    async def _await_change(self, timeout: float) -> bool:
        with anyio.move_on_after(timeout):
            await self._changed.wait()
            return True
        return False

    async def publish(
        self, topic: str, count: int, size: int, window: int, interval: float
    ) -> Reply:
        """Publish ``count`` messages (see the module docstring)."""
        start = time.monotonic_ns()
        stalled = False
        for i in range(count):
            while window and i - self.acked >= window:
                if not await self._await_change(STALL_SECONDS):
                    stalled = True
                    break
            if stalled:
                break
            self.pubsub.publish(topic, payload(i, size))
            await anyio.sleep(interval / 1000)  # 0: let the writers run
        seconds = (time.monotonic_ns() - start) / 1e9
        return {"event": "published", "count": count, "seconds": seconds, "stalled": stalled}

    async def wait(self, count: int, idle: float) -> Reply:
        """Wait for ``count`` messages or ``idle`` seconds without one."""
        while len(self.seen) < count:
            if not await self._await_change(idle):
                break
        return {
            "event": "received",
            "count": len(self.seen),
            "duplicates": self.duplicates,
            "first_sent_ns": self.first_sent,
            "last_arrival_ns": self.last_arrival,
            "latencies_us": self.latencies_us,
        }


async def run_command(bench: Bench, tg: TaskGroup, line: str) -> None:
    """Run one command line and print its reply (``command_error`` on failure)."""
    name, *args = line.split()
    try:
        reply = await _dispatch(bench, tg, name, args)
    except (ValueError, IndexError, OSError, RuntimeError, TimeoutError) as exc:
        emit("command_error", command=name, message=repr(exc))
        return
    event = reply.pop("event")
    emit(event, **reply, command=name)


async def _dispatch(bench: Bench, tg: TaskGroup, name: str, args: list[str]) -> Reply:
    if name == "connect":
        conn = await bench.host.connect(args[0])
        return {"event": "connected", "peer_id": str(conn.remote_peer)}
    if name == "subscribe":
        if args[0] not in bench.subs:
            sub = bench.subs[args[0]] = bench.pubsub.subscribe(args[0])
            tg.start_soon(bench.read, sub)
        return {"event": "subscribed", "topic": args[0]}
    if name == "mesh":
        return {"event": "mesh", "peers": sorted(str(p) for p in bench.pubsub.mesh(args[0]))}
    if name == "ack":
        bench.ack_every = int(args[0])
        return {"event": "ack", "every": bench.ack_every}
    if name == "reset":
        bench.reset()
        return {"event": "reset"}
    if name == "publish":
        n, size, window = (int(a) for a in args[1:4])
        return await bench.publish(args[0], n, size, window, float(args[4]))
    if name == "wait":
        return await bench.wait(int(args[0]), float(args[1]))
    raise ValueError(f"bad command: {name}")


async def main(args: argparse.Namespace) -> None:
    """Run the node until stdin closes."""
    pubsub = Pubsub("gossipsub", deliver_own=False)
    async with open_default_host(
        listen=[args.listen], muxers=["yamux"], services=[Identify(), pubsub]
    ) as host:
        bench = Bench(host, pubsub)
        emit("listening", peer_id=str(host.peer_id), addrs=[str(a) for a in host.addrs])
        emit("ready")
        async with anyio.create_task_group() as tg:
            async for line in anyio.wrap_file(sys.stdin):
                if line.strip():
                    await run_command(bench, tg, line)
            tg.cancel_scope.cancel()


def cli(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run the peer until stdin closes."""
    p = argparse.ArgumentParser(description="p2pstack pubsub benchmark peer")
    p.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    p.add_argument("--profile", help="write a cProfile of the whole run to this file")
    args = p.parse_args(argv)
    if args.profile is None:
        anyio.run(main, args)
        return
    profiler = cProfile.Profile()
    try:
        profiler.runcall(anyio.run, main, args)
    finally:
        profiler.dump_stats(args.profile)


if __name__ == "__main__":
    cli()
