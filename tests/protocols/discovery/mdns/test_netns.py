"""Our mDNS service over real multicast sockets, inside a private network namespace."""

from __future__ import annotations

import pytest

from tests.protocols.discovery.mdns.netns import (
    linked_namespaces,
    netns_available,
    run_in_named_netns,
    run_in_netns,
)

SCENARIOS = "tests.protocols.discovery.mdns.scenarios"
pytestmark = pytest.mark.skipif(not netns_available(), reason="needs root for unshare -n")


@pytest.mark.parametrize(
    ("backend", "interface"),
    [("asyncio", ()), ("trio", ()), ("asyncio", ("127.0.0.1",))],
    ids=["asyncio", "trio", "interface-given"],
)
def test_three_nodes_on_one_host_find_each_other(backend: str, interface: tuple[str]) -> None:
    events = run_in_netns(SCENARIOS, "pair", "3", backend, *interface, timeout=60)
    nodes = {e["peer_id"]: e["addrs"] for e in events if e["event"] == "node"}
    found = {e["node"]: e["peers"] for e in events if e["event"] == "found"}
    assert len(nodes) == 3
    assert events[-1] == {"event": "ended"}  # discovered() ends once the host closed
    assert set(found) == set(nodes)
    for node, peers in found.items():
        # each node found the two others, at exactly the addresses they listen on
        assert peers == {pid: addrs for pid, addrs in nodes.items() if pid != node}


def test_a_flood_of_garbage_and_forged_responses_leaves_the_node_bounded_and_working() -> None:
    (result,) = run_in_netns(SCENARIOS, "hostile", "3", timeout=60)
    flood = result["flood"]
    assert flood["malformed"] > 0 and flood["discoveries"] > result["max_peers"]
    assert flood["peers"] <= result["max_peers"]
    # at most one multicast response per second (the 1 s rule) since the node started; the
    # flood holds a query in every batch of 25 datagrams, so without the rule there would be
    # one response per query read (dozens)
    assert flood["responses_sent"] <= result["running"] + 2  # (+1 for the start, +1 slack)
    # and a real peer that starts afterwards is still found, at its address
    assert result["found"] == result["peer_addrs"]


def test_two_hosts_on_a_link_exchange_only_link_addresses() -> None:
    with linked_namespaces() as names:
        results = run_in_named_netns(names, SCENARIOS, "lan-node", "ip4", timeout=60)
    (a,), (b,) = results
    for me, other, prefix in ((a, b, "/ip4/10.77.0.2/"), (b, a, "/ip4/10.77.0.1/")):
        assert any(x.startswith("/ip4/127.0.0.1/") for x in other["addrs"])  # it listens there
        assert me["found"]["peer_id"] == other["peer_id"]
        # but loopback is not announced across the link: only its link address
        assert me["found"]["addrs"] == [x for x in other["addrs"] if x.startswith(prefix)]


def test_ipv6_only_over_ff02_fb_on_a_link() -> None:
    with linked_namespaces() as names:
        results = run_in_named_netns(names, SCENARIOS, "lan-node", "ip6", timeout=60)
    (a,), (b,) = results
    for me, other, prefix in ((a, b, "/ip6/fd77::2/"), (b, a, "/ip6/fd77::1/")):
        assert any(x.startswith("/ip6/::1/") for x in other["addrs"])  # it listens there
        assert me["found"]["peer_id"] == other["peer_id"]
        assert me["found"]["addrs"] == [x for x in other["addrs"] if x.startswith(prefix)]
