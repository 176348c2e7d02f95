"""The DCUtR service between two hosts on loopback: the exchange runs over a limited (relayed
stand-in) memory connection, the direct connection is TCP or QUIC on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from multiaddr import Multiaddr

from p2pstack.builder import open_host
from p2pstack.connection import Connection
from p2pstack.errors import NETWORK_ERRORS
from p2pstack.events import ConnectionClosed
from p2pstack.framing import encode_lp
from p2pstack.host import Host, Stream
from p2pstack.identity import PeerId
from p2pstack.interfaces import Role
from protocols.dcutr import (
    PROTOCOL_ID,
    Dcutr,
    DcutrMessage,
    HolePunchFinished,
    MessageType,
    PunchSockets,
    encode_body,
    encode_message,
)
from transports.memory import MemoryNetwork, UpgradedMemoryTransport
from transports.noise import Noise
from transports.quic import QuicTransport, open_udp_socket
from transports.tcp import TcpTransport
from transports.yamux import Yamux


@asynccontextmanager
async def dcutr_host(
    net: MemoryNetwork, kind: str, *, allow_private: bool = True, **kwargs: object
) -> AsyncIterator[Host]:
    sockets = PunchSockets(open_udp_socket)
    listen = ["/memory/0"]
    if kind == "tcp":
        listen.append("/ip4/127.0.0.1/tcp/0")
    else:
        listen.append("/ip4/127.0.0.1/udp/0/quic-v1")
    async with open_host(
        transports=[
            TcpTransport(port_reuse=True),
            QuicTransport(socket_factory=sockets),
            UpgradedMemoryTransport(net, limited=True),
        ],
        security=[Noise()],
        muxers=[Yamux()],
        services=[
            Dcutr(
                allow_private_addresses=allow_private,
                udp_punch=sockets.punch,
                **{"attempt_timeout": 3.0, **kwargs},  # type: ignore[arg-type]  # test knobs, checked by Dcutr itself
            )
        ],
        listen=listen,
    ) as host:
        yield host


class Outcomes:
    """Records a host's ``HolePunchFinished`` events from the moment it is made."""

    def __init__(self, host: Host) -> None:
        self.got: list[HolePunchFinished] = []
        self.arrived = anyio.Event()
        host.events.on(HolePunchFinished, self._on)

    def _on(self, ev: HolePunchFinished) -> None:
        self.got.append(ev)
        self.arrived.set()

    async def first(self) -> HolePunchFinished:
        with anyio.fail_after(20):
            await self.arrived.wait()
        return self.got[0]


def memory_addr(host: Host) -> Multiaddr:
    return next(a for a in host.addrs if "/memory/" in str(a))


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["tcp", "quic"])
async def test_relayed_connection_upgraded_to_direct(kind: str) -> None:
    net = MemoryNetwork()
    async with dcutr_host(net, kind) as a, dcutr_host(net, kind) as b:
        out_a, out_b = Outcomes(a), Outcomes(b)
        closed = anyio.Event()

        def on_closed(ev: ConnectionClosed) -> None:
            if ev.connection.limited:
                closed.set()

        a.events.on(ConnectionClosed, on_closed)
        with anyio.fail_after(10):
            relayed = await a.connect(memory_addr(b))  # A dials "through the relay"
        assert relayed.limited
        res_b = await out_b.first()
        res_a = await out_a.first()
        assert res_b.role == "initiator" and res_a.role == "responder"
        assert res_b.outcome == "direct", res_b.reason
        assert res_b.attempts == 1
        assert res_b.rtt is not None and 0 < res_b.rtt < 5
        assert res_b.transport == ("tcp" if kind == "tcp" else "quic-v1")
        assert res_b.connection is not None and not res_b.connection.limited
        # The relayed connection drains and closes; the direct one remains.
        with anyio.fail_after(15):
            await closed.wait()
        assert relayed.is_closed
        assert all(not c.limited for c in a.connections(b.peer_id))
        assert a.connections(b.peer_id)


@pytest.mark.anyio
async def test_loopback_addresses_not_dialed_by_default() -> None:
    net = MemoryNetwork()
    async with (
        dcutr_host(net, "tcp", allow_private=False) as a,
        dcutr_host(net, "tcp", allow_private=False) as b,
    ):
        dialed: list[Multiaddr] = []
        original = b.dial_direct

        async def spy(peer: PeerId, addr: Multiaddr, *, role: Role = "initiator") -> Connection:
            dialed.append(addr)
            return await original(peer, addr, role=role)

        b.dial_direct = spy  # type: ignore[method-assign]  # a spy replaces the method
        out_b = Outcomes(b)
        with anyio.fail_after(10):
            await a.connect(memory_addr(b))
        res = await out_b.first()
        assert res.outcome == "failed"
        assert "no dialable address" in res.reason
        assert dialed == []
        assert all(c.limited for c in b.connections(a.peer_id))


