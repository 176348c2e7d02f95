"""Rendezvous part of the py-libp2p interop peer: py-libp2p's rendezvous point or client.

Spec: https://github.com/libp2p/specs/blob/master/rendezvous/README.md. With
``--rendezvous point`` the peer runs py-libp2p's ``RendezvousService``; with ``--rendezvous
client`` it connects to the ``--bootstrap`` address (the point) and runs its
``RendezvousClient``. Either way it then reads one command per line from stdin and answers each
with one JSON event carrying ``"command"`` (contract in ../README.md, "Rendezvous mode").
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import multiaddr
import trio
from libp2p.discovery.rendezvous import RendezvousClient, RendezvousService
from libp2p.peer.peerinfo import info_from_p2p_addr
from peer_common import Config, PeerError, emit

Reply = dict[str, Any]


class RendezvousNode:
    def __init__(self, host: Any, cfg: Config) -> None:
        self.host = host
        self.cfg = cfg
        self.service: RendezvousService | None = None
        self.client: RendezvousClient | None = None


@asynccontextmanager
async def open_rendezvous(host: Any, cfg: Config) -> AsyncIterator[RendezvousNode]:
    node = RendezvousNode(host, cfg)
    if cfg.rendezvous == "point":
        node.service = RendezvousService(host)
    else:
        if len(cfg.bootstrap) != 1:
            raise PeerError("--rendezvous client needs one --bootstrap (the point)")
        info = info_from_p2p_addr(multiaddr.Multiaddr(cfg.bootstrap[0]))
        with trio.fail_after(cfg.timeout):
            await host.connect(info)
        node.client = RendezvousClient(host, info.peer_id)
    yield node


def _client(node: RendezvousNode) -> RendezvousClient:
    if node.client is None:
        raise PeerError("not a rendezvous client")
    return node.client


async def register(node: RendezvousNode, ns: str, ttl: str) -> Reply:
    granted = await _client(node).register(ns, int(ttl))
    return {"event": "registered", "ns": ns, "ttl": granted}


async def unregister(node: RendezvousNode, ns: str) -> Reply:
    await _client(node).unregister(ns)
    return {"event": "unregistered", "ns": ns}


async def discover(node: RendezvousNode, ns: str, limit: str, cookie: str = "-") -> Reply:
    raw_cookie = b"" if cookie == "-" else bytes.fromhex(cookie)
    peers, new_cookie = await _client(node).discover(ns, int(limit), raw_cookie)
    found = [{"peer_id": str(p.peer_id), "addrs": [str(a) for a in p.addrs]} for p in peers]
    return {"event": "discovered", "ns": ns, "peers": found, "cookie": new_cookie.hex()}


async def stats(node: RendezvousNode) -> Reply:
    if node.service is None:
        raise PeerError("not a rendezvous point")
    counts = node.service.get_namespace_stats()
    peers = {
        ns: sorted(str(p) for p in regs) for ns, regs in node.service.registrations.items() if regs
    }
    return {"event": "stats", "namespaces": counts, "peers": peers}


COMMANDS: dict[str, tuple[Callable[..., Awaitable[Reply]], tuple[int, ...]]] = {
    "register": (register, (2,)),
    "unregister": (unregister, (1,)),
    "discover": (discover, (2, 3)),
    "stats": (stats, (0,)),
}


async def run_rendezvous_command(node: RendezvousNode, line: str) -> None:
    """Run one command line; a failure is reported as ``command_error`` and the peer goes on."""
    name, *args = line.split()
    try:
        spec = COMMANDS.get(name)
        if spec is None or len(args) not in spec[1]:
            raise PeerError(f"bad command: {line}")
        with trio.fail_after(node.cfg.timeout):
            reply = await spec[0](node, *args)
    except Exception as exc:  # reported to the driver; the peer keeps serving
        emit("command_error", command=name, message=repr(exc))
        return
    event = reply.pop("event")
    emit(event, **reply, command=name)
