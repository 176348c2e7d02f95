"""py-libp2p 0.8.1 as the dialer of a hole punch through a p2pstack relay (run inside a network
namespace behind a NAT): TCP + Noise + yamux listening on ``--listen``, its DCUtR service
running, connects to the relay and dials ``--dial`` (``<relay>/p2p-circuit/p2p/<target>``) with
its ``CircuitV2Transport``. JSON lines: ``dialed`` {ok} or ``dial_error`` {message}, then
``connection`` {addr, direction} for each connection to the target. Ends on stdin EOF."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol
from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
from libp2p.relay.circuit_v2.resources import RelayLimits
from libp2p.relay.circuit_v2.transport import CircuitV2Transport
from libp2p.tools.anyio_service import background_trio_service


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def run(listen: str, target: str) -> None:
    host = new_host(muxer_preference="YAMUX")
    limits = RelayLimits(duration=120, data=1 << 20, max_circuit_conns=4, max_reservations=4)
    protocol = CircuitV2Protocol(host, limits=limits, allow_hop=False)
    config = RelayConfig(roles=RelayRole.STOP | RelayRole.CLIENT)
    async with (
        host.run(listen_addrs=[multiaddr.Multiaddr(listen)]),
        background_trio_service(protocol),
    ):
        dcutr = DCUtRProtocol(host)
        async with background_trio_service(dcutr):
            await dcutr.event_started.wait()
            transport = CircuitV2Transport(host, protocol, config)
            try:
                with trio.fail_after(30):
                    relay = multiaddr.Multiaddr(target.split("/p2p-circuit", maxsplit=1)[0])
                    await host.connect(info_from_p2p_addr(relay))
                    await transport.dial(multiaddr.Multiaddr(target))
                emit("dialed", ok=True)
            except Exception as exc:  # reported to the test
                emit("dial_error", message=f"{type(exc).__name__}: {exc}")
            peer = info_from_p2p_addr(multiaddr.Multiaddr(target)).peer_id
            with trio.move_on_after(40):
                seen: set[str] = set()
                while True:
                    conns = host.get_network().connections.get(peer) or []
                    for conn in conns if isinstance(conns, list) else [conns]:
                        addrs = [str(a) for a in conn.get_transport_addresses()]
                        key = " ".join(addrs)
                        if key not in seen:
                            seen.add(key)
                            emit("connection", addrs=addrs)
                    await trio.sleep(0.2)
            await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", default="/ip4/0.0.0.0/tcp/4001")
    parser.add_argument("--dial", required=True)
    args = parser.parse_args()
    trio.run(run, args.listen, args.dial)
