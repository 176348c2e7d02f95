"""A mixed Kademlia DHT network: js-libp2p, py-libp2p and p2pstack nodes, two of each, joined
in a chain; every value put by any node is read by every other node.

One anyio backend: the wire is the same on both, and test_kad.py runs the pairwise tests on
both (this network of six nodes is the costliest interop test).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import anyio
import pytest

from tests.interop.kad_nodes import DhtNode, open_nodes

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


async def test_mixed_network(anyio_backend: str, tmp_path: Path) -> None:
    """js, py, p2pstack, js, py, p2pstack, each joined through the one before: a value put by
    any node is read by every other node."""
    kinds = ["js", "py", "ours"] * 2
    async with open_nodes(kinds, log_dir=tmp_path) as nodes:
        for previous, node in itertools.pairwise(nodes):
            await node.join(previous.addr)
        for i, node in enumerate(nodes):
            await node.put(f"/test/mixed-{anyio_backend}-{i}", f"value-{i}-from-{node.name}")
        missed: list[str] = []

        async def read_all(reader: DhtNode) -> None:
            for i, writer in enumerate(nodes):
                if reader is not writer:
                    got = await reader.get(f"/test/mixed-{anyio_backend}-{i}")
                    if got != f"value-{i}-from-{writer.name}":
                        missed.append(f"{reader.name} read {got!r} for {writer.name}'s value {i}")

        async with anyio.create_task_group() as tg:
            for reader in nodes:
                tg.start_soon(read_all, reader)
        assert not missed, missed
