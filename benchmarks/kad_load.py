"""p2pstack FIND_NODE load generator for the DHT benchmark: C clients (each its own host and
connection) ask one DHT server FIND_NODE for random peer IDs as fast as it answers, each request
on a new ``/ipfs/kad/1.0.0`` stream, exactly as the ``Kad`` service sends its requests
(https://github.com/libp2p/specs/blob/master/kad-dht/README.md#rpc-messages).

``python -m benchmarks.kad_load --target ADDR [--clients 8] [--warmup 2] [--seconds 10]``
prints a JSON ``window`` event when the measured window starts and a ``load`` event at its end
(the contract of benchmarks/kad_js.mjs and benchmarks/kad_py.py): ``requests`` answered in the
window, ``per_second``, ``errors``, ``closer_mean`` (peers per answer), ``p50_ms`` / ``p99_ms``
per request, ``cpu_seconds`` the load generator used in the window.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack

import anyio

from p2pstack.errors import NETWORK_ERRORS
from p2pstack.host import Host
from p2pstack.identity import PeerId
from p2pstack.roots.defaults import open_default_host
from protocols.identify import Identify
from protocols.kad import PROTOCOL_ID, KadError, KadMessage, MessageType
from protocols.kad._client import read_message, send_request
from protocols.kad._wire import KadMessageDecoder, frame
from protocols.ping import Ping

#: An identity-multihash Ed25519 peer ID is this prefix + 32 key bytes (38 bytes).
PEER_ID_PREFIX = bytes.fromhex("002408011220")
MAX_ANSWER = 64 * 1024  # the service's default max_message_size
MAX_ERRORS = 1000  # give up after this many failed requests (the server is gone)
FAILURES: tuple[type[BaseException], ...] = (KadError, *NETWORK_ERRORS, TimeoutError)


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
        await anyio.sleep(self.start - time.perf_counter())
        self.cpu = time.process_time()
        print(json.dumps({"event": "window"}), flush=True)

    def add(self, began: float, done: float, closer: int) -> None:
        if self.start <= done <= self.end:
            self.latencies.append(done - began)
            self.closer += closer

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


async def exchange(host: Host, server: PeerId, request: KadMessage) -> KadMessage | None:
    """One request as the js and py clients send it: write, read the answer, then close.

    The ``Kad`` service's own client (``send_request``) half-closes right after writing; js and
    py servers then read that EOF while the answer is in flight, reset the stream, and the reset
    discards the answer on our side. Closing after the answer measures every server alike.
    """
    with anyio.fail_after(10.0):
        stream = await host.new_stream(server, [PROTOCOL_ID])
        try:
            await stream.send(frame(request))
            answer = await read_message(stream, KadMessageDecoder(MAX_ANSWER), [])
        except BaseException:
            with anyio.CancelScope(shield=True):
                await stream.reset()
            raise
        await stream.aclose()
        return answer


async def client(host: Host, server: PeerId, tally: Tally, seed: int, service: bool) -> None:
    """Send FIND_NODE requests back to back until the window ends (``service``: through the
    ``Kad`` service's own request function)."""
    rng = random.Random(seed)
    while (began := time.perf_counter()) < tally.end:
        request = KadMessage(type=MessageType.FIND_NODE, key=PEER_ID_PREFIX + rng.randbytes(32))
        try:
            if service:
                answer = await send_request(
                    host, server, request, protocol_id=PROTOCOL_ID, timeout=10, max_size=MAX_ANSWER
                )
            else:
                answer = await exchange(host, server, request)
        except FAILURES as exc:
            name = type(exc).__name__
            tally.errors[name] = tally.errors.get(name, 0) + 1
            if sum(tally.errors.values()) > MAX_ERRORS:
                raise
            continue
        closer = 0 if answer is None else len(answer.closer_peers)
        tally.add(began, time.perf_counter(), closer)


async def main(args: argparse.Namespace) -> None:
    async with AsyncExitStack() as stack:
        hosts = [
            await stack.enter_async_context(
                open_default_host(muxers=["yamux"], services=[Identify(), Ping()])
            )
            for _ in range(args.clients)
        ]
        server: PeerId | None = None
        for host in hosts:
            with anyio.fail_after(30):
                server = (await host.connect(args.target)).remote_peer
        assert server is not None
        now = time.perf_counter()
        tally = Tally(now + args.warmup, now + args.warmup + args.seconds)
        async with anyio.create_task_group() as tg:
            tg.start_soon(tally.window)
            for i, host in enumerate(hosts):
                tg.start_soon(client, host, server, tally, i, args.service_client)
        print(json.dumps(tally.event()), flush=True)


def cli(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run the load."""
    p = argparse.ArgumentParser(description="p2pstack FIND_NODE load generator")
    p.add_argument("--target", required=True, help="the server's multiaddr with /p2p/<id>")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument(
        "--service-client", action="store_true", help="requests through the Kad service's client"
    )
    anyio.run(main, p.parse_args(argv))


if __name__ == "__main__":
    cli()
