"""Scenarios run inside a private network namespace by ``netns.run_in_netns``; each prints
JSON lines for the test to check. ``python -m tests.protocols.discovery.mdns.scenarios pair``."""

from __future__ import annotations

import json
import socket
import sys
from contextlib import AsyncExitStack

import anyio
import anyio.lowlevel
import attrs

from p2pstack.discovery import DiscoveredPeer, PeerDiscovery
from p2pstack.identity import Identity
from p2pstack.roots.defaults import open_default_host
from protocols.discovery.mdns import Mdns, MdnsConfig, build_query, build_response
from protocols.discovery.mdns._wire import Host
from tests.protocols.discovery.mdns.netns import setup_loopback_multicast


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def pair(count: int, interface: str | None = None) -> None:
    """``count`` of our nodes on one host find each other; each prints what it found.
    ``interface``: the IPv4 address of the interface they join the group on and send from."""
    config = MdnsConfig(interval=1.0)
    async with AsyncExitStack() as stack:
        nodes = []
        for _ in range(count):
            mdns = Mdns(config, interface=interface)
            host = await stack.enter_async_context(
                open_default_host(listen=["/ip4/127.0.0.1/tcp/0"], services=[mdns])
            )
            nodes.append((host, mdns))
        wanted = {str(h.peer_id) for h, _ in nodes}

        async def watch(host_id: str, mdns: PeerDiscovery) -> None:
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
    # every host is closed: each service's discoveries end for a reader
    with anyio.fail_after(5):
        for _, mdns in nodes:
            async for _peer in mdns.discovered():
                pass
    emit("ended")


def _forged(i: int, peer: str) -> bytes:
    txt = tuple(f"dnsaddr=/ip4/127.0.0.1/tcp/{p}/p2p/{peer}".encode() for p in range(1, 40))
    return build_response(Host(peer_name=f"forged{i}", txt=txt))


async def hostile(seconds: float) -> None:
    """Our node under a flood of garbage, forged responses (many instances, oversized TXT
    records) and queries for ``seconds``; then a real peer starts and must still be found."""
    config = MdnsConfig(interval=1.0, max_peers=32, max_addrs=8)
    mdns = Mdns(config)
    async with open_default_host(listen=["/ip4/127.0.0.1/tcp/0"], services=[mdns]) as host:
        node_start = anyio.current_time()
        ids = [str(Identity.generate().peer_id) for _ in range(8)]
        forged = [_forged(i, ids[i % len(ids)]) for i in range(100)]
        junk = [b"", b"\xff" * 100, build_query()[:-1], b"\x00" * 9001, build_query()]
        sent = 0
        async with await anyio.create_udp_socket(
            family=socket.AF_INET, local_host="127.0.0.1", local_port=5353, reuse_port=True
        ) as attacker:
            start = anyio.current_time()
            while anyio.current_time() - start < seconds:
                for data in [*forged[sent % 100 : sent % 100 + 20], *junk]:
                    await attacker.sendto(data, "224.0.0.251", 5353)
                    sent += 1
                await anyio.lowlevel.checkpoint()
        flood_stats = mdns.statistics()
        assert flood_stats is not None
        running = anyio.current_time() - node_start
        peer_mdns = Mdns(MdnsConfig(interval=1.0))
        async with open_default_host(
            listen=["/ip4/127.0.0.1/tcp/0"], services=[peer_mdns]
        ) as peer_host:
            with anyio.fail_after(15):
                found = await first_discovery_of(mdns, str(peer_host.peer_id))
        emit(
            "hostile",
            sent=sent,
            seconds=seconds,
            running=running,
            flood=attrs.asdict(flood_stats),
            found=[str(a) for a in found.addrs],
            peer_addrs=[str(a) for a in peer_host.listen_addrs],
            our_id=str(host.peer_id),
            max_peers=config.max_peers,
        )


async def first_discovery_of(mdns: Mdns, peer_id: str) -> DiscoveredPeer:
    async for peer in mdns.discovered():
        if str(peer.peer_id) == peer_id:
            return peer
    raise AssertionError("discovery ended")


async def lan_node(family: str, namespace: str) -> None:
    """One node of a two-namespace LAN: prints its addresses and the first peer it finds.
    ``ip4``: mDNS over IPv4, listening on every interface (loopback and the link); ``ip6``:
    mDNS over IPv6 only (``ff02::fb`` on the link), listening on ``::``."""
    if family == "ip4":
        mdns, listen = Mdns(MdnsConfig(interval=1.0)), "/ip4/0.0.0.0/tcp/0"
    else:
        (link,) = [name for _, name in socket.if_nameindex() if name != "lo"]
        config = MdnsConfig(interval=1.0)
        mdns, listen = Mdns(config, ipv4=False, ipv6_interface=link), "/ip6/::/tcp/0"
    async with open_default_host(listen=[listen], services=[mdns]) as host:
        addrs = [str(a) for a in host.listen_addrs]
        with anyio.fail_after(20):
            async for peer in mdns.discovered():
                found = {"peer_id": str(peer.peer_id), "addrs": [str(a) for a in peer.addrs]}
                break
        emit("lan", namespace=namespace, peer_id=str(host.peer_id), addrs=addrs, found=found)
        # stay up a little so that the other node also finds us
        await anyio.sleep(3)


def main() -> None:
    name, *args = sys.argv[1:]
    if name == "lan-node":  # in a namespace that linked_namespaces set up
        anyio.run(lan_node, args[0], args[1])
        return
    setup_loopback_multicast()
    if name == "pair":
        interface = args[2] if len(args) > 2 else None
        anyio.run(pair, int(args[0]), interface, backend=args[1])
    elif name == "hostile":
        anyio.run(hostile, float(args[0]))
    else:
        raise SystemExit(f"unknown scenario {name}")


if __name__ == "__main__":
    main()
