"""Our mDNS service over real multicast sockets, inside a private network namespace."""

from __future__ import annotations

import pytest

from tests.protocols.discovery.mdns.netns import netns_available, run_in_netns

pytestmark = pytest.mark.skipif(not netns_available(), reason="needs root for unshare -n")


def test_three_nodes_on_one_host_find_each_other() -> None:
    events = run_in_netns("tests.protocols.discovery.mdns.scenarios", "pair", "3", timeout=60)
    nodes = {e["peer_id"]: e["addrs"] for e in events if e["event"] == "node"}
    found = {e["node"]: e["peers"] for e in events if e["event"] == "found"}
    assert len(nodes) == 3
    assert set(found) == set(nodes)
    for node, peers in found.items():
        # each node found the two others, at exactly the addresses they listen on
        assert peers == {pid: addrs for pid, addrs in nodes.items() if pid != node}
