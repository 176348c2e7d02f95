"""Pubsub nodes for the interop tests behind one small interface: the js and py peers in
``--pubsub`` mode (driven by stdin commands, tests/interop/README.md "Pubsub mode") and p2pstack
hosts running the ``Pubsub`` service in this process. Every node keeps the messages it received
as ``Received`` records so that a test can check "each message exactly once, from its
publisher" the same way on all of them; remote nodes also keep the raw ``message`` events.
``until`` polls a node's view of a topic (``peers``/``mesh``) and ``connect`` dials edges: the
helpers every pubsub interop test file uses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Protocol

import anyio
import attrs

from p2pstack.builder import open_host
from p2pstack.host import Host, HostConfig
from p2pstack.roots.defaults import make_muxers
from protocols.identify import Identify
from protocols.ping import Ping
from protocols.pubsub import Pubsub, Subscription
from tests.interop.peers import Event, PeerProcess, run_peer
from transports.noise import Noise
from transports.tcp import TcpTransport

#: Bound on one command or wait (everything runs on loopback; a hang must fail, not stall CI).
OP_TIMEOUT = 15.0
#: Bound on a node starting (py-libp2p imports take ~1-2 s) and dialing its bootstrap peers.
START_TIMEOUT = 60.0


@attrs.frozen
class Received:
    """A message as a node reported it: the publisher (signed ``from``), its seqno (16 hex
    digits), topic and payload."""

    topic: str
    from_peer: str
    seqno: str
    data: str


@attrs.frozen
class Sent:
    """A message a node published: topic, payload, its seqno (16 hex digits), publisher."""

    topic: str
    data: str
    seqno: str
    from_peer: str

    def as_received(self) -> Received:
        """What every subscriber must report for it."""
        return Received(self.topic, self.from_peer, self.seqno, self.data)


class PubsubNode(Protocol):
    """What a test does with any pubsub node, whatever its implementation."""

    name: str
    peer_id: str
    addr: str  # a listen address with /p2p/<id>
    received: list[Received]

    async def subscribe(self, topic: str) -> None:
        """Join ``topic``; its messages are appended to ``received`` from now on."""
        ...

    async def publish(self, topic: str, data: str) -> Sent:
        """Publish ``data`` (text) on ``topic``.

        Returns:
            The message as every subscriber must report it.
        """
        ...

    async def peers(self, topic: str) -> set[str]:
        """Connected peers known to be subscribed to ``topic``."""
        ...

    def diagnosis(self) -> str:
        """What a failed wait should report of this node's state (may be empty)."""
        ...

    async def mesh(self, topic: str) -> set[str]:
        """Gossipsub mesh peers of ``topic`` (floodsub remote nodes raise)."""
        ...

    async def connect(self, addr: str) -> None:
        """Dial ``addr`` (with ``/p2p/``), bounded by OP_TIMEOUT."""
        ...

    async def wait_received(self, count: int) -> None:
        """Wait until ``received`` holds ``count`` messages.

        Raises:
            AssertionError: fewer arrived within OP_TIMEOUT.
        """
        ...

    async def drain(self, seconds: float) -> None:
        """Keep collecting messages for ``seconds``."""
        ...


def _check_count(node: PubsubNode, count: int, timeout: float) -> None:
    if len(node.received) < count:
        got = sorted(m.data[:40] for m in node.received)
        raise AssertionError(
            f"{node.name}: {len(got)} of {count} messages within {timeout} s: {got}"
        )


async def until(
    node: PubsubNode,
    verb: str,
    topic: str,
    want: str | Iterable[str],
    *,
    timeout: float = OP_TIMEOUT,
) -> None:
    """Poll ``node``'s ``peers`` or ``mesh`` of ``topic`` until it holds ``want`` (bounded: a
    remote node's view changes inside another process, there is no event to wait on).

    Args:
        node: the node.
        verb: ``peers`` or ``mesh``.
        topic: the topic.
        want: a peer ID, or several.
        timeout: seconds.

    Raises:
        AssertionError: ``want`` was not all there within ``timeout``.
    """
    wanted = {want} if isinstance(want, str) else set(want)
    have: set[str] = set()
    with anyio.move_on_after(timeout):
        while True:
            have = await (node.mesh(topic) if verb == "mesh" else node.peers(topic))
            if wanted <= have:
                return
            await anyio.sleep(0.2)
    raise AssertionError(
        f"{node.name}: {verb} {sorted(have)} lacks {sorted(wanted - have)}{node.diagnosis()}"
    )


async def connect(nodes: Sequence[PubsubNode], edges: Sequence[tuple[int, int]]) -> None:
    """Node ``a`` dials node ``b`` for each edge ``(a, b)`` (all at once; a remote node runs
    its commands one at a time)."""
    async with anyio.create_task_group() as tg:
        for a, b in edges:
            tg.start_soon(nodes[a].connect, nodes[b].addr)


