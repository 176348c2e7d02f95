"""Kademlia DHT part of the py-libp2p interop peer (py-libp2p's KadDHT, /ipfs/kad/1.0.0).

Spec: https://github.com/libp2p/specs/blob/master/kad-dht/README.md. With ``--dht`` the peer
reads one command per line from stdin and answers each with one JSON event carrying
``"command"``; the contract is described in ../README.md.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import multiaddr
import trio
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.records.validator import BlankValidator
from libp2p.tools.anyio_service import background_trio_service
from peer_common import Config, PeerError, emit, muxer_of

Reply = dict[str, Any]


@asynccontextmanager
async def open_dht(host: Any, cfg: Config) -> AsyncIterator[KadDHT]:
    """Run a KadDHT on ``host`` (server or client mode) with an accept-anything validator per
    ``--dht-namespace`` next to py's own ``pk`` and ``ipns``; connect to every ``--bootstrap``
    address and put it in the routing table by hand (py adds a peer on its own only when that
    peer opens a kad stream to it)."""
    mode = DHTMode.SERVER if cfg.dht == "server" else DHTMode.CLIENT
    dht = KadDHT(host, mode)
    for namespace in cfg.dht_namespaces:
        dht.register_validator(namespace, BlankValidator())
    async with background_trio_service(dht):
        for addr in cfg.bootstrap:
            reply = await connect(dht, cfg, addr)
            emit("connected", peer_id=reply["peer_id"], muxer=reply["muxer"], bootstrap=True)
        yield dht


def _peer_info(info: PeerInfo) -> Reply:
    addrs = list(dict.fromkeys(str(a) for a in info.addrs))
    return {"peer_id": str(info.peer_id), "addrs": addrs}


async def connect(dht: KadDHT, cfg: Config, addr: str) -> Reply:
    info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
    with trio.fail_after(cfg.timeout):
        await dht.host.connect(info)
        await dht.add_peer(info.peer_id)
    conn = dht.host.get_network().get_connections(info.peer_id)[0]
    return {"event": "connected", "peer_id": str(info.peer_id), "muxer": muxer_of(conn)}


async def put(dht: KadDHT, key: str, value: str) -> Reply:
    await dht.put_value(key, value.encode())
    return {"event": "put", "key": key, "stored_at": None}  # py does not report the count


async def get(dht: KadDHT, key: str) -> Reply:
    value = await dht.get_value(key)
    if value is None:
        return {"event": "not_found", "key": key}
    try:
        text: str | None = value.decode()
    except UnicodeDecodeError:
        text = None
    return {
        "event": "value",
        "key": key,
        "value": text,
        "value_b64": base64.b64encode(value).decode(),
    }


async def provide(dht: KadDHT, cid: str) -> Reply:
    if not await dht.provide(cid):
        raise PeerError(f"provide {cid} reached no peer")
    return {"event": "provide", "cid": cid, "stored_at": None}


async def find_providers(dht: KadDHT, cid: str) -> Reply:
    found = await dht.find_providers(cid)
    return {"event": "providers", "cid": cid, "providers": [_peer_info(p) for p in found]}


async def find_peer(dht: KadDHT, peer_id: str) -> Reply:
    info = await dht.find_peer(ID.from_base58(peer_id))
    if info is None:
        return {"event": "not_found", "peer_id": peer_id}
    return {"event": "peer", **_peer_info(info)}


async def table(dht: KadDHT) -> Reply:
    return {"event": "table", "peers": sorted(str(p) for p in dht.routing_table.get_peer_ids())}


async def bootstrap(dht: KadDHT) -> Reply:
    await dht.refresh_routing_table()
    return {"event": "bootstrap", "closest": dht.get_routing_table_size()}


def _commands(dht: KadDHT, cfg: Config) -> dict[str, Callable[..., Awaitable[Reply]]]:
    return {
        "put": lambda k, v: put(dht, k, v),
        "get": lambda k: get(dht, k),
        "provide": lambda c: provide(dht, c),
        "find-providers": lambda c: find_providers(dht, c),
        "find-peer": lambda p: find_peer(dht, p),
        "table": lambda: table(dht),
        "connect": lambda a: connect(dht, cfg, a),
        "bootstrap": lambda: bootstrap(dht),
    }


ARITY = {
    "put": 2,
    "get": 1,
    "provide": 1,
    "find-providers": 1,
    "find-peer": 1,
    "table": 0,
    "connect": 1,
    "bootstrap": 0,
}


async def run_command(dht: KadDHT, cfg: Config, line: str) -> None:
    """Run one command line; a failure is reported as ``command_error`` and the peer goes on."""
    name, *args = line.split()
    try:
        if ARITY.get(name) != len(args):
            raise PeerError(f"bad command: {line}")
        with trio.fail_after(cfg.timeout):
            reply = await _commands(dht, cfg)[name](*args)
    except Exception as exc:  # reported to the driver; the peer keeps serving
        emit("command_error", command=name, message=repr(exc))
        return
    event = reply.pop("event")
    emit(event, **reply, command=name)
