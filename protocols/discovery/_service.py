"""The ``Discovery`` host service: runs several ``PeerDiscovery`` sources, records what they find
in the peerstore, announces it with ``PeerDiscovered`` on ``host.events`` and dials by the
``DialPolicy`` core (a thin driver: the decisions are in ``_policy``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio
import attrs

from p2pstack.discovery import DiscoveredPeer, PeerDiscovered, PeerDiscovery
from p2pstack.errors import NETWORK_ERRORS, LocalProtocolError, ServiceNotFound
from p2pstack.events import PeerConnected, PeerDisconnected, Unsubscribe
from p2pstack.multiaddrs import split_peer_id
from p2pstack.peerstore import ADDR_TTL_RECENT
from p2pstack.sansio import TimerDriver
from protocols.discovery._policy import DialPolicy, DialPolicyConfig, DialPolicyStatistics

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.host import Host
    from p2pstack.identity import PeerId

__all__ = ["Discovery", "DiscoveryConfig", "DiscoveryStatistics"]

_log = logging.getLogger(__name__)
_DIAL_ERRORS: tuple[type[BaseException], ...] = (*NETWORK_ERRORS, TimeoutError)


@attrs.frozen(kw_only=True)
class DiscoveryConfig:
    """Settings of the ``Discovery`` service.

    Attributes:
        policy: the dial policy's numbers (``min_connections`` and the rest).
        dial: whether to dial at all (``False``: only record and announce).
        eager_sources: sources whose peers are dialed even when there are enough connections
            (the bootstrap list: it offers its peers at start and when connections run low).
        dial_timeout: seconds one dial may take.
        addr_ttl: seconds discovered addresses stay in the peerstore.
        max_addrs: addresses kept from one discovery (the first ones; a source may be fed by
            remote peers, and the peerstore and the announcements need no more).
    """

    policy: DialPolicyConfig = attrs.field(factory=DialPolicyConfig)
    dial: bool = True
    eager_sources: frozenset[str] = attrs.field(
        default=frozenset({"bootstrap"}), converter=frozenset
    )
    dial_timeout: float = attrs.field(default=30.0, validator=attrs.validators.gt(0.0))
    addr_ttl: float = attrs.field(default=ADDR_TTL_RECENT, validator=attrs.validators.gt(0.0))
    max_addrs: int = attrs.field(default=32, validator=attrs.validators.gt(0))


@attrs.frozen(kw_only=True)
class DiscoveryStatistics:
    """Counters of the service."""

    discovered: int
    announced: int
    policy: DialPolicyStatistics


class Discovery:
    """Runs discoverers and dials what they find (``services=[..., Discovery([boot, ...])]``).

    A discoverer that is also a ``Service`` (it has ``start``/``stop``) and that the host does
    not already run is started and stopped by this service, in order.

    Args:
        discoverers: the sources (``Bootstrap``, ``kad.discovery``, mDNS, rendezvous, ...).
        config: settings (``DiscoveryConfig()`` if ``None``).
    """

    def __init__(
        self, discoverers: Sequence[PeerDiscovery], config: DiscoveryConfig | None = None
    ) -> None:
        self.config = config or DiscoveryConfig()
        self.discoverers = list(discoverers)
        self._host: Host | None = None
        self._policy: DialPolicy | None = None
        self._timers: TimerDriver | None = None
        self._handles: list[Unsubscribe] = []
        self._started: list[object] = []
        self._discovered = 0
        self._announced = 0
        self._recent: dict[tuple[PeerId, str], DiscoveredPeer] = {}

    async def start(self, host: Host) -> None:
        """Follow connections, start the discoverers it owns and read every discoverer."""
        self._host = host
        policy = self._policy = DialPolicy(host.peer_id, self.config.policy)
        now = anyio.current_time()
        for conn in host.connections():
            policy.connected(conn.remote_peer, now)
        self._timers = TimerDriver(policy, on_fire=self._dial_ready)
        self._handles += [
            host.events.on(PeerConnected, lambda e: self._connected(e.peer_id)),
            host.events.on(PeerDisconnected, lambda e: self._disconnected(e.peer_id)),
        ]
        host.start_soon(self._timers.run, name="discovery timers")
        for discoverer in self.discoverers:
            if _is_service(discoverer) and not _runs(host, discoverer):
                await discoverer.start(host)  # type: ignore[attr-defined]  # checked above
                self._started.append(discoverer)
            host.start_soon(self._read, discoverer, name=f"discovery {discoverer.source}")

    async def stop(self) -> None:
        """Stop following connections and stop the discoverers this service started."""
        for handle in self._handles:
            handle.close()
        self._handles.clear()
        for discoverer in reversed(self._started):
            await discoverer.stop()  # type: ignore[attr-defined]  # started here
        self._started.clear()

    def announced(self) -> list[DiscoveredPeer]:
        """The latest announcement per (peer, source), oldest first (at most
        ``config.policy.max_candidates``): for a reader that subscribed late."""
        return list(self._recent.values())

    def statistics(self) -> DiscoveryStatistics:
        """A snapshot of the counters."""
        return DiscoveryStatistics(
            discovered=self._discovered,
            announced=self._announced,
            policy=self._require()[1].statistics(),
        )

    def _require(self) -> tuple[Host, DialPolicy]:
        if self._host is None or self._policy is None:
            raise LocalProtocolError("the Discovery service has not been started")
        return self._host, self._policy

    async def _read(self, discoverer: PeerDiscovery) -> None:
        async for found in discoverer.discovered():
            self._found(found)

    def _found(self, found: DiscoveredPeer) -> None:
        host, policy = self._require()
        if found.peer_id == host.peer_id:
            return
        self._discovered += 1
        addrs = (_transport_part(a) for a in found.addrs)
        known = list(dict.fromkeys(a for a in addrs if a is not None))[: self.config.max_addrs]
        now = anyio.current_time()
        if known:
            host.peerstore.add_addrs(found.peer_id, known, self.config.addr_ttl)
        if policy.note(found.peer_id, found.source, known, now):
            self._announced += 1
            announced = attrs.evolve(found, addrs=tuple(known))
            key = (found.peer_id, found.source)
            self._recent.pop(key, None)
            self._recent[key] = announced
            while len(self._recent) > self.config.policy.max_candidates:
                del self._recent[next(iter(self._recent))]
            host.events.emit(PeerDiscovered(peer=announced))
        if self.config.dial:
            policy.add(found.peer_id, now, eager=found.source in self.config.eager_sources)
            self._kick()

    def _connected(self, peer: PeerId) -> None:
        self._require()[1].connected(peer, anyio.current_time())

    def _disconnected(self, peer: PeerId) -> None:
        self._require()[1].disconnected(peer, anyio.current_time())
        self._kick()

    def _kick(self) -> None:
        host, policy = self._require()
        for peer in policy.take_dials():
            host.start_soon(self._dial, peer, name=f"discovery dial {peer}")
        if self._timers is not None:
            self._timers.poke()

    async def _dial_ready(self) -> None:
        self._kick()

    async def _dial(self, peer: PeerId) -> None:
        host, policy = self._require()
        ok = False
        try:
            await host.wait_listening()  # dial from the listen port, not an ephemeral one
            with anyio.fail_after(self.config.dial_timeout):
                await host.dial_peer(peer)
            ok = True
        except _DIAL_ERRORS as exc:
            _log.debug("discovery dial of %s failed: %r", peer, exc)
        finally:
            policy.dial_finished(peer, anyio.current_time(), ok=ok)
        self._kick()


def _transport_part(addr: Multiaddr) -> Multiaddr | None:
    try:
        transport, _ = split_peer_id(addr)
    except ValueError:
        return None
    return transport


def _is_service(discoverer: object) -> bool:
    return callable(getattr(discoverer, "start", None)) and callable(
        getattr(discoverer, "stop", None)
    )


def _runs(host: Host, discoverer: object) -> bool:
    try:
        return host.service(type(discoverer)) is discoverer
    except ServiceNotFound:
        return False
