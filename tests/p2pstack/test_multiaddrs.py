from __future__ import annotations

from multiaddr import Multiaddr

from p2pstack.multiaddrs import memory_id


def test_memory_id() -> None:
    peer = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
    assert memory_id(Multiaddr("/memory/42")) == 42
    assert memory_id(Multiaddr(f"/memory/7/p2p/{peer}")) == 7
    assert memory_id(Multiaddr("/ip4/127.0.0.1/tcp/1")) is None
    assert memory_id(Multiaddr(f"/p2p/{peer}")) is None
