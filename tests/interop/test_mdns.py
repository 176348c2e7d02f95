"""mDNS discovery with js-libp2p (@libp2p/mdns 12.0.32) and py-libp2p 0.8.1 (zeroconf), both
ways and in both start orders, each run inside its own network namespace (``unshare -n``): our
node finds the peer and the peer finds our node, at the addresses each listens on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.peers import PEERS
from tests.protocols.discovery.mdns.netns import netns_available, run_in_netns

pytestmark = pytest.mark.skipif(not netns_available(), reason="needs root for unshare -n")


def _strip(addrs: list[str]) -> list[str]:
    return [a.split("/p2p/", 1)[0] for a in addrs]


@pytest.mark.parametrize("order", ["we-first", "they-first"])
@pytest.mark.parametrize("kind", PEERS)
def test_discovery_both_ways(kind: str, order: str, tmp_path: Path) -> None:
    (result,) = run_in_netns("tests.interop.mdns_netns", kind, order, str(tmp_path), timeout=60)
    logs = {p.name: p.read_text(errors="replace")[-2000:] for p in tmp_path.iterdir()}
    assert "we_found" in result, f"we did not discover the {kind} peer: {result} {logs}"
    assert "they_found" in result, f"the {kind} peer did not discover us: {result} {logs}"
    assert result["we_found"] == _strip(result["their_addrs"])
    assert result["they_found"] == result["our_addrs"]
