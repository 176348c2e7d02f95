"""py-libp2p 0.8.1 pubsub benchmark peer: one host (TCP + Noise + yamux) with ``Pubsub`` and
``GossipSub``, speaking the stdin/stdout contract of benchmarks/pubsub_peer.py (commands
``connect``, ``subscribe``, ``mesh``, ``ack``, ``reset``, ``publish``, ``wait``).

GossipSub is configured as the interop peer configures it (D 6/4/12, heartbeat 1 s instead of
py's 120 s, eclipse protection off as every node is on 127.0.0.1) and with its per-topic rate
limit (10 messages/s by default) lifted, since the benchmark publishes as fast as it can.

Runs in the py-libp2p venv: ``.interop/py-venv/bin/python benchmarks/pubsub_py.py
[--listen /ip4/127.0.0.1/tcp/0]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import OrderedDict
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service

ACK_TOPIC = "bench-ack"
STALL_SECONDS = 10.0
Reply = dict[str, Any]


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def make_host(listen: str) -> Any:
    key_pair = create_new_key_pair()
    noise = NoiseTransport(key_pair, noise_privkey=create_new_x25519_key_pair().private_key)
    return new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise},
        muxer_opt=OrderedDict([(TProtocol(YAMUX_PROTOCOL_ID), Yamux)]),
        listen_addrs=[multiaddr.Multiaddr(listen)],
        connection_config=ConnectionConfig(max_connections_per_peer=1),
    )


def make_router() -> GossipSub:
    return GossipSub(
        protocols=[PROTOCOL_ID_V12, PROTOCOL_ID_V11, PROTOCOL_ID],
        degree=6,
        degree_low=4,
        degree_high=12,
        heartbeat_interval=1,
        eclipse_protection_enabled=False,
        max_messages_per_topic_per_second=1e9,
    )


class Bench:
    """What this node received and acknowledged, and the publishing loop."""

    def __init__(self, host: Any, pubsub: Pubsub, router: GossipSub, nursery: Any) -> None:
        self.host, self.pubsub, self.router, self.nursery = host, pubsub, router, nursery
        self.me = host.get_id().to_bytes()
        self.ack_every = 0
        self.topics: set[str] = set()
        self.changed = trio.Event()
        self.reset()

    def reset(self) -> None:
        self.seen: set[int] = set()
        self.latencies_us: list[float] = []
        self.first_sent: int | None = None
        self.last_arrival: int | None = None
        self.duplicates = 0
        self.acked = 0

    def signal(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def on_message(self, topic: str, data: bytes) -> None:
        now = time.monotonic_ns()
        if topic == ACK_TOPIC:
            self.acked = max(self.acked, int.from_bytes(data[:8], "big"))
            self.signal()
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
            # In its own task: py's subscription channel holds 32 messages and drops beyond
            # them, so the reader must not wait for the publication.
            self.nursery.start_soon(self.pubsub.publish, ACK_TOPIC, n.to_bytes(8, "big"))
        self.signal()

    async def read(self, topic: str) -> None:
        sub = await self.pubsub.subscribe(topic)
        while True:
            msg = await sub.get()
            if msg.from_id != self.me:  # py hands our own publications back
                self.on_message(topic, msg.data)

    async def await_change(self, timeout: float) -> bool:
        with trio.move_on_after(timeout):
            await self.changed.wait()
            return True
        return False

    async def publish(
        self, topic: str, count: int, size: int, window: int, interval: float
    ) -> Reply:
        start = time.monotonic_ns()
        stalled = False
        pad = bytes(max(0, size - 16))
        for i in range(count):
            while window and i - self.acked >= window:
                if not await self.await_change(STALL_SECONDS):
                    stalled = True
                    break
            if stalled:
                break
            head = i.to_bytes(8, "big") + time.monotonic_ns().to_bytes(8, "big")
            await self.pubsub.publish(topic, head + pad)
            await trio.sleep(interval / 1000)
        seconds = (time.monotonic_ns() - start) / 1e9
        return {"event": "published", "count": count, "seconds": seconds, "stalled": stalled}

    async def wait(self, count: int, idle: float) -> Reply:
        while len(self.seen) < count:
            if not await self.await_change(idle):
                break
        return {
            "event": "received",
            "count": len(self.seen),
            "duplicates": self.duplicates,
            "first_sent_ns": self.first_sent,
            "last_arrival_ns": self.last_arrival,
            "latencies_us": self.latencies_us,
        }

    async def command(self, name: str, args: list[str]) -> Reply:
        if name == "connect":
            info = info_from_p2p_addr(multiaddr.Multiaddr(args[0]))
            with trio.fail_after(30):
                await self.host.connect(info)
            return {"event": "connected", "peer_id": str(info.peer_id)}
        if name == "subscribe":
            if args[0] not in self.topics:
                self.topics.add(args[0])
                self.nursery.start_soon(self.read, args[0])
            return {"event": "subscribed", "topic": args[0]}
        if name == "mesh":
            return {
                "event": "mesh",
                "peers": sorted(str(p) for p in self.router.mesh.get(args[0], ())),
            }
        if name == "ack":
            self.ack_every = int(args[0])
            return {"event": "ack", "every": self.ack_every}
        if name == "reset":
            self.reset()
            return {"event": "reset"}
        if name == "publish":
            n, size, window = (int(a) for a in args[1:4])
            return await self.publish(args[0], n, size, window, float(args[4]))
        if name == "wait":
            return await self.wait(int(args[0]), float(args[1]))
        raise ValueError(f"bad command: {name}")


async def serve(bench: Bench) -> None:
    """One command per stdin line, in order, until EOF."""
    stdin = trio.lowlevel.FdStream(os.dup(0))
    pending = b""
    while data := await stdin.receive_some(65536):
        *lines, pending = (pending + data).split(b"\n")
        for raw in lines:
            name, *args = raw.decode().split() or [""]
            if not name:
                continue
            try:
                reply = await bench.command(name, args)
            except Exception as exc:  # reported to the harness; the peer keeps serving
                emit("command_error", command=name, message=repr(exc))
                continue
            event = reply.pop("event")
            emit(event, **reply, command=name)


async def main(listen: str) -> None:
    host = make_host(listen)
    router = make_router()
    pubsub = Pubsub(host, router)
    async with (
        host.run(listen_addrs=[multiaddr.Multiaddr(listen)]),
        trio.open_nursery() as nursery,
    ):
        async with background_trio_service(pubsub), background_trio_service(router):
            await pubsub.wait_until_ready()
            bench = Bench(host, pubsub, router, nursery)
            addrs = [str(a) for a in host.get_addrs()]
            emit("listening", peer_id=str(host.get_id()), addrs=addrs)
            emit("ready")
            await serve(bench)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="py-libp2p pubsub benchmark peer")
    p.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    trio.run(main, p.parse_args().listen)
