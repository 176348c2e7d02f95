"""A p2pstack Kademlia DHT peer for the DHT benchmarks, speaking the ``--dht`` command-line and
stdin contract of the js and py interop peers (tests/interop/README.md, "DHT mode"), so one
harness drives the three implementations alike.

``python -m benchmarks.kad_peer --listen /ip4/127.0.0.1/tcp/0 --dht server [--dht-namespace NS]
[--bootstrap ADDR] [--hosts N]``: prints ``listening``, one ``connected`` per bootstrap address,
``ready``, then answers one command per stdin line (``put KEY VALUE``, ``get KEY [QUORUM]``,
``table``, ``bootstrap``, ``connect ADDR``, ``stats``) with one JSON event carrying ``command``;
EOF on stdin stops it. ``--hosts N`` runs N DHT servers in this one process, every one of them
joining through the ``--bootstrap`` addresses; commands go to the first (the benchmark uses this
to fill a server's routing table with real peers at little cost).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

import anyio

from p2pstack.host import Host
from p2pstack.roots.defaults import open_default_host
from protocols.identify import Identify
from protocols.kad import Kad, KadConfig, KadError, NotFound
from protocols.ping import Ping

Reply = dict[str, Any]
JOIN_CONCURRENCY = 5  # --hosts: joins in flight at once
JOIN_ATTEMPTS = 3  # --hosts: tries per host before it is left out


def emit(event: str, **fields: object) -> None:
    """Print one JSON event line, flushed at once."""
    print(json.dumps({"event": event, **fields}), flush=True)


async def _put(kad: Kad, key: str, value: str) -> Reply:
    stored = await kad.put_value(key.encode(), value.encode())
    return {"event": "put", "key": key, "stored_at": stored}


async def _get(kad: Kad, key: str, quorum: str | None = None) -> Reply:
    try:
        value = await kad.get_value(key.encode(), quorum=int(quorum) if quorum else None)
    except NotFound:
        return {"event": "not_found", "key": key}
    try:
        text: str | None = value.decode()
    except UnicodeDecodeError:
        text = None
    return {
        "event": "value",
        "key": key,
        "value": text,
        "value_b64": base64.b64encode(value).decode(),
    }


async def _table(kad: Kad) -> Reply:
    return {"event": "table", "peers": sorted(str(p) for p in kad.routing_table.peers())}


async def _bootstrap(kad: Kad) -> Reply:
    return {"event": "bootstrap", "closest": await kad.bootstrap()}


async def _connect(host: Host, addr: str) -> Reply:
    conn = await host.connect(addr)
    return {"event": "connected", "peer_id": str(conn.remote_peer), "muxer": conn.muxer_protocol}


async def _stats(kad: Kad) -> Reply:
    st = kad.statistics()
    return {
        "event": "stats",
        "routing_table_size": st.routing_table_size,
        "inbound_requests": st.inbound_requests,
        "inbound_rejected": st.inbound_rejected,
        "inbound_bad": st.inbound_bad,
    }


def commands(host: Host) -> dict[str, tuple[Callable[..., Awaitable[Reply]], int, int]]:
    """Command name -> (coroutine function, fewest arguments, most arguments)."""
    kad = host.service(Kad)
    return {
        "put": (lambda k, v: _put(kad, k, v), 2, 2),
        "get": (lambda k, q=None: _get(kad, k, q), 1, 2),
        "table": (lambda: _table(kad), 0, 0),
        "bootstrap": (lambda: _bootstrap(kad), 0, 0),
        "connect": (lambda a: _connect(host, a), 1, 1),
        "stats": (lambda: _stats(kad), 0, 0),
    }


async def run_command(host: Host, line: str, timeout: float) -> None:
    """Run one command line; a failure is reported as ``command_error`` and the peer goes on.

    Args:
        host: the host whose ``Kad`` service runs the command.
        line: the command and its arguments, space separated.
        timeout: most seconds for the command.
    """
    name, *args = line.split()
    spec = commands(host).get(name)
    try:
        if spec is None or not spec[1] <= len(args) <= spec[2]:
            raise ValueError(f"bad command: {line}")
        with anyio.fail_after(timeout):
            reply = await spec[0](*args)
    except Exception as exc:  # reported to the driver; the peer keeps serving
        emit("command_error", command=name, message=repr(exc))
        return
    event = reply.pop("event")
    emit(event, **reply, command=name)


async def join(host: Host, bootstrap: Sequence[str], timeout: float, report: bool) -> None:
    """Connect ``host`` to each bootstrap address, then look up its own ID through them."""
    if not bootstrap:
        return
    with anyio.fail_after(timeout):
        await host.service(Kad).bootstrap(bootstrap)
    if report:
        for addr in bootstrap:
            peer = addr.rsplit("/p2p/", 1)[-1]
            conns = [c for c in host.connections() if str(c.remote_peer) == peer]
            muxer = conns[0].muxer_protocol if conns else None
            emit("connected", peer_id=peer, muxer=muxer, bootstrap=True)


async def main(args: argparse.Namespace) -> None:
    config = KadConfig(mode=args.dht, passthrough_namespaces=tuple(args.dht_namespace))
    async with AsyncExitStack() as stack:
        hosts: list[Host] = []
        for _ in range(args.hosts):
            host = await stack.enter_async_context(
                open_default_host(
                    listen=[args.listen],
                    muxers=["yamux"],
                    services=[Identify(), Ping(), Kad(config)],
                )
            )
            hosts.append(host)
        first = hosts[0]
        emit("listening", peer_id=str(first.peer_id), addrs=[str(a) for a in first.addrs])
        await join(first, args.bootstrap, args.timeout, report=True)
        joined = 0
        limit = anyio.Semaphore(JOIN_CONCURRENCY)

        async def join_one(other: Host) -> None:
            nonlocal joined
            async with limit:
                for _ in range(JOIN_ATTEMPTS):
                    try:
                        await join(other, args.bootstrap, args.timeout, report=False)
                    except (KadError, TimeoutError):  # a loaded machine: try again
                        continue
                    joined += 1
                    return

        async with anyio.create_task_group() as tg:
            for other in hosts[1:]:
                tg.start_soon(join_one, other)
        emit("ready", hosts=len(hosts), joined=joined, addrs=[str(h.addrs[0]) for h in hosts])
        stdin = anyio.wrap_file(sys.stdin)
        async for line in stdin:
            if line.strip():
                await run_command(first, line, args.timeout)


def cli(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run the peer until stdin closes."""
    p = argparse.ArgumentParser(description="p2pstack DHT benchmark peer")
    p.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    p.add_argument("--dht", choices=["server", "client"], default="server")
    p.add_argument("--dht-namespace", action="append", default=[])
    p.add_argument("--bootstrap", action="append", default=[])
    p.add_argument("--hosts", type=int, default=1)
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args(argv)
    try:
        anyio.run(main, args)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            return
        emit("error", message=repr(exc))
        raise


if __name__ == "__main__":
    cli()
