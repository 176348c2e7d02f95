"""Scenarios run inside a private network namespace by ``netns.run_in_netns``; each prints
JSON lines for the test to check. ``python -m tests.protocols.discovery.mdns.scenarios pair``."""

from __future__ import annotations

import json
import sys
from contextlib import AsyncExitStack

import anyio

from p2pstack.discovery import DiscoveredPeer
from p2pstack.roots.defaults import open_default_host
from protocols.discovery.mdns import Mdns, MdnsConfig
from tests.protocols.discovery.mdns.netns import setup_loopback_multicast


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def first_discovery(mdns: Mdns, *, not_from: str) -> DiscoveredPeer:
    async for peer in mdns.discovered():
        if str(peer.peer_id) != not_from:
            return peer
    raise AssertionError("discovery ended")


async def pair(count: int) -> None:
    """``count`` of our nodes on one host find each other; each prints what it found."""
    config = MdnsConfig(interval=1.0)
    async with AsyncExitStack() as stack:
        nodes = []
        for _ in range(count):
            mdns = Mdns(config)
            host = await stack.enter_async_context(
                open_default_host(listen=["/ip4/127.0.0.1/tcp/0"], services=[mdns])
            )
            nodes.append((host, mdns))
        wanted = {str(h.peer_id) for h, _ in nodes}

        async def watch(host_id: str, mdns: Mdns) -> None:
            found: dict[str, list[str]] = {}
            async for peer in mdns.discovered():
                found[str(peer.peer_id)] = [str(a) for a in peer.addrs]
                if set(found) >= wanted - {host_id}:
                    break
            emit("found", node=host_id, peers=found)

        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                for host, mdns in nodes:
                    tg.start_soon(watch, str(host.peer_id), mdns)
        for host, mdns in nodes:
            emit(
                "node",
                peer_id=str(host.peer_id),
                addrs=[str(a) for a in host.listen_addrs],
                stats=str(mdns.statistics()),
            )


def main() -> None:
    setup_loopback_multicast()
    name, *args = sys.argv[1:]
    if name == "pair":
        anyio.run(pair, int(args[0]) if args else 2)
    else:
        raise SystemExit(f"unknown scenario {name}")


if __name__ == "__main__":
    main()
