"""The simulated network: nodes with IPv4/IPv6 addresses, links, NAT and firewall boxes,
partitions, crashes and connection drops; TCP-like connections and UDP-like datagrams between
``/ip4|ip6/<a>/tcp|udp/<p>`` endpoints (``/memory/<n>`` still dials node *n* directly).

Delivery happens by time, not by I/O: a write is stamped with its arrival time (``LinkDirection``)
and the reader sleeps until then, so on a virtual-time loop a run is a function of its seed.
Semantics are in docs/simulation.md ("The virtual network").
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import anyio
from multiaddr import Multiaddr

from p2pstack.errors import TransportError
from transports.simnet._addresses import AddressPlan, Endpoint, IPAddress
from transports.simnet._addresses import format_endpoint as _fmt
from transports.simnet._datagram import SimDatagramSocket
from transports.simnet._link import LinkDirection, LinkSpec
from transports.simnet._nat import NatBox, NatMapping, NatSpec
from transports.simnet._routing import Egress, Routing
from transports.simnet._stream import SimConnection, _Wire, connection_pair
from transports.simnet._transport import SimListener, SimTransport

__all__ = ["DEFAULT_BACKLOG", "DEFAULT_WINDOW", "SimNetwork"]

#: Bytes one direction of a connection holds in flight or unread before ``send`` blocks (a
#: TCP send buffer plus receive window).
DEFAULT_WINDOW = 256 * 1024
#: Connections a listener holds before they are accepted; further dials are refused.
DEFAULT_BACKLOG = 128
#: First port handed out for port 0 and outgoing connections (the IANA dynamic range).
EPHEMERAL_FIRST, EPHEMERAL_LAST = 49152, 65535


class _PendingDial:
    """A dial in SYN-SENT: a crossing SYN (simultaneous open) hands it its connection."""

    def __init__(self) -> None:
        self.conn: SimConnection | None = None
        self.event = anyio.Event()


#: A SYN that found a listener: the listener, its node, the endpoint there, the mappings that
#: let it in.
_Offer = tuple[SimListener, int, Endpoint, tuple[NatMapping, ...]]


class SimNetwork:
    """Nodes, addresses, links, NAT boxes and faults of one simulation.

    Args:
        rng: the seeded source of latency draws and losses.
        default_link: the link between nodes without a specific one.
        window: bytes in flight or unread per direction before ``send`` blocks.
        stall_timeout: seconds data may wait at a cut before its connection resets.
        connect_timeout: seconds a dial whose SYNs get no answer keeps retrying before it fails
            (the host's own, usually shorter, dial timeout normally fires first).
        backlog: connections a listener holds before accepting.
        addresses: the address plan (which families, which pools).
        syn_rto: the first SYN retransmission timeout (RFC 6298: 1 s), doubling.
        datagram_queue: datagrams a socket holds unread before dropping arrivals.
        datagram_backlog: bytes of datagrams queued for a link's bandwidth before dropping.
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
        addresses: AddressPlan | None = None,
        syn_rto: float = 1.0,
        datagram_queue: int = 1024,
        datagram_backlog: int = 256 * 1024,
    ) -> None:
        self.rng = rng
        self.default_link = default_link or LinkSpec()
        self.window = window
        self.stall_timeout = stall_timeout
        self.connect_timeout = connect_timeout
        self.backlog = backlog
        self.routing = Routing(addresses or AddressPlan())
        self.syn_rto = syn_rto
        self.datagram_queue = datagram_queue
        self.datagram_backlog = datagram_backlog
        #: Datagrams dropped in the network, by cause (``loss``, ``nat``, ``cut``, ``down``,
        #: ``port``); full receive queues are counted per socket.
        self.datagram_drops: dict[str, int] = {}
        self._links: dict[tuple[int, int], LinkSpec] = {}
        self._group: dict[int, int] = {}
        self._down: dict[int, None] = {}
        self._no_inbound: dict[int, None] = {}
        # Listeners by node (``/memory``) or (node, IP version, port).
        self._listeners: dict[object, SimListener] = {}
        self._udp: dict[tuple[int, int, int], SimDatagramSocket] = {}
        self._next_port: dict[int, int] = {}
        self._syn_sent: dict[tuple[int, Endpoint, Endpoint], _PendingDial] = {}
        self._dgram_links: dict[tuple[int, int], LinkDirection] = {}
        self._dgram_seq = 0
        self._wires: dict[_Wire, None] = {}
        self._changed = anyio.Event()

    # -- configuration ----------------------------------------------------------------------

    def link(self, a: int, b: int) -> LinkSpec:
        """The link spec between ``a`` and ``b``."""
        return self._links.get((min(a, b), max(a, b)), self.default_link)

    def set_link(self, a: int, b: int, spec: LinkSpec) -> None:
        """Use ``spec`` for new connections and datagrams between ``a`` and ``b``."""
        self._links[(min(a, b), max(a, b))] = spec
        self._dgram_links.pop((a, b), None)
        self._dgram_links.pop((b, a), None)

    def set_reachable(self, node: int, reachable: bool) -> None:
        """Whether ``node`` accepts inbound connections (``False``: dials to it time out, its
        own dials work). A coarse switch next to the NAT boxes of ``add_nat``."""
        if reachable:
            self._no_inbound.pop(node, None)
        else:
            self._no_inbound[node] = None

    def add_nat(self, spec: NatSpec, nodes: Iterable[int]) -> NatBox:
        """Put ``nodes`` behind a new NAT or firewall box. Call before they listen or dial:
        behind a translating box a node's addresses become private ones.

        Returns:
            The box (its ``public`` addresses, its live ``mappings(now)``).

        Raises:
            ValueError: a node is already behind a box, or (for a translating box) already
                listens or has a socket on its public address.
        """
        members = list(nodes)
        if spec.translate:
            busy = {listener.node for listener in self._listeners.values()}
            busy.update(n for n, _, _ in self._udp)
            if early := sorted(busy.intersection(members)):
                raise ValueError(f"nodes {early} already use their public addresses")
        # Only a box that draws ports takes a seed from the network's stream, so adding
        # other boxes leaves every latency draw where it was.
        rng = random.Random(self.rng.getrandbits(64)) if spec.port_allocation == "random" else None
        return self.routing.add_box(spec, members, rng)

    def addresses(self, node: int) -> tuple[IPAddress, ...]:
        """``node``'s own IP addresses (private behind a translating box), IPv4 first."""
        return self.routing.addresses(node)

    def transport(self, node: int, *, reuse_port: bool = False) -> SimTransport:
        """A transport for ``node`` (``reuse_port``: dial from the listening port)."""
        return SimTransport(self, node, reuse_port=reuse_port)

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
        """The node's process dies: its connections reset, its listeners and sockets go,
        dials to it are refused until ``restart``."""
        self._down[node] = None
        for key, listener in list(self._listeners.items()):
            if listener.node == node:
                del self._listeners[key]
                listener.closed = True
                listener._send.close()
        for sock in [s for (n, _, _), s in self._udp.items() if n == node]:
            sock.close()
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

    def _ephemeral(self, node: int) -> int:
        """The next free port of ``node`` (deterministic: counts up, skipping bound ports)."""
        port = self._next_port.get(node, EPHEMERAL_FIRST)
        span = EPHEMERAL_LAST - EPHEMERAL_FIRST + 1
        for _ in range(span):
            nxt = EPHEMERAL_FIRST + (port + 1 - EPHEMERAL_FIRST) % span
            if not self._bound(node, port):
                self._next_port[node] = nxt
                return port
            port = nxt
        raise TransportError(f"node {node} has no free port")

    def _bound(self, node: int, port: int) -> bool:
        return any(
            (node, v, port) in self._listeners or (node, v, port) in self._udp for v in (4, 6)
        )

    def _local_endpoint(self, node: int, ip: IPAddress | None, version: int, port: int) -> Endpoint:
        own = self.routing.address(node, version)
        if own is None or (ip is not None and ip != own and not ip.is_unspecified):
            raise TransportError(f"node {node} has no address {ip or f'of IPv{version}'}")
        return own, (port or self._ephemeral(node))

    # -- listening and binding (called by SimTransport) ----------------------------------------

    def _listen_tcp(self, node: int, ip: IPAddress, port: int) -> SimListener:
        if not self.is_up(node):
            raise TransportError(f"node {node} is down")
        if port and (node, ip.version, port) in self._listeners:
            raise TransportError(f"{_fmt('tcp', (ip, port))} is already in use")
        local = self._local_endpoint(node, ip, ip.version, port)
        listener = SimListener(self, node, (node, ip.version, local[1]), _fmt("tcp", local))
        self._listeners[listener.key] = listener
        return listener

    def _listen_memory(self, node: int) -> SimListener:
        if not self.is_up(node):
            raise TransportError(f"node {node} is down")
        if node in self._listeners:
            raise TransportError(f"/memory/{node} is already in use")
        listener = SimListener(self, node, node, Multiaddr(f"/memory/{node}"))
        self._listeners[node] = listener
        return listener

    def _bind_udp(self, node: int, ip: IPAddress, port: int) -> SimDatagramSocket:
        if not self.is_up(node):
            raise TransportError(f"node {node} is down")
        if port and (node, ip.version, port) in self._udp:
            raise TransportError(f"{_fmt('udp', (ip, port))} is already in use")
        local = self._local_endpoint(node, ip, ip.version, port)
        sock = SimDatagramSocket(self, node, local, self.datagram_queue)
        self._udp[(node, ip.version, local[1])] = sock
        return sock

    def _unbind(self, sock: SimDatagramSocket) -> None:
        key = (sock.node, sock.local[0].version, sock.local[1])
        if self._udp.get(key) is sock:
            del self._udp[key]

    # -- dialing -------------------------------------------------------------------------------

    async def _wait_reachable(self, src: int, dst: int, deadline: float) -> None:
        while not (self.path_open(src, dst) and dst not in self._no_inbound):
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                raise TransportError(f"dial /memory/{dst} timed out: unreachable")
            with anyio.move_on_after(remaining):
                await self._changed.wait()

    async def _dial_memory(self, src: int, dst: int) -> SimConnection:
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
        src_addr, dst_addr = Multiaddr(f"/memory/{src}"), Multiaddr(f"/memory/{dst}")
        dialer, accepted = connection_pair(
            self, src, dst, a_addrs=(src_addr, dst_addr), b_addrs=(dst_addr, src_addr)
        )
        if not listener._offer(accepted):
            raise TransportError(f"dial /memory/{dst} failed: backlog full")
        self._wires[dialer._wire] = None
        return dialer

    async def _dial_tcp(self, src: int, dst: Endpoint, local_port: int | None) -> SimConnection:
        await anyio.lowlevel.checkpoint()
        if not self.is_up(src):
            raise TransportError(f"node {src} is down")
        local = self._local_endpoint(src, None, dst[0].version, local_port or 0)
        key = (src, local, dst)
        if key in self._syn_sent:
            raise TransportError(f"a dial from {local} to {dst} is under way")
        pending = self._syn_sent[key] = _PendingDial()
        try:
            return await self._syn_loop(src, local, dst, pending)
        finally:
            del self._syn_sent[key]

    async def _syn_loop(
        self, src: int, local: Endpoint, dst: Endpoint, pending: _PendingDial
    ) -> SimConnection:
        """Send SYNs (retransmitting with a doubling timeout) until one is answered."""
        where = _fmt("tcp", dst)
        deadline = anyio.current_time() + self.connect_timeout
        rto = self.syn_rto
        while True:
            out = self.routing.egress("tcp", src, local, dst, anyio.current_time())
            spec = self.link(src, self.routing.hint(src, "tcp", dst))
            await anyio.sleep(spec.latency.sample(self.rng))  # the SYN travels
            if pending.conn is not None:
                return pending.conn
            answer = None if out is None else self._syn_arrives(src, local, dst, out)
            if answer is not None:
                await anyio.sleep(spec.latency.sample(self.rng))  # SYN-ACK or RST
                if isinstance(answer, str):
                    raise TransportError(f"dial {where} failed: {answer}")
                if isinstance(answer, SimConnection):
                    return answer
                return self._accepted(src, local, dst, out=out, landing=answer)
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                raise TransportError(f"dial {where} timed out: unreachable")
            with anyio.move_on_after(min(rto, remaining)):
                await pending.event.wait()
            if pending.conn is not None:
                return pending.conn
            rto *= 2

    def _syn_arrives(
        self, src: int, local: Endpoint, dst: Endpoint, out: Egress
    ) -> str | SimConnection | _Offer | None:
        """A SYN reaches its destination: lost (``None``), refused (the reason), met by a
        crossing SYN (simultaneous open: the connection), or offered to a listener."""
        seen, out_flows = out
        landing = self.routing.ingress("tcp", src, seen, dst, anyio.current_time())
        if landing is None:
            return None
        node, internal, in_flows = landing
        if not self.path_open(src, node) or node in self._no_inbound:
            return None
        if not self.is_up(node):
            return "connection refused"
        crossing = self._syn_sent.get((node, internal, seen))
        if crossing is not None and crossing.conn is None:
            mine, theirs = connection_pair(
                self,
                src,
                node,
                a_addrs=(_fmt("tcp", local), _fmt("tcp", dst)),
                b_addrs=(_fmt("tcp", internal), _fmt("tcp", seen)),
                flows=out_flows + in_flows,
            )
            self._wires[mine._wire] = None
            crossing.conn = theirs
            crossing.event.set()
            return mine
        listener = self._listeners.get((node, internal[0].version, internal[1]))
        if listener is None:
            return "connection refused"
        return listener, node, internal, in_flows

    def _accepted(
        self,
        src: int,
        local: Endpoint,
        dst: Endpoint,
        *,
        out: Egress | None,
        landing: _Offer,
    ) -> SimConnection:
        """The SYN-ACK is back: both ends exist, the listener gets its end."""
        assert out is not None
        seen, out_flows = out
        listener, node, internal, in_flows = landing
        if listener.closed or not self.is_up(node) or not self.is_up(src):
            raise TransportError(f"dial {_fmt('tcp', dst)} failed: connection refused")
        mine, theirs = connection_pair(
            self,
            src,
            node,
            a_addrs=(_fmt("tcp", local), _fmt("tcp", dst)),
            b_addrs=(_fmt("tcp", internal), _fmt("tcp", seen)),
            flows=out_flows + in_flows,
        )
        if not listener._offer(theirs):
            raise TransportError(f"dial {_fmt('tcp', dst)} failed: backlog full")
        self._wires[mine._wire] = None
        return mine

    def _dropped(self, cause: str) -> None:
        self.datagram_drops[cause] = self.datagram_drops.get(cause, 0) + 1
