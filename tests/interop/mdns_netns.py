"""mDNS interop scenario, run inside a private network namespace by test_mdns.py:
``python -m tests.interop.mdns_netns js|py we-first|they-first LOG_DIR``. Our node and the peer
(both with mDNS; ours and js query every second) must discover each other; prints one
``result`` JSON line (without ``we_found`` / ``they_found`` for a side that did not)."""

from __future__ import annotations

import json
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path

import anyio

from p2pstack.host import Host
from p2pstack.roots.defaults import default_services, open_default_host
from protocols.discovery.mdns import Mdns, MdnsConfig
from tests.interop.peers import PeerProcess, run_peer
from tests.protocols.discovery.mdns.netns import setup_loopback_multicast

Result = dict[str, object]
#: Seconds each side has to discover the other (both query every second).
DISCOVERY_TIMEOUT = 15.0


async def _they_find(remote: PeerProcess, our_id: str) -> list[str]:
    # py-libp2p may report its discovery before it reports listening: look at past events too
    for event in remote.events:
        if event.get("event") == "peer:discovery" and event["peer_id"] == our_id:
            return [str(a) for a in event["addrs"]]
    while True:
        event = await remote.wait_for("peer:discovery", DISCOVERY_TIMEOUT + 1)
        if event["peer_id"] == our_id:
            return [str(a) for a in event["addrs"]]


async def scenario(kind: str, order: str, log_dir: Path) -> None:
    args = ["--listen", "/ip4/127.0.0.1/tcp/0", "--mdns"]
    if kind == "js":  # zeroconf (py) has no query interval setting: it backs off by itself
        args += ["--mdns-interval", "1"]
    async with AsyncExitStack() as stack:
        remote: PeerProcess | None = None
        if order == "they-first":
            remote = await stack.enter_async_context(run_peer(kind, args, log_dir=log_dir))
            await remote.wait_for("listening", 30)
        mdns = Mdns(MdnsConfig(interval=1.0))
        services = [*default_services(), mdns]  # py dials what it discovers, then identifies
        host = await stack.enter_async_context(
            open_default_host(listen=["/ip4/127.0.0.1/tcp/0"], services=services)
        )
        if remote is None:
            remote = await stack.enter_async_context(run_peer(kind, args, log_dir=log_dir))
            await remote.wait_for("listening", 30)
        # times are from the moment both listen (a find before that counts as 0)
        result = await discover_both(host, mdns, remote, time.monotonic())
        print(json.dumps(result), flush=True)


async def discover_both(host: Host, mdns: Mdns, remote: PeerProcess, start: float) -> Result:
    listening = next(e for e in remote.events if e.get("event") == "listening")
    their_id, our_id = listening["peer_id"], str(host.peer_id)
    result: Result = {
        "event": "result",
        "our_id": our_id,
        "our_addrs": [str(a) for a in host.listen_addrs],
        "their_id": their_id,
        "their_addrs": listening["addrs"],
    }

    async def we_find() -> None:
        async for peer in mdns.discovered():
            if str(peer.peer_id) == their_id:
                result["we_found"] = [str(a) for a in peer.addrs]
                result["we_found_s"] = round(max(0.0, time.monotonic() - start), 3)
                return

    async def they_find() -> None:
        result["they_found"] = await _they_find(remote, our_id)
        result["they_found_s"] = round(max(0.0, time.monotonic() - start), 3)

    # On timeout the result lacks the side that failed; the test says which.
    with anyio.move_on_after(DISCOVERY_TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(we_find)
            tg.start_soon(they_find)
    result["stats"] = str(mdns.statistics())
    return result


def main() -> None:
    setup_loopback_multicast()
    kind, order, log_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    anyio.run(scenario, kind, order, log_dir)


if __name__ == "__main__":
    main()
