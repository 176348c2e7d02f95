"""Connections of the simulated network: two pipes per connection whose writes carry their
arrival time (``LinkDirection``), so that on a virtual-time loop delivery is a function of the
seed (docs/simulation.md, "The virtual network")."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

import anyio
from multiaddr import Multiaddr

from p2pstack.interfaces import Buffer
from p2pstack.sync import loop_clock, running_asyncio_loop
from transports.simnet._link import LinkDirection
from transports.simnet._nat import NatMapping

if TYPE_CHECKING:
    from transports.simnet._network import SimNetwork

__all__ = ["SimConnection"]


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

    def __init__(self, net: SimNetwork, a: int, b: int, flows: tuple[NatMapping, ...] = ()) -> None:
        spec = net.link(a, b)
        self.net = net
        # The NAT mappings the connection goes through: traffic refreshes them, and a
        # mapping that idled out breaks the connection (the box forgot the flow).
        self.flows = flows
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

    def refresh_flows(self) -> bool:
        """Refresh the NAT mappings on the path; ``False`` if one has expired."""
        now = self.clock()
        return all(mapping.refresh(now) for mapping in self.flows)

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
        if self._wire.flows and not self._wire.refresh_flows():
            self._wire.break_()
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


def connection_pair(
    net: SimNetwork,
    a: int,
    b: int,
    *,
    a_addrs: tuple[Multiaddr, Multiaddr],
    b_addrs: tuple[Multiaddr, Multiaddr],
    flows: tuple[NatMapping, ...] = (),
) -> tuple[SimConnection, SimConnection]:
    """Both ends of a new connection between nodes ``a`` and ``b``.

    Args:
        net: the network (link specs, window, seeded stream).
        a: the node of the first end.
        b: the node of the second end.
        a_addrs: (local, remote) multiaddrs as ``a`` sees them.
        b_addrs: (local, remote) multiaddrs as ``b`` sees them.
        flows: the NAT mappings on the path.

    Returns:
        ``a``'s end and ``b``'s end.
    """
    wire = _Wire(net, a, b, flows)
    return (
        SimConnection(wire, wire.a_to_b, wire.b_to_a, *a_addrs),
        SimConnection(wire, wire.b_to_a, wire.a_to_b, *b_addrs),
    )
