"""UDP hole punching for QUIC: random datagrams from the QUIC listening socket towards the
peer (https://github.com/libp2p/specs/blob/master/relay/DCUtR.md; the timing follows
go-libp2p and js-libp2p: a packet every 10-200 ms while the peer's QUIC dial comes in).

The QUIC transport takes a ``socket_factory`` (its ``DatagramSocket`` seam). ``PunchSockets``
wraps such a factory, remembers the sockets it opened, and sends punch packets through the one
bound to a listen port, so that the NAT maps exactly the address the peer dials. This module
only knows the shape of those sockets (``PunchSocket``), not the QUIC transport.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

from multiaddr import Multiaddr

__all__ = ["PunchSocket", "PunchSockets", "punch_target"]

Address = tuple[str, int]

#: Bytes per punch packet. The first byte has the QUIC "long header" bit clear, so a QUIC
#: endpoint that receives one sees a short-header packet of no connection and drops it.
PUNCH_SIZE = 64


class PunchSocket(Protocol):
    """What a punch needs of a datagram socket (``transports.quic.DatagramSocket`` fits)."""

    @property
    def local_address(self) -> Address:
        """The bound ``(host, port)``."""
        ...

    async def send(self, datagrams: Sequence[tuple[bytes, Address]]) -> None:
        """Send datagrams; never raises for the network."""
        ...


S = TypeVar("S", bound=PunchSocket)


def punch_target(addr: Multiaddr) -> Address | None:
    """``(ip, port)`` of an ``/ip4|ip6/../udp/../quic-v1`` address, else ``None``."""
    items = addr.items()
    if len(items) < 3 or items[0][0].name not in ("ip4", "ip6") or items[1][0].name != "udp":
        return None
    if items[2][0].name != "quic-v1" or items[0][1] is None or items[1][1] is None:
        return None
    return str(items[0][1]), int(str(items[1][1]))


class PunchSockets(Generic[S]):
    """A socket factory that keeps the sockets it opened, to punch from them.

    Args:
        inner: the real factory, such as ``transports.quic.open_udp_socket``.
    """

    def __init__(self, inner: Callable[[str, int], Awaitable[S]]) -> None:
        self._inner = inner
        self._sockets: list[S] = []

    async def __call__(self, host: str, port: int) -> S:
        """Open a socket with the inner factory and remember it (the factory interface)."""
        sock = await self._inner(host, port)
        # A host opens its listen sockets when it starts, before any dial: the first socket of
        # a family is a listen socket whenever there is one (and then QUIC dials use it too).
        self._sockets.append(sock)
        return sock

    def socket_for(self, target: Address) -> S | None:
        """The first socket opened of the target's address family."""
        ipv6 = ":" in target[0]
        for sock in self._sockets:
            if (":" in sock.local_address[0]) == ipv6:
                return sock
        return None

    async def punch(self, addr: Multiaddr, payload: bytes) -> bool:
        """Send ``payload`` to the quic-v1 address ``addr`` from a listen socket.

        Returns:
            Whether a packet was sent (``False``: not a quic-v1 address, or no socket).
        """
        target = punch_target(addr)
        if target is None:
            return False
        sock = self.socket_for(target)
        if sock is None:
            return False
        await sock.send([(payload, target)])
        return True
