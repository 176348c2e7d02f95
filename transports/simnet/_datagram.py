"""UDP-like sockets of the simulated network: unreliable, unordered datagrams between
``/ip4|ip6/<a>/udp/<p>`` endpoints, subject to link latency, bandwidth and loss, NAT boxes and
bounded queues (docs/simulation.md, "Datagrams")."""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

import anyio
import attrs
from multiaddr import Multiaddr

from p2pstack.errors import TransportError
from p2pstack.sync import running_asyncio_loop
from transports.simnet._addresses import Endpoint, format_endpoint, parse_endpoint
from transports.simnet._link import LinkDirection

if TYPE_CHECKING:
    from transports.simnet._network import SimNetwork

__all__ = ["MAX_DATAGRAM", "DatagramStatistics", "SimDatagramSocket"]

#: Largest payload of one datagram (IPv4's UDP maximum).
MAX_DATAGRAM = 65507
#: How early a datagram counts as arrived: asyncio runs timers up to one clock resolution
#: (1 ns on the virtual loop) before their time, and a reader woken that early must not wait
#: again for a timer that is itself already due (it would spin without the clock advancing).
_EARLY = 2e-9


@attrs.frozen(kw_only=True)
class DatagramStatistics:
    """Counters of one socket: datagrams sent, received, and dropped because its receive
    queue was full."""

    sent: int
    received: int
    dropped_queue_full: int


