"""The relay of the ``nat_traversal`` workload speaks circuit relay v2's messages: a grant is a
hop STATUS OK with a ``Reservation`` (the relay's address with its peer ID) and a ``Limit``; a
full relay answers RESERVATION_REFUSED; a CONNECT to a peer without reservation gets
NO_RESERVATION; a CONNECT to a reserved peer reaches it as a stop CONNECT from the dialer's peer
ID and opens the circuit; a malformed message gets MALFORMED_MESSAGE and the connection ends."""

from __future__ import annotations

import random

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.identity import Identity
from p2pstack.roots.scenarios._nat_node import Circuit, NatNode
from p2pstack.roots.scenarios._nat_relay import FrameReader, Kind, encode
from p2pstack.roots.scenarios._nat_relay_server import RelayServer
from p2pstack.sim import run_virtual
from protocols.relay import HopMessage, HopType, Status, decode_hop, encode_hop
from transports.simnet import Latency, LinkSpec, SimNetwork

PORT = 4002
RELAY = f"/ip4/11.0.0.1/tcp/{PORT}"


def test_reservations_refusals_and_circuits_use_the_relay_v2_messages() -> None:
    ids = {i: Identity.generate().peer_id for i in range(1, 5)}
    stopped: list[Circuit] = []

    async def main() -> None:
        net = SimNetwork(random.Random(0), default_link=LinkSpec(latency=Latency(a=0.01)))
        relay = RelayServer(net, 1, PORT, 1, ids[1])
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(relay.serve, tg)
                await anyio.sleep(0.1)
                nodes = {i: NatNode(net, i, ids[i], PORT, stopped.append) for i in (2, 3, 4)}
                for node in nodes.values():
                    await node.listen(tg)
                assert await nodes[2].reserve([(1, RELAY)], 5.0) == 1
                assert await nodes[3].reserve([(1, RELAY)], 5.0) == 0  # one slot only
                assert nodes[3].links[1].status is Status.RESERVATION_REFUSED
                assert relay.refused == 1 and list(relay.reserved) == [2]
                with pytest.raises(ConnectionError):
                    await nodes[4].open_circuit(1, RELAY, 3, ids[3], 5.0)
                assert nodes[4].circuits[3].status is Status.NO_RESERVATION
                circuit = await nodes[4].open_circuit(1, RELAY, 2, ids[2], 5.0)
                assert circuit.status is Status.OK and [c.peer for c in stopped] == [4]
                await circuit.send(b"hello")
                assert await stopped[0].receive() == b"hello"

                # The grant itself, read off the wire.
                conn = await net.transport(5).dial(Multiaddr(RELAY))
                reader = FrameReader(conn)
                await conn.send(encode(Kind.HELLO, 5, 0, Identity.generate().peer_id.to_bytes()))
                assert (await reader.next())[0] == Kind.OBSERVED
                relay.max_reservations = 2
                await conn.send(
                    encode(Kind.RESERVE, 5, 0, encode_hop(HopMessage(type=HopType.RESERVE)))
                )
                kind, _, _, body = await reader.next()
                grant = decode_hop(body)
                assert kind == Kind.RESERVED and grant.status is Status.OK
                assert grant.reservation is not None and grant.limit is not None
                assert str(grant.reservation.addrs[0]) == f"{RELAY}/p2p/{ids[1]}"
                assert grant.reservation.expire >= 3600 and grant.limit.duration == 120
                # A malformed RESERVE: MALFORMED_MESSAGE, then the relay closes.
                await conn.send(encode(Kind.RESERVE, 5, 0, b"\xff\xff"))
                kind, _, _, body = await reader.next()
                assert decode_hop(body).status is Status.MALFORMED_MESSAGE
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await reader.next()
                tg.cancel_scope.cancel()

    run_virtual(main)
