"""py-libp2p 0.8.1 circuit relay v2 interop peer (libp2p.relay.circuit_v2), printing JSON lines.

Role ``relay`` (the one py supports reliably here): ``--role relay [--listen MA]`` runs a relay
(hop) with TCP + Noise + yamux, prints ``listening`` {peer_id, addrs}, serves until stdin
closes or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import sys

import multiaddr
import trio
from libp2p import new_host
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID, STOP_PROTOCOL_ID, CircuitV2Protocol
from libp2p.relay.circuit_v2.resources import RelayLimits
from libp2p.tools.anyio_service import background_trio_service


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def wait_stdin_closed() -> None:
    await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)


async def run_relay(listen: str) -> None:
    host = new_host(muxer_preference="YAMUX")
    limits = RelayLimits(duration=120, data=1 << 20, max_circuit_conns=16, max_reservations=16)
    protocol = CircuitV2Protocol(host, limits=limits, allow_hop=True)
    async with host.run(listen_addrs=[multiaddr.Multiaddr(listen)]):
        host.set_stream_handler(PROTOCOL_ID, protocol._handle_hop_stream)
        host.set_stream_handler(STOP_PROTOCOL_ID, protocol._handle_stop_stream)
        async with background_trio_service(protocol):
            addrs = [str(a) for a in host.get_addrs()]
            emit("listening", peer_id=str(host.get_id()), addrs=addrs)
            await wait_stdin_closed()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["relay"], required=True)
    parser.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    args = parser.parse_args()
    try:
        trio.run(run_relay, args.listen)
    except Exception as exc:  # reported to the test as an error event
        emit("error", message=f"{type(exc).__name__}: {exc}")
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()