class SimDatagramSocket:
    """A bound datagram socket of one node (``send_datagram(data, addr)`` as the
    ``DatagramSender`` shape; ``receive() -> (data, from_addr)``).

    Args:
        net: the network.
        node: the node it belongs to.
        local: the bound endpoint (the node's own address of the family, a real port).
        max_queue: datagrams held unread before further arrivals are dropped.
    """

    def __init__(self, net: SimNetwork, node: int, local: Endpoint, max_queue: int) -> None:
        self._net = net
        self.node = node
        self.local = local
        self._max_queue = max_queue
        # (arrival time, sequence number, data, sender) ordered by arrival.
        self._queue: list[tuple[float, int, bytes, Multiaddr]] = []
        self._readable: anyio.Event | None = None
        self.closed = False
        self._sent = 0
        self._received = 0
        self._dropped = 0

    @property
    def local_multiaddr(self) -> Multiaddr:
        """The bound address as this node sees it (private behind a NAT)."""
        return format_endpoint("udp", self.local)

    def statistics(self) -> DatagramStatistics:
        """A snapshot of the counters."""
        return DatagramStatistics(
            sent=self._sent, received=self._received, dropped_queue_full=self._dropped
        )

    async def send_datagram(self, data: bytes, addr: Multiaddr) -> None:
        """Send one datagram to ``/ip4|ip6/<a>/udp/<p>``. Never blocks for the network: a
        datagram the path cannot carry (loss, NAT, cut, full queues) is silently dropped.

        Raises:
            anyio.ClosedResourceError: the socket was closed.
            TransportError: ``addr`` is not a UDP address of this socket's family, or
                ``data`` is larger than ``MAX_DATAGRAM``.
        """
        self.send_nowait(data, addr)
        await anyio.lowlevel.checkpoint()

    def send_nowait(self, data: bytes, addr: Multiaddr) -> None:
        """``send_datagram`` without the checkpoint (sending never waits for the network).

        Raises:
            anyio.ClosedResourceError: the socket was closed.
            TransportError: as ``send_datagram``.
        """
        if self.closed:
            raise anyio.ClosedResourceError
        parsed = parse_endpoint(addr)
        if parsed is None or parsed[0] != "udp" or parsed[1].version != self.local[0].version:
            raise TransportError(f"cannot send a datagram from {self.local_multiaddr} to {addr}")
        if len(data) > MAX_DATAGRAM:
            raise TransportError(f"datagram of {len(data)} bytes is too large")
        self._sent += 1
        send_datagram(self._net, self, bytes(data), (parsed[1], parsed[2]))

    async def receive(self) -> tuple[bytes, Multiaddr]:
        """Wait for the next datagram.

        Returns:
            The payload and the sender's address as seen here (its NAT's public endpoint
            when it is behind one).

        Raises:
            anyio.ClosedResourceError: the socket was closed.
        """
        while True:
            if self.closed:
                raise anyio.ClosedResourceError
            if self._queue:
                arrival = self._queue[0][0]
                now = anyio.current_time()
                if arrival <= now + _EARLY:
                    _, _, data, sender = heapq.heappop(self._queue)
                    self._received += 1
                    return data, sender
                with anyio.move_on_after(arrival - now):
                    await self._wait()
                continue
            await self._wait()

    def receive_nowait(self) -> tuple[bytes, Multiaddr]:
        """The next datagram if one has arrived (as ``receive``).

        Raises:
            anyio.WouldBlock: none has arrived yet.
            anyio.ClosedResourceError: the socket was closed.
        """
        if self.closed:
            raise anyio.ClosedResourceError
        if not self._queue or self._queue[0][0] > anyio.current_time() + _EARLY:
            raise anyio.WouldBlock
        _, _, data, sender = heapq.heappop(self._queue)
        self._received += 1
        return data, sender

    async def _wait(self) -> None:
        if self._readable is None:
            self._readable = anyio.Event()
        await self._readable.wait()

    def _wake(self) -> None:
        if self._readable is not None:
            self._readable.set()
            self._readable = None

    def _deliver(self, arrival: float, seq: int, data: bytes, sender: Multiaddr) -> None:
        """Queue an arrived datagram (or drop it when the queue is full)."""
        if self.closed:
            return
        if len(self._queue) >= self._max_queue:
            self._dropped += 1
            return
        heapq.heappush(self._queue, (arrival, seq, data, sender))
        self._wake()

    async def aclose(self) -> None:
        """Close the socket; unread datagrams are discarded. Idempotent."""
        self.close()
        await anyio.lowlevel.checkpoint()

    def close(self) -> None:
        """``aclose`` without the checkpoint: a waiting ``receive`` raises
        ``ClosedResourceError``. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self._queue.clear()
        self._net._unbind(self)
        self._wake()


@attrs.frozen
class _Datagram:
    """A datagram in flight: its sender, source as seen after the sender's NAT, destination,
    payload, arrival time and sequence number (the tie-break between equal arrivals)."""

    src: int
    seen: Endpoint
    dst: Endpoint
    data: bytes
    arrival: float
    seq: int


def send_datagram(net: SimNetwork, sock: SimDatagramSocket, data: bytes, dst: Endpoint) -> None:
    """Put a datagram on its way: through the sender's NAT box now, onto the link, and through
    the receiver's box when it arrives (or drop it, counting the cause in ``net``)."""
    src, now = sock.node, anyio.current_time()
    out = net.routing.egress("udp", src, sock.local, dst, now)
    if out is None:
        return net._dropped("nat")
    hint = net.routing.hint(src, "udp", dst)
    link = net._dgram_links.get((src, hint))
    if link is None:
        link = net._dgram_links[(src, hint)] = LinkDirection(net.link(src, hint))
    arrival = link.schedule_datagram(now, len(data), net.rng, max_backlog=net.datagram_backlog)
    if arrival is None:
        return net._dropped("loss")
    net._dgram_seq += 1
    dgram = _Datagram(src, out[0], dst, data, arrival, net._dgram_seq)
    loop = running_asyncio_loop()
    if loop is None:  # trio: decided now, held by the socket until its arrival time
        _arrives(net, dgram)
    else:  # NAT boxes filter it at its arrival time, as hole punching needs
        loop.call_at(arrival, _arrives, net, dgram)
    return None


def _arrives(net: SimNetwork, dgram: _Datagram) -> None:
    landing = net.routing.ingress("udp", dgram.src, dgram.seen, dgram.dst, dgram.arrival)
    if landing is None:
        return net._dropped("nat")
    node, internal, _ = landing
    if not net.path_open(dgram.src, node):
        return net._dropped("cut")
    if not net.is_up(node):
        return net._dropped("down")
    sock = net._udp.get((node, internal[0].version, internal[1]))
    if sock is None:
        return net._dropped("port")
    sock._deliver(dgram.arrival, dgram.seq, dgram.data, format_endpoint("udp", dgram.seen))
    return None