class RemoteNode:
    """A js or py peer in ``--pubsub`` mode; one command at a time, each reply awaited.
    ``message`` events read on the way are kept, raw in ``messages`` and as ``received``.

    Args:
        proc: the peer process.
        listening: its ``listening`` event.
        name: its name in failure messages.
        timeout: the bound on each command and wait, in seconds.
    """

    def __init__(
        self, proc: PeerProcess, listening: Event, name: str, *, timeout: float = OP_TIMEOUT
    ) -> None:
        self.proc = proc
        self.name = name
        self.timeout = timeout
        self.peer_id: str = listening["peer_id"]
        self.addr: str = listening["addrs"][0]
        self.received: list[Received] = []
        self.messages: list[Event] = []
        self._reading = anyio.Lock()  # one reader of the peer's stdout at a time

    async def _next(self, timeout: float) -> Event:
        event = await self.proc.next_event(timeout)
        if event.get("event") == "message":
            self.messages.append(event)
            self.received.append(
                Received(event["topic"], event["from"], event["seqno"], event["data"])
            )
        return event

    async def command(self, line: str) -> Event:
        """Send one command line and return its reply (the next event naming the command)."""
        verb = line.split(maxsplit=1)[0]
        stdin = self.proc.process.stdin
        assert stdin is not None
        async with self._reading:
            await stdin.send(f"{line}\n".encode())
            return await self._reply(verb, line)

    async def _reply(self, verb: str, line: str) -> Event:
        with anyio.fail_after(self.timeout):
            while True:
                event = await self._next(self.timeout)
                if event.get("command") != verb:
                    continue
                if event["event"] == "command_error":
                    raise AssertionError(f"{self.name} `{line}` failed: {event['message']}")
                return event

    async def subscribe(self, topic: str) -> None:
        await self.command(f"subscribe {topic}")

    async def publish(self, topic: str, data: str) -> Sent:
        event = await self.command(f"publish {topic} {data}")
        # Both libraries' message IDs end with the 8-byte seqno (tests/interop/README.md).
        return Sent(topic, data, str(event["msg_id"])[-16:], self.peer_id)

    def diagnosis(self) -> str:
        return ""

    async def peers(self, topic: str) -> set[str]:
        return set((await self.command(f"peers {topic}"))["peers"])

    async def mesh(self, topic: str) -> set[str]:
        return set((await self.command(f"mesh {topic}"))["peers"])

    async def connect(self, addr: str) -> None:
        await self.command(f"connect {addr}")

    async def wait_received(self, count: int) -> None:
        async with self._reading:
            with anyio.move_on_after(self.timeout):
                while len(self.received) < count:
                    await self._next(self.timeout)
        _check_count(self, count, self.timeout)

    async def receive(self, count: int, *, settle: float = 0.0) -> list[Event]:
        """Wait until ``count`` messages have arrived, then ``settle`` seconds for any extra one.

        Args:
            count: messages expected.
            settle: seconds of reading after them.

        Returns:
            Every ``message`` event so far (the list, kept up to date).

        Raises:
            AssertionError: fewer arrived within the node's timeout.
        """
        await self.wait_received(count)
        if settle:
            await self.drain(settle)
        return self.messages

    async def drain(self, seconds: float) -> None:
        """Read (and keep) whatever arrives within ``seconds``."""
        async with self._reading:
            with anyio.move_on_after(seconds):
                while True:
                    await self._next(seconds + 1)


@asynccontextmanager
async def open_remote(
    kind: str,
    router: str,
    bootstrap: Sequence[str] = (),
    *,
    log_dir: Path,
    name: str = "",
    options: Sequence[str] = (),
    timeout: float = OP_TIMEOUT,
) -> AsyncIterator[RemoteNode]:
    """Start a js or py pubsub peer (TCP + Noise + yamux) dialing ``bootstrap``.

    Args:
        kind: ``js`` or ``py``.
        router: ``gossipsub`` or ``floodsub``.
        bootstrap: addresses it dials before it is ready.
        log_dir: where its stderr goes.
        name: its name in failure messages (default: ``kind``).
        options: more command-line options of the peer (scoring, mesh degrees).
        timeout: the peer's ``--timeout`` and the bound on each command and wait.

    Returns:
        The node, once it is ready for commands; the process ends with the block.
    """
    args = ["--listen", "/ip4/127.0.0.1/tcp/0", "--muxer", "yamux", "--pubsub", router]
    args += ["--timeout", str(timeout), *options]
    for addr in bootstrap:
        args += ["--bootstrap", addr]
    async with run_peer(kind, args, log_dir=log_dir) as proc:
        listening = await proc.wait_for("listening", START_TIMEOUT)
        await proc.wait_for("ready", START_TIMEOUT)
        yield RemoteNode(proc, listening, name or kind, timeout=timeout)


