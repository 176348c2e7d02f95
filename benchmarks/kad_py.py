"""py-libp2p FIND_NODE load generator for the DHT benchmark: C clients (each its own py-libp2p
host and connection) ask one DHT server FIND_NODE for random peer IDs as fast as it answers.
Each request goes on a new ``/ipfs/kad/1.0.0`` stream, written and read as py-libp2p's KadDHT
client does (``PeerRouting._query_peer_for_closest``: the request carries the sender's signed
peer record, one length-prefixed message each way, then close)
(https://github.com/libp2p/specs/blob/master/kad-dht/README.md#rpc-messages).

Runs in the py-libp2p venv: ``.interop/py-venv/bin/python benchmarks/kad_py.py --target ADDR
[--clients 8] [--warmup 2] [--seconds 10]``; prints the JSON ``window`` and ``load`` events
of benchmarks/kad_load.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import OrderedDict
from contextlib import AsyncExitStack
from typing import Any

import multiaddr
import trio
import varint
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.kad_dht.common import PROTOCOL_ID
from libp2p.kad_dht.pb.kademlia_pb2 import Message
from libp2p.network.config import ConnectionConfig
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.peer.peerstore import env_to_send_in_RPC
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.utils.varint import read_varint_prefixed_bytes_limited

#: An identity-multihash Ed25519 peer ID is this prefix + 32 key bytes (38 bytes).
PEER_ID_PREFIX = bytes.fromhex("002408011220")
MAX_ANSWER = 64 * 1024
MAX_ERRORS = 1000


class Tally:
    """What the clients saw inside the measured window."""

    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end
        self.latencies: list[float] = []
        self.closer = 0
        self.errors: dict[str, int] = {}
        self.cpu = 0.0

    async def window(self) -> None:
        """Announce the start of the measured window (the harness samples the server's CPU)."""
        await trio.sleep(self.start - time.perf_counter())
        self.cpu = time.process_time()
        print(json.dumps({"event": "window"}), flush=True)

    def event(self) -> dict[str, object]:
        lat = sorted(self.latencies)
        n = len(lat)
        return {
            "event": "load",
            "requests": n,
            "seconds": self.end - self.start,
            "per_second": n / (self.end - self.start),
            "errors": sum(self.errors.values()),
            "error_kinds": self.errors,
            "cpu_seconds": time.process_time() - self.cpu,
            "closer_mean": self.closer / n if n else None,
            "p50_ms": statistics.median(lat) * 1000 if n else None,
            "p99_ms": lat[min(n - 1, int(n * 0.99))] * 1000 if n else None,
        }


def make_host() -> Any:
    """A py-libp2p host: TCP, Noise, yamux, one connection per peer (as the interop peer)."""
    key_pair = create_new_key_pair()
    noise = NoiseTransport(key_pair, noise_privkey=create_new_x25519_key_pair().private_key)
    return new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise},
        muxer_opt=OrderedDict([(TProtocol(YAMUX_PROTOCOL_ID), Yamux)]),
        connection_config=ConnectionConfig(max_connections_per_peer=1),
    )


async def find_node(host: Any, server: Any) -> int:
    """One FIND_NODE on a new stream; returns how many closer peers the answer carried."""
    stream = await host.new_stream(server, [PROTOCOL_ID])
    try:
        request = Message()
        request.type = Message.MessageType.FIND_NODE
        request.key = PEER_ID_PREFIX + os.urandom(32)
        request.senderRecord = env_to_send_in_RPC(host)[0]
        data = request.SerializeToString()
        await stream.write(varint.encode(len(data)))
        await stream.write(data)
        answer = Message()
        answer.ParseFromString(await read_varint_prefixed_bytes_limited(stream, MAX_ANSWER))
        return len(answer.closerPeers)
    finally:
        await stream.close()


async def client(host: Any, server: Any, tally: Tally) -> None:
    """Send FIND_NODE requests back to back until the window ends."""
    while (began := time.perf_counter()) < tally.end:
        try:
            with trio.fail_after(10):
                closer = await find_node(host, server)
        except Exception as exc:  # counted; the load goes on unless the server is gone
            name = type(exc).__name__
            tally.errors[name] = tally.errors.get(name, 0) + 1
            if sum(tally.errors.values()) > MAX_ERRORS:
                raise
            continue
        done = time.perf_counter()
        if tally.start <= done <= tally.end:
            tally.latencies.append(done - began)
            tally.closer += closer


async def main(args: argparse.Namespace) -> None:
    info = info_from_p2p_addr(multiaddr.Multiaddr(args.target))
    async with AsyncExitStack() as stack:
        hosts = [make_host() for _ in range(args.clients)]
        for host in hosts:
            await stack.enter_async_context(host.run(listen_addrs=[]))
            with trio.fail_after(30):
                await host.connect(info)
        now = time.perf_counter()
        tally = Tally(now + args.warmup, now + args.warmup + args.seconds)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tally.window)
            for host in hosts:
                nursery.start_soon(client, host, info.peer_id, tally)
        print(json.dumps(tally.event()), flush=True)


def cli() -> None:
    """Parse the command line and run the load."""
    p = argparse.ArgumentParser(description="py-libp2p FIND_NODE load generator")
    p.add_argument("--target", required=True, help="the server's multiaddr with /p2p/<id>")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--seconds", type=float, default=10.0)
    trio.run(main, p.parse_args())


if __name__ == "__main__":
    cli()
