"""py-libp2p 0.8.1 circuit relay v2 interop peer (libp2p.relay.circuit_v2), printing JSON lines.

Roles, with TCP + Noise + yamux:

- ``--role relay [--listen MA]`` runs a relay (hop), prints ``listening`` {peer_id, addrs},
  serves until stdin closes or SIGTERM;
- ``--role dialer --dial MA [--bytes N]`` dials ``MA`` (``<relay>/p2p-circuit/p2p/<target>``)
  with py's ``CircuitV2Transport``, echoes N bytes on ``/p2pstack/echo/1.0.0`` and prints
  ``echo`` {ok, bytes} or ``dial_error`` {message}, then ``done``;
- ``--role listener --relay MA`` connects to the relay ``MA`` (``.../p2p/<relay>``), reserves a
  slot with ``CircuitV2Transport.reserve`` (RESERVE on the hop protocol; py accepts the relay's
  STOP CONNECT and upgrades the spliced stream as an inbound connection), prints ``reserved``
  {relay, expire} then ``listening`` {peer_id, addrs: [``MA/p2p-circuit/p2p/<self>``]}, serves
  echo on ``/p2pstack/echo/1.0.0`` (``served`` {bytes} per stream) until stdin closes, or
  prints ``reservation_failed`` and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID, STOP_PROTOCOL_ID, CircuitV2Protocol
from libp2p.relay.circuit_v2.resources import RelayLimits
from libp2p.relay.circuit_v2.transport import CircuitV2Transport
from libp2p.tools.anyio_service import background_trio_service

ECHO = TProtocol("/p2pstack/echo/1.0.0")


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


async def run_dialer(target: str, size: int) -> None:
    host = new_host(muxer_preference="YAMUX")
    protocol = CircuitV2Protocol(
        host,
        limits=RelayLimits(duration=120, data=1 << 20, max_circuit_conns=4, max_reservations=4),
        allow_hop=False,
    )
    config = RelayConfig(roles=RelayRole.STOP | RelayRole.CLIENT)
    maddr = multiaddr.Multiaddr(target)
    listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
    async with host.run(listen_addrs=listen), background_trio_service(protocol):
        transport = CircuitV2Transport(host, protocol, config)
        try:
            with trio.fail_after(30):
                relay_part = multiaddr.Multiaddr(target.split("/p2p-circuit", maxsplit=1)[0])
                await host.connect(info_from_p2p_addr(relay_part))
                conn = await transport.dial(maddr)
                stream = await conn.new_stream()
                ok = await echo_over(stream, size)
            emit("echo", ok=ok, bytes=size)
        except Exception as exc:  # reported to the test
            emit("dial_error", message=f"{type(exc).__name__}: {exc}")
        emit("done")


async def run_listener(relay: str) -> bool:
    host = new_host(muxer_preference="YAMUX")
    protocol = CircuitV2Protocol(host, allow_hop=False)
    transport = CircuitV2Transport(
        host, protocol, RelayConfig(roles=RelayRole.STOP | RelayRole.CLIENT)
    )
    relay_info = info_from_p2p_addr(multiaddr.Multiaddr(relay))
    listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
    async with host.run(listen_addrs=listen), background_trio_service(protocol):
        host.set_stream_handler(ECHO, serve_echo)
        async with trio.open_nursery() as nursery:
            with trio.fail_after(30):
                await host.connect(relay_info)
                stream = await host.new_stream(relay_info.peer_id, [PROTOCOL_ID])
                reserved = await transport.reserve(stream, relay_info.peer_id, nursery)
                await stream.close()
            if not reserved:
                emit("reservation_failed", relay=relay)
                nursery.cancel_scope.cancel()
                return False
            expire = transport._reservations.get(relay_info.peer_id, 0)
            emit("reserved", relay=relay, expire=expire)
            me = host.get_id()
            emit("listening", peer_id=str(me), addrs=[f"{relay}/p2p-circuit/p2p/{me}"])
            await wait_stdin_closed()
            nursery.cancel_scope.cancel()
    return True


async def serve_echo(stream: Any) -> None:
    total = 0
    try:
        while True:
            try:
                chunk = await stream.read(16 * 1024)
            except EOFError:  # py's network stream raises StreamEOF at the remote's FIN
                break
            if not chunk:
                break
            total += len(chunk)
            await stream.write(chunk)
    except Exception as exc:  # the stream ended or was reset: reported, the host goes on
        emit("handler_error", message=repr(exc), bytes=total)
        return
    finally:
        await stream.close()
    emit("served", bytes=total)


async def echo_over(stream: object, size: int) -> bool:
    """multistream-select by hand on the raw muxed stream, then one echo round."""
    from libp2p.protocol_muxer.multiselect_client import MultiselectClient
    from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator

    await MultiselectClient().select_one_of(
        [ECHO],
        MultiselectCommunicator(stream),  # type: ignore[arg-type]  # py-libp2p's stream types
    )
    payload = bytes(i % 251 for i in range(size))
    await stream.write(payload)  # type: ignore[attr-defined]  # py-libp2p's stream types
    received = b""
    while len(received) < size:
        # (the ignore below: py-libp2p's stream types)
        chunk = await stream.read(size - len(received))  # type: ignore[attr-defined]
        if not chunk:
            break
        received += chunk
    await stream.close()  # type: ignore[attr-defined]  # py-libp2p's stream types
    return received == payload


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["relay", "dialer", "listener"], required=True)
    parser.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    parser.add_argument("--dial")
    parser.add_argument("--relay")
    parser.add_argument("--bytes", type=int, default=1024)
    args = parser.parse_args()
    if args.role == "listener" and not args.relay:
        parser.error("--role listener needs --relay MA")
    if args.role == "dialer" and not args.dial:
        parser.error("--role dialer needs --dial MA")
    try:
        if args.role == "relay":
            trio.run(run_relay, args.listen)
        elif args.role == "listener":
            if not trio.run(run_listener, args.relay):
                raise SystemExit(1)
        else:
            trio.run(run_dialer, args.dial, args.bytes)
    except Exception as exc:  # reported to the test as an error event
        emit("error", message=f"{type(exc).__name__}: {exc}")
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()