class OurNode:
    """A p2pstack host with the ``Pubsub`` service, driven through its library API; a task
    per subscription copies its messages into ``received``."""

    def __init__(self, host: Host, name: str) -> None:
        self.host = host
        self.pubsub = host.service(Pubsub)
        self.name = name
        self.peer_id = str(host.peer_id)
        self.addr = str(host.addrs[0])
        self.received: list[Received] = []
        self._arrived = anyio.Event()

    async def _read(self, sub: Subscription) -> None:
        async for message in sub:
            if message.received_from is None:
                continue  # our own publication, handed back by deliver_own
            seqno = "" if message.seqno is None else f"{message.seqno:016x}"
            sender = str(message.from_peer)
            self.received.append(Received(message.topic, sender, seqno, message.data.decode()))
            self._arrived.set()
            self._arrived = anyio.Event()

    async def subscribe(self, topic: str) -> None:
        self.host.start_soon(self._read, self.pubsub.subscribe(topic), name="pubsub reader")

    async def publish(self, topic: str, data: str) -> Sent:
        msg_id = self.pubsub.publish(topic, data.encode())
        # The default message ID is the `from` peer ID bytes followed by the 8-byte seqno.
        return Sent(topic, data, msg_id[-8:].hex(), self.peer_id)

    def diagnosis(self) -> str:
        conns = [
            (str(c.remote_peer)[-6:], c.direction, c.draining) for c in self.host.connections()
        ]
        return f"; pubsub {self.pubsub.statistics()}; connections {conns}"

    async def peers(self, topic: str) -> set[str]:
        return {str(p) for p in self.pubsub.peers(topic)}

    async def mesh(self, topic: str) -> set[str]:
        return {str(p) for p in self.pubsub.mesh(topic)}

    async def connect(self, addr: str) -> None:
        with anyio.fail_after(OP_TIMEOUT):
            await self.host.connect(addr)

    async def wait_received(self, count: int) -> None:
        with anyio.move_on_after(OP_TIMEOUT):
            while len(self.received) < count:
                await self._arrived.wait()
        _check_count(self, count, OP_TIMEOUT)

    async def drain(self, seconds: float) -> None:
        await anyio.sleep(seconds)  # the reader task keeps collecting meanwhile


@asynccontextmanager
async def open_pubsub_host(pubsub: Pubsub) -> AsyncIterator[Host]:
    """A p2pstack host (TCP + Noise + yamux, identify, ping) running ``pubsub`` on 127.0.0.1.

    Args:
        pubsub: the service, with its router and settings.

    Returns:
        The host; it closes with the block.
    """
    async with open_host(
        transports=[TcpTransport()],
        security=[Noise()],
        muxers=make_muxers(["yamux"]),
        services=[Identify(), Ping(), pubsub],
        listen=["/ip4/127.0.0.1/tcp/0"],
        config=HostConfig(upgrade_timeout=30.0),
    ) as host:
        yield host


@asynccontextmanager
async def open_ours(router: str, *, name: str = "p2pstack") -> AsyncIterator[OurNode]:
    """A p2pstack pubsub node (``open_pubsub_host`` with ``Pubsub(router)``).

    Args:
        router: ``gossipsub`` or ``floodsub``.
        name: its name in failure messages.

    Returns:
        The node; the host closes with the block.
    """
    async with open_pubsub_host(Pubsub(router)) as host:
        yield OurNode(host, name)


@asynccontextmanager
async def open_nodes(
    kinds: Sequence[str], router: str | Sequence[str], *, log_dir: Path
) -> AsyncIterator[list[PubsubNode]]:
    """Start one unconnected node per kind at once (a peer process takes a second or two to
    start); each is named ``<kind>-<index>``.

    Args:
        kinds: ``js``, ``py`` or ``ours`` (a p2pstack host in this process) per node.
        router: the router of every node, or one per node.
        log_dir: where the peer processes' stderr goes.

    Returns:
        The nodes in the order of ``kinds``; all are stopped when the block ends.

    Raises:
        TimeoutError: a node did not start within START_TIMEOUT.
    """
    routers = [router] * len(kinds) if isinstance(router, str) else list(router)
    nodes: list[PubsubNode | None] = [None] * len(kinds)
    stop = anyio.Event()

    async def hold(index: int, started: anyio.Event) -> None:
        kind, name = kinds[index], f"{kinds[index]}-{index}"
        node: AbstractAsyncContextManager[PubsubNode]
        if kind == "ours":
            node = open_ours(routers[index], name=name)
        else:
            node = open_remote(kind, routers[index], [], log_dir=log_dir, name=name)
        async with node as opened:
            nodes[index] = opened
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
