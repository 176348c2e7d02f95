"""The simulated network: nodes, links, partitions, NAT-like reachability, crashes and
connection drops, and one ``SimTransport`` per node (``/memory/<node>`` addresses, the
``memory`` protocol of https://github.com/multiformats/multiaddr/blob/master/protocols.csv).

Delivery happens by time, not by I/O: a write is stamped with its arrival time (``LinkDirection``)
and the reader sleeps until then, so on a virtual-time loop a run is a function of its seed.
Semantics are in docs/simulation.md ("The virtual network").
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Iterable, Sequence

import anyio
from multiaddr import Multiaddr

from p2pstack.errors import TransportError
from p2pstack.interfaces import Buffer
from p2pstack.multiaddrs import memory_id
from p2pstack.sync import loop_clock, running_asyncio_loop
from transports.simnet._link import LinkDirection, LinkSpec

__all__ = [
    "DEFAULT_BACKLOG",
    "DEFAULT_WINDOW",
    "SimConnection",
    "SimListener",
    "SimNetwork",
    "SimTransport",
]

#: Bytes one direction of a connection holds in flight or unread before ``send`` blocks (a
#: TCP send buffer plus receive window).
DEFAULT_WINDOW = 256 * 1024
#: Connections a listener holds before they are accepted; further dials are refused.
DEFAULT_BACKLOG = 128


#: The node index of ``/memory/<n>`` (simnet's name for ``p2pstack.multiaddrs.memory_id``).
node_of = memory_id


class _Pipe:
    """One direction of a connection: writes in flight (with arrival times) and unread bytes."""

    def __init__(self, link: LinkDirection, src: int, dst: int) -> None:
        self.link = link
        self.src = src
        self.dst = dst
        # (arrival time, data); ``None`` data is the sender's end of stream.
        self.queue: deque[tuple[float, bytes | None]] = deque()
        self.buffer = b""
        self.inflight = 0
        self.eof_sent = False
        self.reader_closed = False
        # Created only while someone waits: most writes find no waiter, and events are not
        # free at a million writes per run.
        self._readable: anyio.Event | None = None
        self._writable: anyio.Event | None = None

    async def wait_readable(self) -> None:
        if self._readable is None:
            self._readable = anyio.Event()
        await self._readable.wait()

    async def wait_writable(self) -> None:
        if self._writable is None:
            self._writable = anyio.Event()
        await self._writable.wait()

    def wake_reader(self) -> None:
        if self._readable is not None:
            self._readable.set()
            self._readable = None

    def wake_reader_at(self, when: float, loop: asyncio.AbstractEventLoop | None) -> None:
        """Wake a waiting reader when ``when`` (loop time) comes: one wake-up per delivery
        instead of a wake-up now and a sleep until then. Without an asyncio loop (trio), the
        reader is woken now and sleeps itself. A wake-up that finds nothing to read is
        harmless: ``receive`` checks again."""
        if self._readable is None:
            return
        if loop is None:
            self.wake_reader()
        else:
            loop.call_at(when, self.wake_reader)

    def wake_writer(self) -> None:
        if self._writable is not None:
            self._writable.set()
            self._writable = None


class _Wire:
    """A connection between two nodes: two pipes and a broken flag (a reset)."""

    def __init__(self, net: SimNetwork, a: int, b: int) -> None:
        spec = net.link(a, b)
        self.net = net
        self.a = a
        self.b = b
        self.a_to_b = _Pipe(LinkDirection(spec), a, b)
        self.b_to_a = _Pipe(LinkDirection(spec), b, a)
        self.broken = False
        # The running asyncio loop, for timed wake-ups (None on other backends), and its clock.
        self.loop = running_asyncio_loop()
        self.clock = loop_clock()

    def wake(self) -> None:
        for pipe in (self.a_to_b, self.b_to_a):
            pipe.wake_reader()
            pipe.wake_writer()

    def break_(self) -> None:
        if not self.broken:
            self.broken = True
            self.net._forget(self)
            self.wake()


class SimConnection:
    """One end of a simulated connection (a ``RawConnection``)."""

    def __init__(self, wire: _Wire, out: _Pipe, inp: _Pipe, local: Multiaddr, remote: Multiaddr):
        self._wire = wire
        self._out = out
        self._in = inp
        self._local = local
        self._remote = remote
        self._closed = False

    @property
    def local_multiaddr(self) -> Multiaddr:
        return self._local

    @property
    def remote_multiaddr(self) -> Multiaddr:
        return self._remote

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Wait for bytes that have arrived (see ``ByteStream``).

        Raises:
            anyio.EndOfStream: the peer half-closed.
            anyio.BrokenResourceError: the connection was reset (crash, drop, loss, stall).
            anyio.ClosedResourceError: this end was closed.
        """
        pipe, net, clock = self._in, self._wire.net, self._wire.clock
        stalled_since: float | None = None
        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._wire.broken:
                raise anyio.BrokenResourceError
            if pipe.buffer:
                data, pipe.buffer = pipe.buffer[:max_bytes], pipe.buffer[max_bytes:]
                pipe.inflight -= len(data)
                pipe.wake_writer()
                return data
            timeout: float | None = None
            if pipe.queue:
                now = clock()
                arrival, data_or_eof = pipe.queue[0]
                if arrival > now:
                    # Nothing can arrive before the head (arrivals are ordered), and a reset or
                    # close is seen when this wakes: a plain sleep is the cheapest wait.
                    await anyio.sleep(arrival - now)
                    continue
                if net.path_open(pipe.src, pipe.dst):
                    pipe.queue.popleft()
                    if data_or_eof is None:
                        raise anyio.EndOfStream
                    pipe.buffer = data_or_eof
                    continue
                else:
                    # Across a cut: the stream stalls; after ``stall_timeout`` it resets, as
                    # TCP gives up retransmitting.
                    stalled_since = now if stalled_since is None else stalled_since
                    timeout = stalled_since + net.stall_timeout - now
                    if timeout <= 0:
                        self._wire.break_()
                        continue
            if timeout is None:
                await pipe.wait_readable()
            else:
                with anyio.move_on_after(timeout):
                    await pipe.wait_readable()

    async def send(self, item: Buffer) -> None:
        """Queue ``item`` for delivery at the time the link model gives. Yields only while
        the window is full.

        Raises:
            anyio.ClosedResourceError: this end was closed or half-closed.
            anyio.BrokenResourceError: the connection was reset or the peer closed its end.
        """
        pipe, net = self._out, self._wire.net
        if self._closed or pipe.eof_sent:
            raise anyio.ClosedResourceError
        if not item:
            return
        while pipe.inflight >= net.window and not self._wire.broken:
            await pipe.wait_writable()
            if self._closed:
                raise anyio.ClosedResourceError
        if self._wire.broken or pipe.reader_closed:
            raise anyio.BrokenResourceError
        arrival = pipe.link.schedule(self._wire.clock(), len(item), net.rng)
        if arrival is None:
            self._wire.break_()
            raise anyio.BrokenResourceError
        was_empty = not pipe.queue
        pipe.queue.append((arrival, bytes(item)))
        pipe.inflight += len(item)
        if was_empty:
            pipe.wake_reader_at(arrival, self._wire.loop)
        else:  # the reader sleeps until the head's arrival, or waits out a stall
            pipe.wake_reader()
        # No checkpoint when nothing blocked: a simulation sends millions of messages, and a
        # yield per message would add a task switch to each. A sender still yields as soon
        # as the window is full, so no task can monopolise the loop.

    def _send_eof_nowait(self) -> None:
        pipe = self._out
        if pipe.eof_sent or self._wire.broken:
            return
        pipe.eof_sent = True
        arrival = pipe.link.schedule(self._wire.clock(), 0, self._wire.net.rng)
        if arrival is None:
            self._wire.break_()
            return
        pipe.queue.append((arrival, None))
        pipe.wake_reader()

    async def send_eof(self) -> None:
        self._send_eof_nowait()
        await anyio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._send_eof_nowait()
        self._closed = True
        self._in.reader_closed = True
        self._in.queue.clear()
        self._in.buffer = b""
        self._wire.wake()
        if self._out.reader_closed:
            self._wire.net._forget(self._wire)
        await anyio.lowlevel.checkpoint()


