"""The mDNS discovery service: runs ``MdnsCore`` over a multicast UDP socket
(https://github.com/libp2p/specs/blob/master/discovery/mdns.md). A host ``Service`` and a
``PeerDiscovery`` with source ``"mdns"``."""

from __future__ import annotations

import logging
import secrets
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
from protocols.discovery.mdns._socket import MDNS_GROUP_V4, LocalAddresses, open_multicast_socket

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
        group: the multicast group (tests may use another one).
        port: the mDNS port.
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
    ) -> None:
        self.config = config or MdnsConfig()
        self.peer_name = peer_name or random_peer_name()
        self._interface = interface
        self._group = group
        self._port = port
        self._feed = DiscoveryFeed()
        self._core: MdnsCore | None = None
        self._sock: anyio.abc.UDPSocket | None = None
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
        try:
            raw = open_multicast_socket(
                group=self._group, port=self._port, interface=self._interface
            )
        except OSError as exc:
            where = f"{self._group}:{self._port}"
            raise TransportError(f"mDNS: cannot open a multicast socket on {where}: {exc}") from exc
        self._sock = await anyio.abc.UDPSocket.from_socket(raw)
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

    async def stop(self) -> None:
        """Say goodbye (TTL 0 records), close the socket and end ``discovered()``."""
        try:
            if self._core is not None and self._sock is not None:
                self._core.goodbye()
                with anyio.move_on_after(_GOODBYE_TIMEOUT):
                    await self._flush()
        finally:
            if self._unsubscribe is not None:
                self._unsubscribe()
            if self._sock is not None:
                await self._sock.aclose()
            self._feed.close()

    async def _run(self) -> None:
        assert self._sock is not None and self._core is not None and self._timers is not None
        core, timers = self._core, self._timers
        async with anyio.create_task_group() as tg:
            tg.start_soon(timers.run)
            try:
                async for data, (ip, port) in self._sock:
                    now = anyio.current_time()
                    core.receive_datagram(data, (ip, port), now, local=self._local.check(ip))
                    await self._flush()
                    timers.poke()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass
            tg.cancel_scope.cancel()

    async def _flush(self) -> None:
        """Hand discoveries to the feed and send what the core queued. The receive task and the
        timer task both flush: the lock keeps their sends from overlapping on the socket."""
        core, sock = self._core, self._sock
        assert core is not None and sock is not None
        while (peer := core.next_event()) is not None:
            self._feed.offer(peer)
        async with self._send_lock:
            for data, dest in core.datagrams_to_send():
                target = dest or (self._group, self._port)
                try:
                    await sock.sendto(data, *target)
                except OSError as exc:  # no route, interface down: the next period tries again
                    log.debug("mdns: send to %s failed: %s", target, exc)
