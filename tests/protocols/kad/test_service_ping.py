"""The ``Kad`` service's liveness pings take their payloads from ``random_bytes`` (so that a
simulation can seed them), and the kad simulation workload passes a seeded source per node."""

from __future__ import annotations

from typing import Any, cast

import anyio
import attrs
import pytest

from p2pstack.builder import open_host
from p2pstack.host import Stream
from p2pstack.identity import Identity
from p2pstack.interfaces import Service
from p2pstack.roots.scenarios._kad import KadLookupsConfig, KadNodes
from p2pstack.roots.scenarios._workload import NodeInfo, SimContext
from p2pstack.sim import SeededRandom
from protocols.identify import Identify
from protocols.kad import Kad
from protocols.ping import Ping
from tests.protocols.kad._network import TEST_CONFIG, connect_until_in_table, kad
from tests.protocols.kad.test_service_modes import _same_bucket_identities
from transports.memory import MemoryNetwork, MemoryTransport
from transports.plaintext import Plaintext
from transports.yamux import Yamux

PING = "/ipfs/ping/1.0.0"


class Payloads:
    """A ``random_bytes`` source that remembers what it gave."""

    def __init__(self) -> None:
        self.given: list[bytes] = []
        self._counter = 0

    def __call__(self, size: int) -> bytes:
        self._counter += 1
        data = bytes([self._counter]) * size
        self.given.append(data)
        return data


@pytest.mark.anyio
async def test_liveness_pings_carry_payloads_from_random_bytes() -> None:
    config = attrs.evolve(TEST_CONFIG, k=1, liveness_timeout=2.0)
    local = Identity.generate()
    old, new = _same_bucket_identities(local)
    net = MemoryNetwork()
    payloads = Payloads()
    received: list[bytes] = []
    pinged = anyio.Event()

    async def recording_ping(stream: Stream) -> None:
        data = b""
        while len(data) < 32:
            data += await stream.receive(32 - len(data))
        received.append(data)
        await stream.send(data)  # alive: the old peer keeps its place
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()
        await stream.aclose()
        pinged.set()

    def host(identity: Identity, services: list[Service]) -> Any:
        return open_host(
            identity=identity,
            transports=[MemoryTransport(net)],
            security=[Plaintext()],
            muxers=[Yamux()],
            services=[Identify(), *services],
            listen=["/memory/0"],
        )

    async with (
        host(local, [Ping(), Kad(config, random_bytes=payloads)]) as a,
        host(old, [Kad(TEST_CONFIG)]) as b,
        host(new, [Ping(), Kad(TEST_CONFIG)]) as c,
    ):
        b.set_stream_handler(PING, recording_ping)
        with anyio.fail_after(20):
            await connect_until_in_table(a, b)
            await c.connect(a.addrs[0])
            await pinged.wait()
        assert received == payloads.given == [bytes([1]) * 32]
        assert list(kad(a).routing_table.peers()) == [old.peer_id]
        assert kad(a).statistics().liveness_checks == 1


def _payload(nodes: KadNodes, index: int, generation: int = 0) -> bytes:
    rng = SeededRandom(11, f"node/{index}/{generation}")
    (service,) = nodes.services(NodeInfo(index=index, generation=generation, rng=rng))
    assert isinstance(service, Kad)
    return service._random_bytes(32)


def test_the_kad_workload_seeds_each_nodes_liveness_pings() -> None:
    sim = cast("SimContext", attrs.make_class("Sim", ["rng"])(SeededRandom(11)))
    nodes = KadNodes(KadLookupsConfig(), sim)
    first = _payload(nodes, 3)
    assert first == _payload(KadNodes(KadLookupsConfig(), sim), 3)  # same seed, same bytes
    assert first != _payload(nodes, 4)
