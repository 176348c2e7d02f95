"""Drive two p2pd-compatible daemons with ``p2pclient`` 0.3.0 (Python's daemon bindings), run by
the p2pclient venv (.interop/p2pclient-venv: it pins protobuf < 7 and multiaddr < 1.0).

    drive.py SCENARIOS CONTROL_A CONTROL_B [--backend asyncio|trio] [--key HEX --value HEX]

SCENARIOS is a comma-separated list of ``streams`` (identify, connect, list_peers, stream
handler and open with an echo, disconnect), ``dht`` (put/get of the /pk/ record given by
--key/--value, provide/find_providers, find_peer, get_closest_peers) and ``pubsub``
(subscribe, get_topics, list_peers, publish). Each step prints one JSON line
``{"step": NAME, ...}``; a failed step prints ``{"step": NAME, "error": TEXT}`` and, unless
the step may fail, ends the run with exit code 1. tests/interop/test_p2pclient.py asserts on
these lines.

p2pclient quirks met here (docs/daemon.md): the handler listen address is sent to the
daemon as given, so ``/tcp/0`` cannot work (a free port is picked first); ``stream_handler``
takes one protocol per call and needs ``listen()`` entered; an exception in a handler silently
stops the listener (``_serve_listener`` swallows it); ``subscribe`` returns the raw control
socket (the caller reads the length-prefixed PSMessages); every error says "connect failed".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from multiaddr import Multiaddr
from p2pclient import Client
from p2pclient.libp2p_stubs.peer.id import ID
from p2pclient.pb import p2pd_pb2
from p2pclient.utils import get_unused_tcp_port, read_pbmsg_safe

ECHO = "/p2pstack/p2pclient-echo/1.0.0"
PAYLOAD = bytes(range(256)) * 256  # 64 KiB
STEP_TIMEOUT = 30.0


def emit(step: str, **fields: Any) -> None:
    print(json.dumps({"step": step, **fields}), flush=True)


async def step(
    name: str, fn: Callable[[], Awaitable[dict[str, Any]]], may_fail: bool = False
) -> dict[str, Any]:
    try:
        with anyio.fail_after(STEP_TIMEOUT):
            fields = await fn()
    except Exception as exc:  # reported to the test, which decides
        emit(name, error=f"{type(exc).__name__}: {exc}")
        if not may_fail:
            sys.exit(1)
        return {}
    emit(name, **fields)
    return fields


def client(control: str) -> Client:
    listen = Multiaddr(f"/ip4/127.0.0.1/tcp/{get_unused_tcp_port()}")
    return Client(control_maddr=Multiaddr(control), listen_maddr=listen)


async def connect(a: Client, b: Client) -> ID:
    b_id, b_addrs = await b.identify()
    await a.connect(b_id, b_addrs)
    return b_id


async def read_exactly(stream: Any, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        got += await stream.receive(n - len(got))
    return bytes(got)


async def streams(a: Client, b: Client, _args: argparse.Namespace) -> None:
    async def identify() -> dict[str, Any]:
        peer_id, addrs = await a.identify()
        return {"peer_id": peer_id.to_base58(), "addrs": [str(x) for x in addrs]}

    await step("identify", identify)
    b_id = (await step("connect", lambda: connect_step(a, b)))["peer_id"]

    async def list_peers() -> dict[str, Any]:
        return {"peers": [p.peer_id.to_base58() for p in await a.list_peers()]}

    await step("list_peers", list_peers)

    async def echo(_info: Any, stream: Any) -> None:
        async with stream:
            data = await read_exactly(stream, len(PAYLOAD))
            await stream.send(data)
            await stream.receive()  # until the opener closes (js ends relays on half-close)

    async with b.listen():
        await step("stream_handler", lambda: handler_step(b, echo))

        async def stream_open() -> dict[str, Any]:
            info, stream = await a.stream_open(ID.from_base58(b_id), [ECHO])
            async with stream:
                await stream.send(PAYLOAD)
                back = await read_exactly(stream, len(PAYLOAD))
            return {
                "proto": info.proto,
                "peer_id": info.peer_id.to_base58(),
                "echoed": back == PAYLOAD,
            }

        await step("stream_open", stream_open)

    async def disconnect() -> dict[str, Any]:
        await a.disconnect(ID.from_base58(b_id))
        return {}

    await step("disconnect", disconnect, may_fail=True)


async def connect_step(a: Client, b: Client) -> dict[str, Any]:
    return {"peer_id": (await connect(a, b)).to_base58()}


async def handler_step(b: Client, handler: Any) -> dict[str, Any]:
    await b.stream_handler(ECHO, handler)
    return {}


async def dht(a: Client, b: Client, args: argparse.Namespace) -> None:
    key, value = bytes.fromhex(args.key), bytes.fromhex(args.value)
    b_id = (await step("connect", lambda: connect_step(a, b)))["peer_id"]
    a_id, _ = await a.identify()

    async def put_get() -> dict[str, Any]:
        tries = 0
        while True:  # the routing tables fill a moment after identify: retry, bounded by step()
            tries += 1
            await a.dht_put_value(key, value)
            try:
                got = await b.dht_get_value(key)
                return {"equal": got == value, "tries": tries}
            except (Exception, anyio.IncompleteRead):  # js closes without a reply if not found
                await anyio.sleep(0.5)

    await step("put_get_value", put_get)
    cid = bytes.fromhex("01551220") + bytes(range(32))

    async def providers() -> dict[str, Any]:
        await a.dht_provide(cid)
        found = await b.dht_find_providers(cid, 1)
        return {"providers": [p.peer_id.to_base58() for p in found], "self": a_id.to_base58()}

    await step("provide_find_providers", providers)

    async def find_peer() -> dict[str, Any]:
        info = await a.dht_find_peer(ID.from_base58(b_id))
        return {"peer_id": info.peer_id.to_base58(), "addrs": [str(x) for x in info.addrs]}

    await step("find_peer", find_peer)

    async def closest() -> dict[str, Any]:
        return {"peers": [p.to_base58() for p in await b.dht_get_closest_peers(b"some key")]}

    await step("get_closest_peers", closest, may_fail=True)


async def pubsub(a: Client, b: Client, _args: argparse.Namespace) -> None:
    topic = "p2pclient-test"
    b_id = (await step("connect", lambda: connect_step(a, b)))["peer_id"]
    sub = await b.pubsub_subscribe(topic)
    async with sub:

        async def topics() -> dict[str, Any]:
            return {"topics": list(await b.pubsub_get_topics())}

        await step("get_topics", topics)

        async def peers() -> dict[str, Any]:
            while True:  # a daemon has no event to wait on: ask until it knows, bounded
                listed = [p.to_base58() for p in await a.pubsub_list_peers(topic)]
                if b_id in listed:
                    return {"peers": listed}
                await anyio.sleep(0.2)

        await step("list_peers", peers)

        async def publish_receive() -> dict[str, Any]:
            await a.pubsub_publish(topic, b"hello from p2pclient")
            msg = p2pd_pb2.PSMessage()
            await read_pbmsg_safe(sub, msg)
            return {"data": msg.data.decode(), "topics": list(msg.topicIDs)}

        await step("publish_receive", publish_receive)


SCENARIOS = {"streams": streams, "dht": dht, "pubsub": pubsub}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenarios", help=f"comma-separated: {','.join(SCENARIOS)}")
    parser.add_argument("control_a")
    parser.add_argument("control_b")
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    parser.add_argument("--key", default="")
    parser.add_argument("--value", default="")
    args = parser.parse_args()
    start = time.monotonic()

    names = args.scenarios.split(",")
    if unknown := [n for n in names if n not in SCENARIOS]:
        parser.error(f"unknown scenarios: {unknown}")

    async def run() -> None:
        for name in names:
            emit("scenario", name=name)
            await SCENARIOS[name](client(args.control_a), client(args.control_b), args)

    anyio.run(run, backend=args.backend)
    emit("done", seconds=round(time.monotonic() - start, 3))


if __name__ == "__main__":
    main()
