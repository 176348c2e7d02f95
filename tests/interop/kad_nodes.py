"""DHT nodes for the Kademlia interop tests behind one small interface: the js and py peers in
``--dht`` mode (driven by stdin commands, tests/interop/README.md "DHT mode") and p2pstack hosts
running the ``Kad`` service in this process."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol

import anyio

from p2pstack.builder import open_host
from p2pstack.host import Host, HostConfig
from p2pstack.identity import PeerId
from p2pstack.roots.defaults import make_muxers
from protocols.identify import Identify
from protocols.kad import Kad, KadConfig, KadMode, NotFound
from protocols.ping import Ping
from tests.interop.peers import Event, PeerProcess, run_peer
from transports.noise import Noise
from transports.tcp import TcpTransport

NAMESPACE = "test"
#: Bound on one DHT command or call (each lookup in a network of a few loopback nodes takes
#: well under a second; a hang must fail the test, not stall CI).
OP_TIMEOUT = 20.0
#: Bound on a node joining: process start (py-libp2p imports take ~1-2 s) and bootstrap dials.
START_TIMEOUT = 60.0

#: Provider results: peer ID -> its addresses, as given.
Providers = dict[str, list[str]]


class DhtNode(Protocol):
    """What a test does with any DHT node, whatever its implementation."""

    name: str
    peer_id: str
    addr: str  # a listen address with /p2p/<id>

    async def put(self, key: str, value: str) -> None: ...
    async def get(self, key: str) -> str | None: ...
    async def provide(self, cid: str, multihash: bytes) -> None: ...
    async def find_providers(self, cid: str, multihash: bytes) -> Providers: ...
    async def find_peer(self, peer_id: str) -> list[str] | None: ...
    async def table(self) -> set[str]: ...
    async def join(self, addr: str) -> None: ...


def make_cid(data: bytes) -> tuple[str, bytes]:
    """A CIDv1 (raw codec, sha2-256, base32 multibase ``b``) for ``data`` and its multihash,
    which is the provider key on the wire."""
    multihash = b"\x12\x20" + hashlib.sha256(data).digest()
    body = base64.b32encode(b"\x01\x55" + multihash).decode().lower().rstrip("=")
    return "b" + body, multihash


def strip_p2p(addr: str) -> str:
    """``addr`` without a trailing ``/p2p/<id>`` (py adds one to the addresses it returns)."""
    head, sep, _ = addr.rpartition("/p2p/")
    return head if sep else addr


class RemoteNode:
    """A js or py peer in ``--dht`` mode; one command at a time, each reply awaited."""

    def __init__(self, proc: PeerProcess, listening: Event) -> None:
        self.proc = proc
        self.name = proc.kind
        self.peer_id: str = listening["peer_id"]
        self.addr: str = listening["addrs"][0]

    async def command(self, line: str, timeout: float = OP_TIMEOUT) -> Event:
        """Send one command line and return its reply (the next event naming the command)."""
        verb = line.split(maxsplit=1)[0]
        stdin = self.proc.process.stdin
        assert stdin is not None
        await stdin.send(f"{line}\n".encode())
        with anyio.fail_after(timeout):
            while True:
                event = await self.proc.next_event(timeout)
                if event.get("command") != verb:
                    continue
                if event["event"] == "command_error":
                    raise AssertionError(f"{self.name} `{line}` failed: {event['message']}")
                return event

    async def put(self, key: str, value: str) -> None:
        await self.command(f"put {key} {value}")

    async def get(self, key: str) -> str | None:
        event = await self.command(f"get {key}")
        return None if event["event"] == "not_found" else str(event["value"])

    async def provide(self, cid: str, multihash: bytes) -> None:
        await self.command(f"provide {cid}")

    async def find_providers(self, cid: str, multihash: bytes) -> Providers:
        event = await self.command(f"find-providers {cid}")
        return {p["peer_id"]: list(p["addrs"]) for p in event["providers"]}

    async def find_peer(self, peer_id: str) -> list[str] | None:
        event = await self.command(f"find-peer {peer_id}")
        return None if event["event"] == "not_found" else list(event["addrs"])

    async def table(self) -> set[str]:
        event = await self.command("table")
        return set(event["peers"])

    async def join(self, addr: str) -> None:
        """Connect to ``addr`` (py also puts it in its table), then run a self lookup."""
        await self.command(f"connect {addr}")
        await self.command("bootstrap")


@asynccontextmanager
async def open_remote(
    kind: str, bootstrap: Sequence[str], *, log_dir: Path
) -> AsyncIterator[RemoteNode]:
    """Start a js or py DHT server accepting ``/test/`` records, joined through ``bootstrap``."""
    args = ["--listen", "/ip4/127.0.0.1/tcp/0", "--muxer", "yamux", "--dht", "server"]
    args += ["--dht-namespace", NAMESPACE, "--timeout", str(OP_TIMEOUT)]
    for addr in bootstrap:
        args += ["--bootstrap", addr]
    async with run_peer(kind, args, log_dir=log_dir) as proc:
        listening = await proc.wait_for("listening", START_TIMEOUT)
        await proc.wait_for("ready", START_TIMEOUT)
        yield RemoteNode(proc, listening)


class OurNode:
    """A p2pstack host with the ``Kad`` service, driven through its library API."""

    def __init__(self, host: Host, name: str = "p2pstack") -> None:
        self.host = host
        self.kad = host.service(Kad)
        self.name = name
        self.peer_id = str(host.peer_id)
        self.addr = str(host.addrs[0])

    async def put(self, key: str, value: str) -> None:
        with anyio.fail_after(OP_TIMEOUT):
            await self.kad.put_value(key.encode(), value.encode())

    async def get(self, key: str) -> str | None:
        try:
            with anyio.fail_after(OP_TIMEOUT):
                value = await self.kad.get_value(key.encode())
        except NotFound:
            return None
        return value.decode()

    async def provide(self, cid: str, multihash: bytes) -> None:
        with anyio.fail_after(OP_TIMEOUT):
            await self.kad.provide(multihash)

    async def find_providers(self, cid: str, multihash: bytes) -> Providers:
        found: Providers = {}
        with anyio.fail_after(OP_TIMEOUT):
            async for provider in self.kad.find_providers(multihash):
                found[str(provider.peer_id)] = [str(a) for a in provider.addrs]
        return found

    async def find_peer(self, peer_id: str) -> list[str] | None:
        try:
            with anyio.fail_after(OP_TIMEOUT):
                found = await self.kad.find_peer(PeerId.from_string(peer_id))
        except NotFound:
            return None
        return [str(a) for a in found.addrs]

    async def table(self) -> set[str]:
        return {str(p) for p in self.kad.routing_table.peers()}

    async def join(self, addr: str) -> None:
        with anyio.fail_after(START_TIMEOUT):
            await self.kad.bootstrap([addr])


@asynccontextmanager
async def open_ours(
    bootstrap: Sequence[str] = (), *, mode: KadMode = "server", name: str = "p2pstack"
) -> AsyncIterator[OurNode]:
    """A p2pstack DHT node (TCP + Noise + yamux, identify, ping, Kad) on 127.0.0.1; with
    ``bootstrap``, it has joined through those addresses (self lookup done) when yielded."""
    identify = Identify()
    config = KadConfig(
        mode=mode,
        passthrough_namespaces=[NAMESPACE],
        request_timeout=5.0,
        query_timeout=OP_TIMEOUT,
    )
    async with open_host(
        transports=[TcpTransport()],
        security=[Noise()],
        muxers=make_muxers(["yamux"]),
        services=[identify, Ping(), Kad(config, before_request=identify.identified_by)],
        listen=["/ip4/127.0.0.1/tcp/0"],
        config=HostConfig(upgrade_timeout=30.0),
    ) as host:
        node = OurNode(host, name)
        if bootstrap:
            with anyio.fail_after(START_TIMEOUT):
                await node.kad.bootstrap(bootstrap)
        yield node


async def eventually_contains(node: DhtNode, peer_id: str, timeout: float = 15.0) -> set[str]:
    """Poll ``node``'s routing table until it holds ``peer_id`` (a remote peer's table changes
    inside another process: there is no event to wait on). Returns the table."""
    table: set[str] = set()
    with anyio.move_on_after(timeout):
        while True:
            table = await node.table()
            if peer_id in table:
                return table
            await anyio.sleep(0.1)
    raise AssertionError(f"{node.name} {node.peer_id}: {peer_id} not in its table {table}")


@asynccontextmanager
async def open_nodes(kinds: Sequence[str], *, log_dir: Path) -> AsyncIterator[list[DhtNode]]:
    """Start one unjoined DHT node per kind (``js``, ``py`` or ``ours``) at once, in that
    order; all are stopped when the block ends."""
    nodes: list[DhtNode | None] = [None] * len(kinds)
    stop = anyio.Event()

    async def hold(index: int, started: anyio.Event) -> None:
        kind = kinds[index]
        if kind == "ours":
            async with open_ours(name=f"p2pstack-{index}") as ours:
                nodes[index] = ours
                started.set()
                await stop.wait()
        else:
            async with open_remote(kind, [], log_dir=log_dir) as remote:
                nodes[index] = remote
                started.set()
                await stop.wait()

    async with anyio.create_task_group() as tg:
        events = [anyio.Event() for _ in kinds]
        for index, started in enumerate(events):
            tg.start_soon(hold, index, started)
        with anyio.fail_after(START_TIMEOUT):
            for started in events:
                await started.wait()
        try:
            yield [node for node in nodes if node is not None]
        finally:
            stop.set()
