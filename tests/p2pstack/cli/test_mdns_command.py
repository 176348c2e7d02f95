"""``p2pstack node --mdns``: two nodes in a private network namespace print each other's
``peer:discovery``; a namespace without a multicast route gives a one-line error."""

from __future__ import annotations

import pytest

from tests.p2pstack.cli.runner import run_cli
from tests.protocols.discovery.mdns.netns import netns_available, run_in_netns

netns = pytest.mark.skipif(not netns_available(), reason="needs root for unshare -n")
SCENARIOS = "tests.p2pstack.cli.mdns_netns"


@netns
def test_two_nodes_print_each_others_discovery() -> None:
    (result,) = run_in_netns(SCENARIOS, "pair", timeout=90)
    first, second = result["listening"]
    found_by_first, found_by_second = result["found"]
    assert found_by_first["peer_id"] == second["peer_id"]
    assert found_by_second["peer_id"] == first["peer_id"]
    for found, other in ((found_by_first, second), (found_by_second, first)):
        assert found["source"] == "mdns"
        assert found["addrs"] == [a.split("/p2p/")[0] for a in other["addrs"]]
        assert set(found) == {"event", "peer_id", "addrs", "source"}
    assert result["statuses"] == [0, 0]
    assert result["stderr"] == ["", ""]


@netns
def test_no_multicast_route_is_a_one_line_error() -> None:
    (result,) = run_in_netns(SCENARIOS, "no-multicast-route", timeout=60)
    assert result["status"] == 1
    assert result["stdout"] == []
    lines = result["stderr"].splitlines()
    assert len(lines) == 1 and "Traceback" not in result["stderr"], result["stderr"]
    assert lines[0].startswith("p2pstack: error: mDNS: cannot open a multicast socket"), lines


@pytest.mark.parametrize("value", ["0", "-1", "soon", "1e9"])
def test_bad_mdns_interval_is_a_usage_error(value: str) -> None:
    result = run_cli("node", "--mdns", "--mdns-interval", value)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith(
        "p2pstack node: error: argument --mdns-interval"
    )
