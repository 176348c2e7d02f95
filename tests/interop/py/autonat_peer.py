"""py-libp2p 0.8.1 AutoNAT v1 interop peer (libp2p.host.autonat; py-libp2p has no AutoNAT v2).

``--mode serve``: answer ``/libp2p/autonat/1.0.0`` requests. ``--mode ask``: connect to
``--dial`` and ask it, with ``AutoNATService.query_server``, to dial back the ``--ask``
addresses. TCP + Noise + yamux. Prints JSON lines: listening, connected, v1_response, done,
error (https://github.com/libp2p/specs/blob/master/autonat/autonat-v1.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections import OrderedDict
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.host.autonat.autonat import AutoNATService
from libp2p.network.config import ConnectionConfig
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

STATUS = {0: "OK", 100: "E_DIAL_ERROR", 101: "E_DIAL_REFUSED", 200: "E_BAD_REQUEST"}


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    key_pair = create_new_key_pair()
    noise = NoiseTransport(key_pair, noise_privkey=create_new_x25519_key_pair().private_key)
    listen = multiaddr.Multiaddr(args.listen)
    host = new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise},
        muxer_opt=OrderedDict([(TProtocol(YAMUX_PROTOCOL_ID), Yamux)]),
        listen_addrs=[listen],
        connection_config=ConnectionConfig(max_connections_per_peer=1),
    )
    async with host.run(listen_addrs=[listen]):
        autonat = AutoNATService(host, serve=args.mode == "serve")
        addrs = [f"{a}" for a in host.get_addrs()]
        emit("listening", peer_id=host.get_id().pretty(), addrs=addrs)
        if args.dial:
            info = info_from_p2p_addr(multiaddr.Multiaddr(args.dial))
            with trio.fail_after(30):
                await host.connect(info)
            emit("connected", peer_id=info.peer_id.pretty())
            if args.mode == "ask":
                asked = [multiaddr.Multiaddr(a).to_bytes() for a in args.ask]
                status, addr = await autonat.query_server(info.peer_id, asked or None)
                reached = str(multiaddr.Multiaddr(addr)) if addr else None
                emit("v1_response", status=STATUS.get(status, status), addr=reached)
            emit("done")
        await trio.sleep_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["serve", "ask"], default="serve")
    parser.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    parser.add_argument("--dial")
    parser.add_argument("--ask", action="append", default=[])
    try:
        trio.run(main, parser.parse_args())
    except KeyboardInterrupt:
        pass
    except BaseException as exc:  # one line for the test, the traceback to stderr
        traceback.print_exc()
        emit("error", message=repr(exc))
        sys.exit(1)