class SimListener:
    """The listener of one node (a ``Listener``)."""

    def __init__(self, net: SimNetwork, node: int, backlog: int) -> None:
        self._net = net
        self._node = node
        self._addr = Multiaddr(f"/memory/{node}")
        self._send, self._recv = anyio.create_memory_object_stream[SimConnection](backlog)
        self.closed = False

    @property
    def multiaddrs(self) -> Sequence[Multiaddr]:
        return (self._addr,)

    def _offer(self, conn: SimConnection) -> bool:
        try:
            self._send.send_nowait(conn)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        return True

    async def accept(self) -> SimConnection:
        """Raises: anyio.ClosedResourceError: the listener was closed."""
        try:
            return await self._recv.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise anyio.ClosedResourceError from None

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._net._listeners.get(self._node) is self:
            del self._net._listeners[self._node]
        self._send.close()
        while True:
            try:
                pending = self._recv.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
            pending._wire.break_()
        self._recv.close()
        await anyio.lowlevel.checkpoint()


class SimNetwork:
    """Nodes, links and faults of one simulation.

    Args:
        rng: the seeded source of latency draws and losses.
        default_link: the link between nodes without a specific one.
        window: bytes in flight or unread per direction before ``send`` blocks.
        stall_timeout: seconds data may wait at a cut before its connection resets.
        connect_timeout: seconds a dial to an unreachable node waits before it fails (the host's
            own, usually shorter, dial timeout normally fires first).
        backlog: connections a listener holds before accepting.
    """

    def __init__(
        self,
        rng: random.Random,
        *,
        default_link: LinkSpec | None = None,
        window: int = DEFAULT_WINDOW,
        stall_timeout: float = 30.0,
        connect_timeout: float = 75.0,
        backlog: int = DEFAULT_BACKLOG,
    ) -> None:
        self.rng = rng
        self.default_link = default_link or LinkSpec()
        self.window = window
        self.stall_timeout = stall_timeout
        self.connect_timeout = connect_timeout
        self.backlog = backlog
        self._links: dict[tuple[int, int], LinkSpec] = {}
        self._group: dict[int, int] = {}
        self._down: dict[int, None] = {}
        self._no_inbound: dict[int, None] = {}
        self._listeners: dict[int, SimListener] = {}
        self._wires: dict[_Wire, None] = {}
        self._changed = anyio.Event()

    # -- configuration ----------------------------------------------------------------------

    def link(self, a: int, b: int) -> LinkSpec:
        """The link spec between ``a`` and ``b``."""
        return self._links.get((min(a, b), max(a, b)), self.default_link)

    def set_link(self, a: int, b: int, spec: LinkSpec) -> None:
        """Use ``spec`` for new connections between ``a`` and ``b``."""
        self._links[(min(a, b), max(a, b))] = spec

    def set_reachable(self, node: int, reachable: bool) -> None:
        """Whether ``node`` accepts inbound connections (``False``: behind a NAT; dials to it
        time out, its own dials work)."""
        if reachable:
            self._no_inbound.pop(node, None)
        else:
            self._no_inbound[node] = None

    def transport(self, node: int) -> SimTransport:
        """A transport for ``node``."""
        return SimTransport(self, node)

    # -- faults -------------------------------------------------------------------------------

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Cut the network: nodes in different groups cannot reach each other; nodes in no
        group form one more group together. Replaces any earlier partition."""
        self._group = {n: i + 1 for i, group in enumerate(groups) for n in group}
        self._notify()

    def heal(self) -> None:
        """Remove the partition: stalled traffic flows again."""
        self._group = {}
        self._notify()

    def path_open(self, a: int, b: int) -> bool:
        """Whether packets get from ``a`` to ``b`` now."""
        return self._group.get(a, 0) == self._group.get(b, 0)

    def crash(self, node: int) -> None:
        """The node's process dies: its connections reset, its listener goes, dials to it are
        refused until ``restart``."""
        self._down[node] = None
        listener = self._listeners.pop(node, None)
        if listener is not None:
            listener.closed = True
            listener._send.close()
        self.drop(node)

    def restart(self, node: int) -> None:
        """The node may listen and be dialed again."""
        self._down.pop(node, None)
        self._notify()

    def is_up(self, node: int) -> bool:
        return node not in self._down

    def drop(self, a: int, b: int | None = None) -> int:
        """Reset every connection of ``a`` (to ``b`` only, if given).

        Returns:
            How many connections were reset.
        """
        victims = [w for w in self._wires if a in (w.a, w.b) and (b is None or b in (w.a, w.b))]
        for wire in victims:
            wire.break_()
        return len(victims)

    @property
    def connection_count(self) -> int:
        """Live connections in the network."""
        return len(self._wires)

    # -- internals ------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
        for wire in self._wires:
            wire.wake()

    def _forget(self, wire: _Wire) -> None:
        self._wires.pop(wire, None)

    async def _wait_reachable(self, src: int, dst: int, deadline: float) -> None:
        while not (self.path_open(src, dst) and dst not in self._no_inbound):
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                raise TransportError(f"dial /memory/{dst} timed out: unreachable")
            with anyio.move_on_after(remaining):
                await self._changed.wait()

    async def _dial(self, src: int, dst: int) -> SimConnection:
        if dst not in self._listeners and dst not in self._down:
            await anyio.lowlevel.checkpoint()
            raise TransportError(f"dial /memory/{dst} failed: no such node listens")
        spec = self.link(src, dst)
        await anyio.sleep(spec.latency.sample(self.rng))  # SYN
        await self._wait_reachable(src, dst, anyio.current_time() + self.connect_timeout)
        await anyio.sleep(spec.latency.sample(self.rng))  # SYN-ACK or RST
        listener = self._listeners.get(dst)
        if dst in self._down or listener is None or not self.is_up(src):
            raise TransportError(f"dial /memory/{dst} failed: connection refused")
        wire = _Wire(self, src, dst)
        src_addr, dst_addr = Multiaddr(f"/memory/{src}"), Multiaddr(f"/memory/{dst}")
        dialer = SimConnection(wire, wire.a_to_b, wire.b_to_a, src_addr, dst_addr)
        accepted = SimConnection(wire, wire.b_to_a, wire.a_to_b, dst_addr, src_addr)
        if not listener._offer(accepted):
            raise TransportError(f"dial /memory/{dst} failed: backlog full")
        self._wires[wire] = None
        return dialer


class SimTransport:
    """The ``Transport`` of node ``node`` of ``net``: dials ``/memory/<n>``, listens on its own
    ``/memory/<node>`` (``/memory/0`` means the same)."""

    def __init__(self, net: SimNetwork, node: int) -> None:
        if node < 1:
            raise ValueError("simulated node numbers start at 1 (/memory/0 means 'any')")
        self.net = net
        self.node = node

    def can_dial(self, addr: Multiaddr) -> bool:
        return node_of(addr) is not None

    def can_listen(self, addr: Multiaddr) -> bool:
        return node_of(addr) in (0, self.node)

    async def dial(self, addr: Multiaddr) -> SimConnection:
        """Connect after one simulated round trip.

        Raises:
            TransportError: no such node, refused (crashed, not listening, backlog full), or
                unreachable (cut, NAT) for longer than the network's ``connect_timeout``.
        """
        dst = node_of(addr)
        if dst is None:
            raise TransportError(f"not a simulated address: {addr}")
        return await self.net._dial(self.node, dst)

    async def listen(self, addr: Multiaddr) -> SimListener:
        """Raises: TransportError: not this node's address, node down, or already listening."""
        await anyio.lowlevel.checkpoint()
        if not self.can_listen(addr):
            raise TransportError(f"node {self.node} cannot listen on {addr}")
        if not self.net.is_up(self.node):
            raise TransportError(f"node {self.node} is down")
        if self.node in self.net._listeners:
            raise TransportError(f"/memory/{self.node} is already in use")
        listener = SimListener(self.net, self.node, self.net.backlog)
        self.net._listeners[self.node] = listener
        return listener
