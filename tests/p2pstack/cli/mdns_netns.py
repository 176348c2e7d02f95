"""``p2pstack node --mdns`` scenarios run inside a private network namespace by
test_mdns_command.py: ``python -m tests.p2pstack.cli.mdns_netns pair|no-multicast-route``.
Prints one ``result`` JSON line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable

from tests.p2pstack.cli.runner import NodeProcess
from tests.protocols.discovery.mdns.netns import setup_loopback_multicast

#: Seconds a node has to discover the other (both query every second).
DISCOVERY_TIMEOUT = 15.0


def _discovery_of(peer_id: object) -> Callable[[dict[str, object]], bool]:
    return lambda e: e["event"] == "peer:discovery" and e["peer_id"] == peer_id


def pair() -> dict[str, object]:
    """Two nodes with ``--mdns --json``: each prints the other's discovery."""
    setup_loopback_multicast()
    nodes = [NodeProcess(["--json", "--mdns", "--mdns-interval", "1"]) for _ in range(2)]
    try:
        listening = [n.wait_event(lambda e: e["event"] == "listening") for n in nodes]
        found = []
        for node, other in ((nodes[0], listening[1]), (nodes[1], listening[0])):
            found.append(
                node.wait_event(
                    lambda e, o=other: (
                        e["event"] == "peer:discovery"  # type: ignore[misc]  # JSON event fields are untyped
                        and e["peer_id"] == o["peer_id"]
                    ),
                    DISCOVERY_TIMEOUT,
                )
            )
        statuses = [n.stop(signal.SIGTERM) for n in nodes]
        return {
            "listening": listening,
            "found": found,
            "statuses": statuses,
            "stderr": [n.stderr for n in nodes],
        }
    finally:
        for node in nodes:
            node.kill()


def no_multicast_route() -> dict[str, object]:
    """A namespace whose loopback is up but has no multicast route: the socket cannot join."""
    for cmd in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"],
    ):
        subprocess.run(cmd, check=True, capture_output=True, timeout=10)
    node = NodeProcess(["--json", "--mdns"])
    try:
        status = node.proc.wait(30)
    finally:
        node.kill()
    return {"status": status, "stdout": node.lines, "stderr": node.stderr}


def main() -> None:
    scenario = {"pair": pair, "no-multicast-route": no_multicast_route}[sys.argv[1]]
    print(json.dumps({"event": "result", **scenario()}), flush=True)


if __name__ == "__main__":
    main()
