"""The ``Transport`` and ``Listener`` of one simulated node: TCP-like connections on
``/ip4|ip6/<a>/tcp/<p>`` (and ``/memory/<n>``), datagram sockets on ``/ip4|ip6/<a>/udp/<p>``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio
from multiaddr import Multiaddr

from p2pstack.errors import TransportError
from p2pstack.multiaddrs import memory_id
from transports.simnet._addresses import IPAddress, Proto, parse_endpoint
from transports.simnet._datagram import SimDatagramSocket
from transports.simnet._stream import SimConnection

if TYPE_CHECKING:
    from transports.simnet._network import SimNetwork

__all__ = ["SimListener", "SimTransport", "node_of"]

#: The node index of ``/memory/<n>`` (simnet's name for ``p2pstack.multiaddrs.memory_id``).
node_of = memory_id


class SimListener:
    """A listening endpoint of one node (a ``Listener``)."""

    def __init__(self, net: SimNetwork, node: int, key: object, addr: Multiaddr) -> None:
        self._net = net
        self.node = node
        self.key = key
        self._addr = addr
        self._send, self._recv = anyio.create_memory_object_stream[SimConnection](net.backlog)
        self.closed = False

    @property
    def multiaddrs(self) -> Sequence[Multiaddr]:
        """The bound address (the node's own address and the real port)."""
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
        if self._net._listeners.get(self.key) is self:
            del self._net._listeners[self.key]
        self._send.close()
        while True:
            try:
                pending = self._recv.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
            pending._wire.break_()
        self._recv.close()
        await anyio.lowlevel.checkpoint()


class SimTransport:
    """The ``Transport`` of node ``node`` of ``net``.

    Listens on ``/ip4/0.0.0.0/tcp/<p>``, ``/ip6/::/tcp/<p>`` or the node's own address (port 0:
    the next free port, deterministically), and on ``/memory/<node>`` (``/memory/0`` means the
    same); dials any of those forms.

    Args:
        net: the network.
        node: the node number (from 1).
        reuse_port: dial from the port of this transport's listener of the same IP family (as
            TCP hole punching needs); otherwise from a fresh ephemeral port.
    """

    def __init__(self, net: SimNetwork, node: int, *, reuse_port: bool = False) -> None:
        if node < 1:
            raise ValueError("simulated node numbers start at 1 (/memory/0 means 'any')")
        self.net = net
        self.node = node
        self.reuse_port = reuse_port
        self._listen_ports: dict[int, SimListener] = {}

    def _own(self, addr: Multiaddr, proto: Proto) -> tuple[IPAddress, int] | None:
        parsed = parse_endpoint(addr)
        if parsed is None or parsed[0] != proto or addr.get_peer_id() is not None:
            return None
        _, ip, port = parsed
        own = self.net.routing.address(self.node, ip.version)
        return (ip, port) if own is not None and (ip.is_unspecified or ip == own) else None

    def can_dial(self, addr: Multiaddr) -> bool:
        parsed = parse_endpoint(addr)
        return node_of(addr) is not None or (parsed is not None and parsed[0] == "tcp")

    def can_listen(self, addr: Multiaddr) -> bool:
        return node_of(addr) in (0, self.node) or self._own(addr, "tcp") is not None

    async def dial(self, addr: Multiaddr) -> SimConnection:
        """Connect after one simulated round trip (more when SYNs are lost and retransmitted).

        Raises:
            TransportError: no such node, refused (crashed, not listening, backlog full), or
                unreachable (cut, NAT, no such address) for longer than the network's
                ``connect_timeout``.
        """
        dst = node_of(addr)
        if dst is not None:
            return await self.net._dial_memory(self.node, dst)
        parsed = parse_endpoint(addr)
        if parsed is None or parsed[0] != "tcp":
            raise TransportError(f"not a simulated address: {addr}")
        _, ip, port = parsed
        local_port = None
        listener = self._listen_ports.get(ip.version)
        if self.reuse_port and listener is not None and not listener.closed:
            local_port = parse_endpoint(listener.multiaddrs[0])[2]  # type: ignore[index]  # our own address
        return await self.net._dial_tcp(self.node, (ip, port), local_port)

    async def listen(self, addr: Multiaddr) -> SimListener:
        """Raises: TransportError: not this node's address, node down, or already in use."""
        await anyio.lowlevel.checkpoint()
        if not self.can_listen(addr):
            raise TransportError(f"node {self.node} cannot listen on {addr}")
        own = self._own(addr, "tcp")
        if own is None:
            return self.net._listen_memory(self.node)
        listener = self.net._listen_tcp(self.node, *own)
        self._listen_ports.setdefault(own[0].version, listener)
        if self._listen_ports[own[0].version].closed:
            self._listen_ports[own[0].version] = listener
        return listener

    async def bind_datagram(self, addr: Multiaddr) -> SimDatagramSocket:
        """A datagram socket on ``/ip4/0.0.0.0/udp/<p>``, ``/ip6/::/udp/<p>`` or the node's own
        address (port 0: the next free port).

        Raises:
            TransportError: not this node's address, node down, or the port is in use.
        """
        await anyio.lowlevel.checkpoint()
        own = self._own(addr, "udp")
        if own is None:
            raise TransportError(f"node {self.node} cannot bind {addr}")
        return self.net._bind_udp(self.node, *own)
