"""One p2pstack node of the NAT hole-punching tests, run inside its namespace behind a NAT:
``python -m tests.protocols.dcutr.netns_peer listen|dial SPLICER_IP KIND [PEER_ID]``.

Both listen on TCP 4001 (port reuse) and QUIC 4001. ``listen`` (the spec's B) waits at the
splicer; ``dial`` (A) connects to B through it. The limited spliced connection starts DCUtR (B
initiates); the addresses offered are the ones the splicer observed, of transport KIND
(``tcp`` or ``quic``). Prints JSON lines: ``ready`` (B, with its peer ID), ``holepunch`` (the
outcome, the direct connection's remote address), ``ping`` (B: a ping over the direct
connection); then runs until stdin closes.
"""

from __future__ import annotations

import json
import sys
import time

import anyio
from multiaddr import Multiaddr

from p2pstack.builder import open_host
from p2pstack.events import ConnectionClosed
from p2pstack.host import Host
from p2pstack.identity import PeerId
from protocols.dcutr import Dcutr, HolePunchFinished, PunchSockets
from protocols.ping import Ping
from tests.protocols.dcutr.splice import SpliceTransport
from transports.noise import Noise
from transports.quic import QuicTransport, open_udp_socket
from transports.tcp import TcpTransport
from transports.yamux import Yamux

PORT = 4001
SPLICE_PORT = 7000


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def local_ip() -> str:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.254", 9))  # no packet is sent: picks the source address
        return str(s.getsockname()[0])


async def main(mode: str, splicer: str, kind: str, peer: str | None) -> None:
    ip = local_ip()
    sockets = PunchSockets(open_udp_socket)
    splice = SpliceTransport("b", (ip, PORT), sockets.punch)

    def offered() -> list[Multiaddr]:
        obs = splice.observed
        if kind == "tcp":
            return [Multiaddr(f"/ip4/{obs.ip}/tcp/{obs.tcp_port}")]
        return [Multiaddr(f"/ip4/{obs.ip}/udp/{obs.udp_port}/quic-v1")]

    dcutr = Dcutr(
        address_source=offered,
        allow_private_addresses=True,  # the test network uses private ranges only
        udp_punch=sockets.punch,
        attempt_timeout=2.0,
    )
    relay_addr = f"/ip4/{splicer}/tcp/{SPLICE_PORT}/p2p-circuit"
    async with open_host(
        transports=[TcpTransport(port_reuse=True), QuicTransport(socket_factory=sockets), splice],
        security=[Noise()],
        muxers=[Yamux()],
        services=[dcutr, Ping()],
        listen=[f"/ip4/{ip}/tcp/{PORT}", f"/ip4/{ip}/udp/{PORT}/quic-v1"],
    ) as host:
        watch = PunchWatch(host)
        started = time.monotonic()
        if mode == "listen":
            await host.listen([relay_addr])
            await _wait_registered(splice)
            emit(event="ready", peer_id=str(host.peer_id), observed=str(offered()[0]))
        else:
            assert peer is not None
            with anyio.fail_after(20):
                await host.connect(f"{relay_addr}/p2p/{peer}")
        with anyio.fail_after(40):
            await watch.outcome.wait()
        await report(host, watch.results[0], started, watch.limited_closed, mode)
        await anyio.to_thread.run_sync(sys.stdin.read)


class PunchWatch:
    """Records a host's ``HolePunchFinished`` events and whether a limited connection closed."""

    def __init__(self, host: Host) -> None:
        self.results: list[HolePunchFinished] = []
        self.outcome = anyio.Event()
        self.limited_closed = anyio.Event()
        host.events.on(HolePunchFinished, self._on_outcome)
        host.events.on(ConnectionClosed, self._on_closed)

    def _on_outcome(self, ev: HolePunchFinished) -> None:
        self.results.append(ev)
        self.outcome.set()

    def _on_closed(self, ev: ConnectionClosed) -> None:
        if ev.connection.limited:
            self.limited_closed.set()


async def _wait_registered(splice: SpliceTransport) -> None:
    with anyio.fail_after(10):
        await splice.met.wait()


async def report(
    host: Host, res: HolePunchFinished, started: float, limited_closed: anyio.Event, mode: str
) -> None:
    conn = res.connection
    emit(
        event="holepunch",
        role=res.role,
        outcome=res.outcome,
        attempts=res.attempts,
        rtt_ms=None if res.rtt is None else round(res.rtt * 1000, 3),
        transport=res.transport,
        remote_addr=None if conn is None else str(conn.remote_multiaddr),
        direction=None if conn is None else conn.direction,
        reason=res.reason,
        seconds=round(time.monotonic() - started, 3),
    )
    if res.outcome != "direct" or mode != "listen":
        return
    with anyio.move_on_after(15):
        await limited_closed.wait()
    peer: PeerId = res.peer_id
    rtts = await host.service(Ping).ping(peer, count=3, timeout=10)
    conns = host.connections(peer)
    emit(
        event="ping",
        rtts_ms=[round(r * 1000, 3) for r in rtts],
        connections=[[str(c.remote_multiaddr), c.limited] for c in conns],
        limited_closed=limited_closed.is_set(),
    )


if __name__ == "__main__":
    args = sys.argv[1:]
    anyio.run(main, args[0], args[1], args[2], args[3] if len(args) > 3 else None)
