"""The mDNS discovery service: runs ``MdnsCore`` over a multicast UDP socket
(https://github.com/libp2p/specs/blob/master/discovery/mdns.md). A host ``Service`` and a
``PeerDiscovery`` with source ``"mdns"``."""

from __future__ import annotations

import logging
import secrets
import socket
import string
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from p2pstack.discovery import DiscoveredPeer, DiscoveryFeed
from p2pstack.errors import TransportError
from p2pstack.events import LocalAddrsChanged
from p2pstack.sansio import TimerDriver
from protocols.discovery.mdns._config import MdnsConfig, MdnsStatistics
from protocols.discovery.mdns._core import MDNS_PORT, MdnsCore
from protocols.discovery.mdns._socket import (
    MDNS_GROUP_V4,
    MDNS_GROUP_V6,
    LocalAddresses,
    open_multicast_socket,
    open_multicast_socket_v6,
)

if TYPE_CHECKING:
    from p2pstack.host import Host

__all__ = ["Mdns", "random_peer_name"]

log = logging.getLogger(__name__)

_ALPHABET = string.ascii_lowercase + string.digits
#: Seconds ``stop`` waits to send the goodbye datagram.
_GOODBYE_TIMEOUT = 1.0


def random_peer_name(length: int = 32) -> str:
    """A random DNS label for our instance (js-libp2p uses 63 characters of [a-z0-9])."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


class Mdns:
    """mDNS peer discovery as a host service.

    Args:
        config: intervals, TTL and bounds (``MdnsConfig``).
        peer_name: our instance label; random when ``None``.
        interface: IPv4 address of the interface to use; ``None`` lets the routing table choose.
        group: the IPv4 multicast group (tests may use another one).
        port: the mDNS port.
        ipv4: run mDNS over IPv4 (224.0.0.251).
        ipv6_interface: also (or only, without ``ipv4``) run it over IPv6 (``ff02::fb``) on the
            interface of this name. Off by default: js-libp2p and py-libp2p use IPv4 only.
    """

    source = "mdns"

    def __init__(
        self,
        config: MdnsConfig | None = None,
        *,
        peer_name: str | None = None,
        interface: str | None = None,
        group: str = MDNS_GROUP_V4,
        port: int = MDNS_PORT,
        ipv4: bool = True,
        ipv6_interface: str | None = None,
    ) -> None:
        if not ipv4 and ipv6_interface is None:
            raise ValueError("mDNS needs IPv4 or an IPv6 interface")
        self.config = config or MdnsConfig()
        self.peer_name = peer_name or random_peer_name()
        self._interface = interface
        self._group = group
        self._port = port
        self._ipv4 = ipv4
        self._ipv6_interface = ipv6_interface
        self._feed = DiscoveryFeed()
        self._core: MdnsCore | None = None
        #: Each open socket with its group.
        self._socks: list[tuple[anyio.abc.UDPSocket, str]] = []
        self._timers: TimerDriver | None = None
        self._local = LocalAddresses()
        self._send_lock = anyio.Lock()
        self._unsubscribe: Callable[[], object] | None = None

    def discovered(self) -> AsyncIterator[DiscoveredPeer]:
        return self._feed.discovered()

    def statistics(self) -> MdnsStatistics | None:
        """The core's counters, or ``None`` before ``start``."""
        return self._core.statistics() if self._core is not None else None

    async def start(self, host: Host) -> None:
        """Open the socket and start querying and answering.

        Raises:
            TransportError: the multicast socket could not be opened.
        """
        await self._open_sockets()
        core = MdnsCore(
            peer_id=host.peer_id,
            peer_name=self.peer_name,
            config=self.config,
            now=anyio.current_time(),
        )
        core.set_addrs(host.addrs)
        handle = host.events.on(LocalAddrsChanged, lambda event: core.set_addrs(event.addrs))
        self._unsubscribe = handle.close
        self._core = core
        self._timers = TimerDriver(core, on_fire=self._flush)
        host.start_soon(self._run, name="mdns")

    async def _open_sockets(self) -> None:
        wanted: list[tuple[str, Callable[[], socket.socket]]] = []
        if self._ipv4:
            wanted.append(
                (
                    self._group,
                    lambda: open_multicast_socket(
                        group=self._group, port=self._port, interface=self._interface
                    ),
                )
            )
        if (name := self._ipv6_interface) is not None:
            wanted.append(
                (MDNS_GROUP_V6, lambda: open_multicast_socket_v6(interface=name, port=self._port))
            )
        for group, opener in wanted:
            try:
                raw = opener()
            except OSError as exc:
                for sock, _ in self._socks:
                    await sock.aclose()
                where = f"{group} port {self._port}"
                raise TransportError(
                    f"mDNS: cannot open a multicast socket on {where}: {exc}"
                ) from exc
            self._socks.append((await anyio.abc.UDPSocket.from_socket(raw), group))

    async def stop(self) -> None:
        """Say goodbye (TTL 0 records), close the socket and end ``discovered()``."""
        try:
            if self._core is not None and self._socks:
                self._core.goodbye()
                with anyio.move_on_after(_GOODBYE_TIMEOUT):
                    await self._flush()
        finally:
            if self._unsubscribe is not None:
                self._unsubscribe()
            for sock, _ in self._socks:
                await sock.aclose()
            self._feed.close()

    async def _run(self) -> None:
        assert self._timers is not None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._timers.run)
            async with anyio.create_task_group() as receivers:
                for sock, _ in self._socks:
                    receivers.start_soon(self._receive, sock)
            tg.cancel_scope.cancel()  # every socket closed: stop the timers too

    async def _receive(self, sock: anyio.abc.UDPSocket) -> None:
        assert self._core is not None and self._timers is not None
        core, timers = self._core, self._timers
        try:
            async for data, (ip, port) in sock:
                now = anyio.current_time()
                core.receive_datagram(data, (ip, port), now, local=self._local.check(ip))
                await self._flush()
                timers.poke()
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    async def _flush(self) -> None:
        """Hand discoveries to the feed and send what the core queued. The receive task and the
        timer task both flush: the lock keeps their sends from overlapping on the socket."""
        core = self._core
        assert core is not None
        while (peer := core.next_event()) is not None:
            self._feed.offer(peer)
        async with self._send_lock:
            for data, dest in core.datagrams_to_send():
                for sock, group in self._socks:
                    v6 = group == MDNS_GROUP_V6
                    if dest is not None and (":" in dest[0]) != v6:
                        continue  # a unicast reply leaves by the socket of its family
                    target = dest or (group, self._port)
                    try:
                        await sock.sendto(data, *target)
                    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                        return  # the service is stopping: its sockets closed under a timer
                    except OSError as exc:  # no route, link down: the next period retries
                        log.debug("mdns: send to %s failed: %s", target, exc)
