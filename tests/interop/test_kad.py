"""Kademlia DHT (/ipfs/kad/1.0.0) against js-libp2p (@libp2p/kad-dht) and py-libp2p (KadDHT),
both directions: records, provider records, peer routing, routing tables, and one mixed network
of js, py and p2pstack nodes.

Each remote kind gets one small network for the whole module (two of its nodes, then p2pstack
joining through the second), so the processes start once per kind and backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import attrs
import pytest

from tests.interop.kad_nodes import (
    OurNode,
    RemoteNode,
    eventually_contains,
    make_cid,
    open_ours,
    open_remote,
    strip_p2p,
)
from tests.interop.peers import PEERS

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Module scope, so that one network of processes serves all tests of a backend."""
    backend: str = request.param
    return backend


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kad-peers")


@attrs.frozen
class PairNet:
    """``first`` <- ``second`` (same remote kind) <- ``ours``; before ``ours`` joined, ``first``
    put ``their_key`` and provided ``their_cid``, so only remote nodes hold those."""

    kind: str
    first: RemoteNode
    second: RemoteNode
    ours: OurNode
    their_key: str
    their_value: str
    their_cid: tuple[str, bytes]


@pytest.fixture(scope="module", params=PEERS)
async def net(
    request: pytest.FixtureRequest, anyio_backend: str, log_dir: Path
) -> AsyncIterator[PairNet]:
    kind: str = request.param
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(open_remote(kind, [], log_dir=log_dir))
        second = await stack.enter_async_context(open_remote(kind, [first.addr], log_dir=log_dir))
        await second.command("bootstrap")
        await eventually_contains(first, second.peer_id)
        key, value = f"/test/theirs-{kind}-{anyio_backend}", f"put-by-{kind}"
        await first.put(key, value)
        cid = make_cid(f"provided by {kind} {anyio_backend}".encode())
        await first.provide(*cid)
        ours = await stack.enter_async_context(open_ours([second.addr]))
        yield PairNet(kind, first, second, ours, key, value, cid)


async def test_routing_tables_hold_each_other(net: PairNet) -> None:
    # js adds a peer once identify lists /ipfs/kad/1.0.0; py once it opens a kad stream to it.
    await eventually_contains(net.ours, net.second.peer_id)
    await eventually_contains(net.second, net.ours.peer_id)
    # ours learned `first` from `second`'s FIND_NODE answer and queried it: both directions too.
    await eventually_contains(net.ours, net.first.peer_id)
    await eventually_contains(net.first, net.ours.peer_id)


async def test_we_get_their_record(net: PairNet) -> None:
    assert await net.ours.get(net.their_key) == net.their_value


async def test_they_get_our_record(net: PairNet) -> None:
    key, value = f"/test/ours-for-{net.kind}", "put-by-p2pstack"
    await net.ours.put(key, value)
    assert await net.first.get(key) == value
    assert await net.second.get(key) == value


async def test_they_put_to_us(net: PairNet) -> None:
    key, value = f"/test/theirs-to-ours-{net.kind}", f"put-by-{net.kind}-to-p2pstack"
    reply = await net.second.command(f"put {key} {value}")
    # js checks that each PUT_VALUE answer echoes the record (py does not say).
    assert [e for e in reply.get("errors", []) if e["peer_id"] == net.ours.peer_id] == []
    stored = net.ours.kad.records.get(key.encode(), anyio.current_time())
    assert stored is not None
    assert stored.value == value.encode()


async def test_we_find_their_provider(net: PairNet) -> None:
    found = await net.ours.find_providers(*net.their_cid)
    assert net.first.peer_id in found, found
    assert strip_p2p(net.first.addr) in {strip_p2p(a) for a in found[net.first.peer_id]}


async def test_they_find_our_provider(net: PairNet) -> None:
    cid = make_cid(f"provided by p2pstack for {net.kind}".encode())
    await net.ours.provide(*cid)
    for node in (net.first, net.second):
        found = await node.find_providers(*cid)
        assert net.ours.peer_id in found, (node.name, found)
        assert strip_p2p(net.ours.addr) in {strip_p2p(a) for a in found[net.ours.peer_id]}


async def test_we_find_a_peer_only_they_know(net: PairNet) -> None:
    # A fresh p2pstack node in client mode that knows only `second` looks up `first`.
    async with open_ours([], mode="client", name="finder") as finder:
        await finder.host.connect(net.second.addr)
        await eventually_contains(finder, net.second.peer_id)
        assert net.first.peer_id not in await finder.table()
        addrs = await finder.find_peer(net.first.peer_id)
        if net.kind == "js":
            # A client does not list /ipfs/kad/1.0.0 in identify, so js keeps it out of its
            # table (py adds whoever opens a kad stream, client or not).
            assert finder.peer_id not in await net.second.table()
            assert finder.peer_id not in await net.first.table()
    assert addrs is not None
    assert strip_p2p(net.first.addr) in {strip_p2p(a) for a in addrs}


async def test_they_find_a_peer_only_we_know(net: PairNet) -> None:
    # `hidden` connects to ours only and runs no lookup: only ours has it in its table.
    async with open_ours([], name="hidden") as hidden:
        await hidden.host.connect(net.ours.addr)
        await eventually_contains(net.ours, hidden.peer_id)
        await eventually_contains(net.first, net.ours.peer_id)
        addrs = await net.first.find_peer(hidden.peer_id)
    assert addrs is not None, f"{net.kind} did not find the peer"
    assert strip_p2p(hidden.addr) in {strip_p2p(a) for a in addrs}


async def test_nothing_they_sent_was_rejected(net: PairNet) -> None:
    """Runs after the others of its network: every message and record from js or py decoded
    and validated here, and no inbound stream hit a limit."""
    stats = net.ours.kad.statistics()
    assert stats.inbound_requests > 0
    assert (stats.inbound_bad, stats.inbound_rejected, stats.bad_values) == (0, 0, 0), stats
