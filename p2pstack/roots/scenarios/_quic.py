"""QUIC on the simulated network: ``SimQuicSocket`` puts the QUIC transport's
``DatagramSocket`` seam on a simnet ``SimDatagramSocket``, so the real QUIC stack (aioquic's
core and our driver) runs over virtual links, latency, loss and NAT boxes
(docs/simulation.md, "QUIC")."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Sequence

import anyio
from multiaddr import Multiaddr

from p2pstack.errors import TransportError
from transports.quic import DatagramSocket, DatagramSocketFactory, QuicConfig, QuicTransport
from transports.simnet import SimDatagramSocket, SimTransport, format_endpoint, parse_endpoint

__all__ = ["SimQuicSocket", "sim_quic_sockets", "sim_quic_transport"]

log = logging.getLogger("p2pstack.roots.scenarios")

Address = tuple[str, int]
#: Addresses converted and kept (both ways) before the caches start afresh: peers of one node.
_CACHE = 4096


class SimQuicSocket:
    """A QUIC ``DatagramSocket`` on a simulated datagram socket; addresses are converted
    between ``(host, port)`` and ``/ip4|ip6/<host>/udp/<port>``.

    Args:
        sock: a bound simulated socket (``SimTransport.bind_datagram``).
    """

    def __init__(self, sock: SimDatagramSocket) -> None:
        self.sock = sock
        self.local_address: Address = self._address(sock.local_multiaddr)
        self._to_multiaddr: dict[Address, Multiaddr] = {}
        self._to_address: dict[bytes, Address] = {}

    @staticmethod
    def _address(addr: Multiaddr) -> Address:
        parsed = parse_endpoint(addr)
        if parsed is None:  # simnet only ever reports /ip4|ip6/<a>/udp/<p>
            raise TransportError(f"not a datagram address: {addr}")
        return str(parsed[1]), parsed[2]

    def _multiaddr(self, addr: Address) -> Multiaddr:
        found = self._to_multiaddr.get(addr)
        if found is None:
            if len(self._to_multiaddr) >= _CACHE:
                self._to_multiaddr.clear()
            ip = ipaddress.ip_address(addr[0])
            found = self._to_multiaddr[addr] = format_endpoint("udp", (ip, addr[1]))
        return found

    async def send(self, datagrams: Sequence[tuple[bytes, Address]]) -> None:
        # Sending never waits in the simulated network (a full queue drops), as a real UDP
        # socket with room in its buffer: no checkpoint, like the real one.
        self.send_nowait(datagrams)

    def send_nowait(self, datagrams: Sequence[tuple[bytes, Address]]) -> None:
        sock = self.sock
        for data, addr in datagrams:
            try:
                sock.send_nowait(data, self._multiaddr(addr))
            except (TransportError, ValueError, anyio.ClosedResourceError) as exc:
                log.debug("datagram to %s not sent: %s", addr, exc)
                return

    async def receive(self, limit: int) -> list[tuple[bytes, Address]]:
        sock = self.sock
        data, sender = await sock.receive()
        batch = [(data, self._source(sender))]
        while len(batch) < limit:
            try:
                data, sender = sock.receive_nowait()
            except anyio.WouldBlock:
                break
            batch.append((data, self._source(sender)))
        return batch

    def _source(self, sender: Multiaddr) -> Address:
        key = sender.to_bytes()
        found = self._to_address.get(key)
        if found is None:
            if len(self._to_address) >= _CACHE:
                self._to_address.clear()
            found = self._to_address[key] = self._address(sender)
        return found

    def close(self) -> None:
        self.sock.close()


def sim_quic_sockets(transport: SimTransport) -> DatagramSocketFactory:
    """The ``DatagramSocketFactory`` binding simulated sockets of ``transport``'s node.

    Args:
        transport: the node's simulated transport.

    Returns:
        An async ``(host, port) -> SimQuicSocket`` (``0.0.0.0`` / ``::``: the node's address;
        port 0: its next free port); raises ``TransportError`` when the port is taken.
    """

    async def bind(host: str, port: int) -> DatagramSocket:
        family = "ip6" if ":" in host else "ip4"
        sock = await transport.bind_datagram(Multiaddr(f"/{family}/{host}/udp/{port}"))
        return SimQuicSocket(sock)

    return bind


def sim_quic_transport(
    transport: SimTransport,
    random_bytes: Callable[[int], bytes],
    config: QuicConfig | None = None,
) -> QuicTransport:
    """A ``QuicTransport`` for one simulated node: its sockets are ``transport``'s datagram
    sockets, so it listens on and dials ``/ip4|ip6/<address>/udp/<port>/quic-v1``; its
    certificate key comes from ``random_bytes`` (a seeded stream: handshakes then have the
    same sizes, hence the same timings, in every run of a seed)."""
    return QuicTransport(
        config=config, socket_factory=sim_quic_sockets(transport), random_bytes=random_bytes
    )
