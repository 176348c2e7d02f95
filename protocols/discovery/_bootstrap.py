"""The bootstrap list: a ``PeerDiscovery`` source (``"bootstrap"``) offering configured peers at
start and again whenever the host's connected peers fall below a threshold, ``/dnsaddr/``
entries resolved (``_dnsaddr``) each time. The ``Discovery`` service dials its peers eagerly,
with its policy's exponential backoff per peer; between two offers while connections stay low,
the bootstrap list itself waits with an exponential backoff too."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

import anyio
import attrs
from multiaddr import Multiaddr

from p2pstack.discovery import DiscoveredPeer, DiscoveryFeed
from p2pstack.events import PeerConnected, PeerDisconnected, Unsubscribe
from p2pstack.multiaddrs import parse_multiaddr, split_peer_id
from p2pstack.sync import Signal
from protocols.discovery._dnsaddr import DnsaddrError, DnsaddrResolver, is_dnsaddr

if TYPE_CHECKING:
    from p2pstack.host import Host
    from p2pstack.identity import PeerId

__all__ = ["Bootstrap", "BootstrapConfig", "check_bootstrap_addr"]

SOURCE = "bootstrap"
_log = logging.getLogger(__name__)


def check_bootstrap_addr(addr: Multiaddr | str) -> Multiaddr:
    """Parse one bootstrap entry: a ``/dnsaddr/`` address (its ``/p2p/`` suffix optional) or an
    address ending in ``/p2p/<id>``.

    Raises:
        ValueError: not a multiaddr, or neither kind.
    """
    parsed = parse_multiaddr(addr)
    if is_dnsaddr(parsed):
        if [p.name for p in parsed.protocols()] not in (["dnsaddr"], ["dnsaddr", "p2p"]):
            raise ValueError(f"{addr}: only /p2p/<peer-id> may follow /dnsaddr/<name>")
        split_peer_id(parsed)  # the /p2p/ value must be a peer ID
        return parsed
    transport, peer = split_peer_id(parsed)
    if transport is None or peer is None:
        raise ValueError(f"{addr}: the address must end in /p2p/<peer-id> (or be /dnsaddr/<name>)")
    return parsed


def _addrs(values: Iterable[Multiaddr | str]) -> tuple[Multiaddr, ...]:
    return tuple(check_bootstrap_addr(v) for v in values)


@attrs.frozen(kw_only=True)
class BootstrapConfig:
    """Settings of the bootstrap list (seconds for times).

    Attributes:
        peers: ``/.../p2p/<id>`` and ``/dnsaddr/<name>[/p2p/<id>]`` entries.
        min_peers: offer the list again whenever fewer peers than this are connected.
        retry_base: wait before offering again while connections stay below ``min_peers``.
        retry_max: cap of that exponential wait.
        nameserver: ``(host, port)`` of the DNS server (``/etc/resolv.conf``'s first if None).
        dns_timeout: seconds for each DNS answer.
    """

    peers: tuple[Multiaddr, ...] = attrs.field(default=(), converter=_addrs)
    min_peers: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    retry_base: float = attrs.field(default=5.0, validator=attrs.validators.gt(0.0))
    retry_max: float = attrs.field(default=300.0, validator=attrs.validators.gt(0.0))
    nameserver: tuple[str, int] | None = None
    dns_timeout: float = attrs.field(default=5.0, validator=attrs.validators.gt(0.0))


class Bootstrap:
    """The bootstrap list as a discoverer and a ``Service`` (the ``Discovery`` service starts it
    unless the host already runs it).

    Args:
        config: the entries and timings.
        resolver: resolves ``/dnsaddr/`` entries (one for ``config.nameserver`` if ``None``).
    """

    source = SOURCE

    def __init__(
        self, config: BootstrapConfig | None = None, *, resolver: DnsaddrResolver | None = None
    ) -> None:
        self.config = config or BootstrapConfig()
        self.resolver = resolver or DnsaddrResolver(
            self.config.nameserver, timeout=self.config.dns_timeout
        )
        self._feed = DiscoveryFeed()
        self._low = Signal()
        self._handles: list[Unsubscribe] = []
        self._host: Host | None = None
        #: Resolution failures, by type name (``DnsTimeout``, ``DnsNameNotFound``, ...).
        self.errors: dict[str, int] = {}
        #: How many times the list was offered.
        self.rounds = 0

    def discovered(self) -> AsyncIterator[DiscoveredPeer]:
        """The peers of the list, each time it is offered."""
        return self._feed.discovered()

    async def start(self, host: Host) -> None:
        """Watch the connected peer count and offer the list (in a task)."""
        self._host = host
        self._handles += [
            host.events.on(PeerConnected, lambda _e: self._low.set()),
            host.events.on(PeerDisconnected, lambda _e: self._low.set()),
        ]
        host.start_soon(self._run, name="bootstrap")

    async def stop(self) -> None:
        """Stop offering; readers end once drained."""
        for handle in self._handles:
            handle.close()
        self._handles.clear()
        self._feed.close()

    async def resolve(self) -> list[DiscoveredPeer]:
        """Resolve every entry now (failures are counted in ``errors`` and skipped).

        Returns:
            One discovery per peer, its addresses in entry order.
        """
        by_peer: dict[PeerId, list[Multiaddr]] = {}
        for entry in self.config.peers:
            try:
                resolved = await self.resolver.resolve(entry)
            except DnsaddrError as exc:
                name = type(exc).__name__
                self.errors[name] = self.errors.get(name, 0) + 1
                _log.info("bootstrap entry %s not resolved: %s", entry, exc)
                continue
            for addr in resolved:
                try:
                    transport, peer = split_peer_id(addr)
                except ValueError:
                    continue
                if peer is not None and transport is not None:
                    by_peer.setdefault(peer, []).append(transport)
        return [
            DiscoveredPeer(peer_id=peer, addrs=tuple(dict.fromkeys(addrs)), source=SOURCE)
            for peer, addrs in by_peer.items()
        ]

    def _peer_count(self) -> int:
        host = self._host
        return 0 if host is None else len({c.remote_peer for c in host.connections()})

    async def _run(self) -> None:
        wait = self.config.retry_base
        low = self.config.min_peers
        while True:
            self.rounds += 1
            for found in await self.resolve():
                self._feed.offer(found)
            while True:  # until the list should be offered again
                if self._peer_count() >= low:
                    wait = self.config.retry_base
                    while self._peer_count() >= low:
                        await self._low.wait()
                    break  # fell below the threshold: offer now
                # Below it: give the dials time, then offer again if still below.
                with anyio.move_on_after(wait):
                    while self._peer_count() < low:
                        await self._low.wait()
                if self._peer_count() < low:
                    wait = min(wait * 2, self.config.retry_max)
                    break
