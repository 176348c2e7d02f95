"""py-libp2p 0.8.1 circuit relay v2 *client* peer (libp2p.relay.circuit_v2) for testing a relay
(https://github.com/libp2p/specs/blob/master/relay/circuit-v2.md): TCP + Noise + yamux.

    --relay MA --listen          reserve at the relay, serve echo over relayed connections,
                                 print {"event": "listening", "peer_id", "addrs"} once reserved
    --relay MA --dial PEER_ID    connect through the relay to PEER_ID, echo --size bytes, print
                                 {"event": "echoed", "bytes"} or {"event": "dial_failed" |
                                 "echo_failed", "message"}
    --refused PEER_ID            (with --dial) first dial PEER_ID, which has no reservation, and
                                 print {"event": "dial_failed", "peer_id", "message"}

Runs in .interop/py-venv. JSON lines on stdout; stdin EOF or SIGTERM stops a listener.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
from libp2p.relay.circuit_v2.pb.circuit_pb2 import Status as PbStatus
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP_PROTOCOL_ID
from libp2p.relay.circuit_v2.protocol import STOP_PROTOCOL_ID, CircuitV2Protocol
from libp2p.relay.circuit_v2.transport import CircuitV2Transport
from libp2p.tools.anyio_service import background_trio_service

ECHO = TProtocol("/p2pstack/echo/1.0.0")
BLOCK = 16 * 1024


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def status_names(text: str) -> str:
    """py reports a refused CONNECT as "... status 204": add the status's name."""
    for value, name in ((v.number, v.name) for v in PbStatus.DESCRIPTOR.values):
        text = text.replace(f"status {value}", f"status {value} ({name})")
    return text


async def serve_echo(stream: Any) -> None:
    total = 0
    try:
        while True:
            data = await stream.read(BLOCK)
            if not data:
                break
            total += len(data)
            await stream.write(data)
    except Exception as exc:  # the stream ended or was reset: report and move on
        emit("handler_error", message=repr(exc), bytes=total)
        return
    finally:
        await stream.close()
    emit("served", bytes=total)


async def wait_stdin_eof() -> None:
    await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)


async def run(args: argparse.Namespace) -> None:
    host = new_host(connection_config=ConnectionConfig(max_connections_per_peer=1))
    relay_info = info_from_p2p_addr(multiaddr.Multiaddr(args.relay))
    protocol = CircuitV2Protocol(host, allow_hop=False)
    roles = RelayRole.STOP | (RelayRole.CLIENT if args.listen else RelayRole.STOP)
    transport = CircuitV2Transport(host, protocol, RelayConfig(roles=roles))
    async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        host.set_stream_handler(STOP_PROTOCOL_ID, protocol._handle_stop_stream)
        host.set_stream_handler(ECHO, serve_echo)
        async with background_trio_service(protocol):
            with trio.fail_after(args.timeout):
                await host.connect(relay_info)
            if args.listen:
                await listen(host, transport, relay_info.peer_id, args)
            else:
                await dial(host, transport, args)


async def listen(
    host: Any, transport: CircuitV2Transport, relay: ID, args: argparse.Namespace
) -> None:
    with trio.fail_after(args.timeout):
        stream = await host.new_stream(relay, [HOP_PROTOCOL_ID])
        ok = await transport._make_reservation(stream, relay)
        await stream.close()
    if not ok:
        emit("reservation_failed", message="the relay refused the reservation")
        return
    emit(
        "listening",
        peer_id=str(host.get_id()),
        addrs=[f"{args.relay}/p2p-circuit/p2p/{host.get_id()}"],
    )
    await wait_stdin_eof()


async def dial_refused(transport: CircuitV2Transport, args: argparse.Namespace) -> None:
    circuit = multiaddr.Multiaddr(f"{args.relay}/p2p-circuit/p2p/{args.refused}")
    try:
        with trio.fail_after(args.timeout):
            await transport.dial(circuit)
    except Exception as exc:
        emit("dial_failed", peer_id=args.refused, message=status_names(str(exc)))
        return
    emit("connected", peer_id=args.refused)


async def dial(host: Any, transport: CircuitV2Transport, args: argparse.Namespace) -> None:
    if args.refused is not None:
        await dial_refused(transport, args)
    target = ID.from_base58(args.dial)
    circuit = multiaddr.Multiaddr(f"{args.relay}/p2p-circuit/p2p/{args.dial}")
    try:
        with trio.fail_after(args.timeout):
            await transport.dial(circuit)
            stream = await host.new_stream(target, [ECHO])
    except Exception as exc:
        emit("dial_failed", peer_id=args.dial, message=status_names(str(exc)))
        return
    emit("connected", peer_id=args.dial)
    received = 0
    try:
        with trio.fail_after(args.timeout):
            async with trio.open_nursery() as nursery:

                async def reader() -> None:
                    nonlocal received
                    while received < args.size:
                        data = await stream.read(BLOCK)
                        if not data:
                            break
                        received += len(data)

                nursery.start_soon(reader)
                left = args.size
                while left > 0:
                    await stream.write(b"\x07" * min(BLOCK, left))
                    left -= BLOCK
        if received != args.size:
            raise RuntimeError(f"echo returned {received} of {args.size} bytes")
        emit("echoed", bytes=received)
    except Exception as exc:
        emit("echo_failed", message=repr(exc), received=received)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--relay", required=True)
    parser.add_argument("--listen", action="store_true")
    parser.add_argument("--dial")
    parser.add_argument("--refused")
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    if args.listen == (args.dial is not None):
        parser.error("need one of --listen, --dial PEER_ID")
    try:
        trio.run(run, args)
    except Exception as exc:
        traceback.print_exc()
        emit("error", message=repr(exc))
        sys.exit(1)


if __name__ == "__main__":
    main()
