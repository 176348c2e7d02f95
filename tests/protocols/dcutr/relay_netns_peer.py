"""One node of the end-to-end NAT traversal test, built from the default stack's parts (no
stand-ins): ``python -m tests.protocols.dcutr.relay_netns_peer relay IP`` (a public
``RelayService`` node that also serves AutoNAT), ``listen RELAY_MA`` (behind NAT A: AutoNAT
finds it private, auto-relay reserves at the relay on its own) or ``dial RELAY_MA CIRCUIT_MA``
(behind NAT B: dials the listener's ``/p2p-circuit`` address). DCUtR upgrades the relayed
connection. Prints JSON lines: ``ready``, ``reachability``, ``reservation``, ``holepunch``,
``ping`` (the listener, over what is left after the upgrade); runs until stdin closes.
"""

from __future__ import annotations

import json
import sys
import time

import anyio

from p2pstack.addresses import AddressConfig
from p2pstack.events import ReachabilityChanged
from p2pstack.host import Host, HostConfig
from p2pstack.roots.autonat import autonat_services
from p2pstack.roots.defaults import default_services, open_default_host
from p2pstack.roots.nat import nat_traversal
from protocols.autonat import AutoNATConfig, ClientSchedule, ServerLimits
from protocols.ping import Ping
from protocols.relay import (
    AutoRelayConfig,
    RelayConfig,
    RelayService,
    ReservationMade,
)
from tests.protocols.dcutr.netns_peer import PunchWatch, local_ip

PORT = 4001
#: The test network's addresses are private ranges: AutoNAT tests and dials them.
AUTONAT = AutoNATConfig(
    allow_private=True,
    limits=ServerLimits(allow_private=True, dial_timeout=3.0),
    schedule=ClientSchedule(boot_delay=0.5, confidence=1, timeout=10.0, retry_interval=5.0),
)
#: One observer (the relay) confirms an observed address: there is only one public peer.
CONFIG = HostConfig(addresses=AddressConfig(confirmations=1, distinct_by="peer"))


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


async def relay(ip: str) -> None:
    services = [
        *default_services(),
        RelayService(RelayConfig(limit_duration=60, limit_data=1 << 20)),
        *autonat_services(AUTONAT),
    ]
    listen = [f"/ip4/{ip}/tcp/{PORT}", f"/ip4/{ip}/udp/{PORT}/quic-v1"]
    async with open_default_host(listen=listen, services=services, config=CONFIG) as host:
        emit(event="ready", peer_id=str(host.peer_id), addrs=[str(a) for a in host.addrs])
        await anyio.to_thread.run_sync(sys.stdin.read)


async def node(mode: str, relay_addr: str, target: str | None) -> None:
    ip = local_ip()
    parts = nat_traversal(
        autonat=AUTONAT,
        auto_relay=AutoRelayConfig(reservations=1, check_interval=0.5),
        allow_private=True,  # the test network uses private ranges only
        dcutr_attempt_timeout=2.0,
    )
    async with open_default_host(
        listen=[f"/ip4/{ip}/tcp/{PORT}", f"/ip4/{ip}/udp/{PORT}/quic-v1"],
        services=[*default_services(), *parts.services],
        config=CONFIG,
        circuit=parts.circuit,
        transports=parts.transports,
    ) as host:
        await run_node(host, mode, relay_addr, target)


async def run_node(host: Host, mode: str, relay_addr: str, target: str | None) -> None:
    started = time.monotonic()
    watch = PunchWatch(host)
    with (
        host.events.subscribe(ReachabilityChanged) as reach,
        host.events.subscribe(ReservationMade) as made,
    ):
        with anyio.fail_after(30):
            await host.connect(relay_addr)
        if mode == "listen":
            with anyio.fail_after(40):
                ev = await reach.receive()
                emit(event="reachability", reachability=ev.reachability, source=ev.source)
                reservation = await made.receive()
            circuit = [str(a) for a in host.addresses.advertised() if "p2p-circuit" in str(a)]
            emit(
                event="reservation",
                relay=str(reservation.relay),
                advertised=circuit,
                seconds=round(time.monotonic() - started, 3),
            )
            addrs = [f"{a}/p2p/{host.peer_id}" for a in reservation.addrs]
            emit(event="ready", peer_id=str(host.peer_id), addrs=addrs)
        else:
            assert target is not None
            with anyio.fail_after(30):
                await host.connect(target)
    with anyio.fail_after(60):
        await watch.outcome.wait()
    res = watch.results[0]
    conn = res.connection
    emit(
        event="holepunch",
        role=res.role,
        outcome=res.outcome,
        attempts=res.attempts,
        transport=res.transport,
        remote_addr=None if conn is None else str(conn.remote_multiaddr),
        direction=None if conn is None else conn.direction,
        reason=res.reason,
        seconds=round(time.monotonic() - started, 3),
    )
    if mode == "listen":
        if res.outcome == "direct":
            with anyio.move_on_after(15):
                await watch.limited_closed.wait()
        rtts = await host.service(Ping).ping(res.peer_id, count=3, timeout=10)
        emit(
            event="ping",
            rtts_ms=[round(r * 1000, 3) for r in rtts],
            connections=[
                [str(c.remote_multiaddr), c.limited] for c in host.connections(res.peer_id)
            ],
            limited_closed=watch.limited_closed.is_set(),
        )
    await anyio.to_thread.run_sync(sys.stdin.read)


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[0] == "relay":
        anyio.run(relay, argv[1])
    else:
        anyio.run(node, argv[0], argv[1], argv[2] if len(argv) > 2 else None)