@pytest.mark.anyio
@pytest.mark.parametrize(
    "reply",
    [
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # broken varint
        encode_lp(b"\x08\xac\x02"),  # SYNC instead of CONNECT
        b"\x81\x40" + b"x" * 64,  # announces 8193 bytes
        encode_lp(b"\x12\x02\xff\xff"),  # no type
    ],
    ids=["varint", "sync-first", "oversized", "no-type"],
)
async def test_bad_answers_fail_cleanly(reply: bytes) -> None:
    net = MemoryNetwork()
    async with dcutr_host(net, "tcp", auto=False) as a, dcutr_host(net, "tcp", auto=False) as b:

        async def bad(stream: Stream) -> None:
            await stream.receive()
            await stream.send(reply)
            with anyio.move_on_after(5):
                await stream.receive()

        a.set_stream_handler(PROTOCOL_ID, bad, replace=True, allow_limited=True)
        conn = await b.connect(memory_addr(a))
        with anyio.fail_after(15):
            res = await b.service(Dcutr).upgrade(conn)
        assert res.outcome == "failed"
        assert "ProtocolError" in res.reason or "MessageError" in res.reason
        assert res.attempts == 1
        assert len(b.connections(a.peer_id)) == 1  # nothing was dialed


@pytest.mark.anyio
async def test_responder_resets_garbage_and_stays_up() -> None:
    net = MemoryNetwork()
    async with dcutr_host(net, "tcp", auto=False) as a, dcutr_host(net, "tcp", auto=False) as b:
        conn = await b.connect(memory_addr(a))
        out_a = Outcomes(a)
        with anyio.fail_after(15):
            stream = await conn.new_stream([PROTOCOL_ID])
            await stream.send(encode_lp(b"\x08\xac\x02"))  # SYNC before CONNECT
            with pytest.raises(NETWORK_ERRORS):  # reset by A
                await stream.receive()
        res = await out_a.first()
        assert res.outcome == "failed" and "UnexpectedMessageError" in res.reason
        # A still serves a proper exchange afterwards.
        stream = await conn.new_stream([PROTOCOL_ID])
        await stream.aclose()


@pytest.mark.anyio
async def test_responder_never_dials_private_addresses_from_the_peer() -> None:
    net = MemoryNetwork()
    async with (
        dcutr_host(net, "tcp", allow_private=False, auto=False, attempt_timeout=0.5) as a,
        dcutr_host(net, "tcp", auto=False) as b,
    ):
        dialed: list[Multiaddr] = []

        async def spy(peer: PeerId, addr: Multiaddr, *, role: Role = "initiator") -> Connection:
            dialed.append(addr)
            raise AssertionError("dialed")

        a.dial_direct = spy  # type: ignore[method-assign]  # a spy replaces the method
        out_a = Outcomes(a)
        bogus = [
            "/ip4/127.0.0.1/tcp/1",
            "/ip4/10.1.2.3/tcp/4001",
            "/ip4/192.168.0.1/udp/4001/quic-v1",
            "/ip6/::1/tcp/1",
            "/ip4/0.0.0.0/tcp/1",
            "/ip4/224.0.0.1/udp/1/quic-v1",
            "/dns4/localhost/tcp/1",
        ]
        connect = DcutrMessage(MessageType.CONNECT, tuple(Multiaddr(x) for x in bogus))
        conn = await b.connect(memory_addr(a))
        with anyio.fail_after(15):
            stream = await conn.new_stream([PROTOCOL_ID])
            # ... and an ObsAddrs entry that is no multiaddr at all
            await stream.send(encode_lp(encode_body(connect) + b"\x12\x09garbage!!"))
            await stream.receive()  # A's CONNECT
            await stream.send(encode_message(DcutrMessage(MessageType.SYNC)))
            await stream.send_eof()
            res = await out_a.first()
        assert res.outcome == "failed" and res.role == "responder"
        assert dialed == []


