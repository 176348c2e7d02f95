"""py-libp2p 0.8.1 DCUtR interop peer (libp2p.relay.circuit_v2.dcutr.DCUtRProtocol): TCP +
Noise + yamux on --listen, the DCUtR service running. JSON lines on stdout: ``listening
{peer_id, addrs}``, then ``connection {peer_id, direction}`` for each connection opened. Ends on
stdin EOF."""

from __future__ import annotations

import json
import sys
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import INetConn, INetwork, INotifee
from libp2p.network.config import ConnectionConfig
from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol
from libp2p.tools.anyio_service import background_trio_service


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


class Reporter(INotifee):
    async def opened_stream(self, network: INetwork, stream: Any) -> None: ...
    async def closed_stream(self, network: INetwork, stream: Any) -> None: ...
    async def listen(self, network: INetwork, multiaddr: Any) -> None: ...
    async def listen_close(self, network: INetwork, multiaddr: Any) -> None: ...
    async def disconnected(self, network: INetwork, conn: INetConn) -> None: ...

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        direction = getattr(getattr(conn, "direction", None), "name", None)
        emit("connection", peer_id=str(conn.muxed_conn.peer_id), direction=direction)


async def main(listen: str) -> None:
    host = new_host(
        listen_addrs=[multiaddr.Multiaddr(listen)],
        connection_config=ConnectionConfig(max_connections_per_peer=1),
    )
    async with host.run(listen_addrs=[multiaddr.Multiaddr(listen)]):
        dcutr = DCUtRProtocol(host)
        async with background_trio_service(dcutr):
            await dcutr.event_started.wait()
            host.get_network().register_notifee(Reporter())
            emit("listening", peer_id=str(host.get_id()), addrs=[str(a) for a in host.get_addrs()])
            await trio.to_thread.run_sync(sys.stdin.read)


if __name__ == "__main__":
    trio.run(main, sys.argv[1] if len(sys.argv) > 1 else "/ip4/127.0.0.1/tcp/0")