@pytest.mark.anyio
async def test_one_inbound_exchange_per_peer() -> None:
    net = MemoryNetwork()
    async with dcutr_host(net, "tcp", auto=False) as a, dcutr_host(net, "tcp", auto=False) as b:
        conn = await b.connect(memory_addr(a))
        with anyio.fail_after(15):
            first = await conn.new_stream([PROTOCOL_ID])
            with pytest.raises(NETWORK_ERRORS):  # reset: over the per-peer limit
                second = await conn.new_stream([PROTOCOL_ID])
                await second.send(encode_message(DcutrMessage(MessageType.SYNC)))
                await second.receive()
            await first.send(encode_message(DcutrMessage(MessageType.CONNECT, ())))
            answer = await first.receive()
        assert answer[1:3] == b"\x08\x64"  # the first exchange is served: A's CONNECT


@pytest.mark.anyio
async def test_unilateral_upgrade_when_the_peer_is_reachable() -> None:
    net = MemoryNetwork()
    async with dcutr_host(net, "tcp") as a, dcutr_host(net, "tcp") as b:
        # As identify would have told B: A's TCP listen address.
        tcp = next(x for x in a.listen_addrs if "/tcp/" in str(x))
        b.peerstore.add_addrs(a.peer_id, [tcp], 600)
        out_a, out_b = Outcomes(a), Outcomes(b)
        with anyio.fail_after(10):
            await a.connect(memory_addr(b))
        res = await out_b.first()
        assert res.outcome == "direct" and res.attempts == 0  # no hole punch was needed
        assert res.connection is not None and res.connection.direction == "outbound"
        assert out_a.got == []  # A never saw a DCUtR stream


@pytest.mark.anyio
async def test_auto_upgrades_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    from protocols.dcutr import _service

    monkeypatch.setattr(_service, "MAX_CONCURRENT_UPGRADES", 1)
    net = MemoryNetwork()
    async with (
        dcutr_host(net, "tcp") as a,
        dcutr_host(net, "tcp") as c,
        dcutr_host(net, "tcp") as b,
    ):
        # B's exchange with A hangs (A's handler never answers): B is busy, C stays relayed.
        stalled = anyio.Event()

        async def silent(stream: Stream) -> None:
            stalled.set()
            await anyio.sleep(30)

        a.set_stream_handler(PROTOCOL_ID, silent, replace=True, allow_limited=True)
        out_b = Outcomes(b)
        with anyio.fail_after(10):
            await a.connect(memory_addr(b))
            await stalled.wait()
            relayed = await c.connect(memory_addr(b))
        with anyio.move_on_after(1.5):
            await out_b.arrived.wait()
        assert out_b.got == []
        assert relayed.limited and not relayed.is_closed
        assert all(conn.limited for conn in b.connections(c.peer_id))


@pytest.mark.anyio
async def test_peer_connection_that_lost_to_a_direct_carrier_counts() -> None:
    """js-libp2p as A over a direct carrier: A's dial can finish before B's dial step (B waits
    half a round trip), and at B the new connection loses the keep rule to the carrier (B dialed
    it and B's ID sorts lower); A closes the carrier a moment later. That is one attempt."""
    net = MemoryNetwork()
    async with (
        dcutr_host(net, "tcp", auto=False, unilateral_first=False) as x,
        dcutr_host(net, "tcp", auto=False, unilateral_first=False) as y,
    ):
        b, a = sorted((x, y), key=lambda h: h.peer_id.to_bytes())  # B's dial wins at both ends
        a_tcp = next(addr for addr in a.listen_addrs if "/tcp/" in str(addr))
        b_tcp = next(addr for addr in b.listen_addrs if "/tcp/" in str(addr))
        carrier = await b.connect(a_tcp)
        assert not carrier.limited

        async def scripted_a(stream: Stream) -> None:
            await stream.receive()  # B's CONNECT
            dialed = await a.dial_direct(b.peer_id, b_tcp)
            assert dialed.draining  # lost to the carrier at A as well
            await stream.send(encode_message(DcutrMessage(MessageType.CONNECT, (a_tcp,))))
            await stream.receive()  # SYNC
            await anyio.sleep(1.0)  # B's dial step has begun
            for conn in a.connections(b.peer_id):
                if conn.draining is False and conn is not dialed:
                    await conn.aclose()  # the carrier, as js closes it

        carrier_closed = anyio.Event()

        def on_closed(ev: ConnectionClosed) -> None:
            if ev.connection is carrier:
                carrier_closed.set()

        b.events.on(ConnectionClosed, on_closed)
        a.set_stream_handler(PROTOCOL_ID, scripted_a, replace=True)
        with anyio.fail_after(15):
            res = await b.service(Dcutr).upgrade(carrier)
        assert res.outcome == "direct", res.reason
        assert res.attempts == 1
        with anyio.fail_after(10):
            await carrier_closed.wait()
        (left,) = b.connections(a.peer_id)  # the loser was kept once the carrier closed
        assert left.direction == "inbound" and not left.draining
