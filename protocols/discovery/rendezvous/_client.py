"""The rendezvous client: register at points, discover peers through them
(https://github.com/libp2p/specs/blob/master/rendezvous/README.md#interaction).

``Rendezvous`` is a service and a ``PeerDiscovery`` (source ``"rendezvous"``): once started it
keeps its registrations alive (refreshing at 7/8 of the granted TTL) and polls its namespaces,
passing each point's cookie back so that a poll returns only registrations it has not seen.

Interop with py-libp2p 0.8.1, whose point expects an unsigned ``PeerInfo`` where the spec has
a signed peer record: when a point refuses our signed record (``E_NOT_AUTHORIZED`` or
``E_INVALID_SIGNED_PEER_RECORD``) the client retries once with a ``PeerInfo`` and keeps using
that form with that point (``peer_info_fallback``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

import anyio
from multiaddr import Multiaddr

from p2pstack.discovery import DiscoveredPeer, DiscoveryFeed
from p2pstack.errors import NETWORK_ERRORS
from p2pstack.identity import PeerId, PeerRecord
from p2pstack.multiaddrs import split_peer_id
from p2pstack.peerstore import ADDR_TTL_PERMANENT
from protocols.discovery.rendezvous._exchange import (
    RendezvousRegistration,
    send_discover,
    send_register,
    send_unregister,
)
from protocols.discovery.rendezvous._wire import (
    DEFAULT_TTL,
    MAX_NAMESPACE_LENGTH,
    Discover,
    Register,
    RegisterResponse,
    RendezvousError,
    RendezvousRefused,
    Status,
    Unregister,
    encode_peer_info,
)

if TYPE_CHECKING:
    from p2pstack.host import Host

__all__ = ["Rendezvous"]

_log = logging.getLogger(__name__)
# P2PError (in NETWORK_ERRORS) covers RendezvousError and the request errors.
_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *NETWORK_ERRORS)
_FALLBACK_STATUSES = (Status.E_NOT_AUTHORIZED, Status.E_INVALID_SIGNED_PEER_RECORD)
#: Pages fetched per namespace and point in one poll (the cookie resumes the rest next time).
_MAX_PAGES = 16
#: Seconds before retrying a failed registration: doubling from the first to the last (the
#: first attempt often runs before the host listens).
_RETRY_FIRST, _RETRY_MAX = 0.5, 60.0


def _parse_point(point: Multiaddr | str) -> tuple[PeerId, Multiaddr | None]:
    addr = Multiaddr(point) if isinstance(point, str) else point
    transport, peer = split_peer_id(addr)
    if peer is None:
        raise ValueError(f"rendezvous point {addr} has no /p2p/<peer-id>")
    return peer, transport


class Rendezvous:
    """Rendezvous client service and ``PeerDiscovery``.

    Args:
        points: the points, as multiaddrs ending in ``/p2p/<peer-id>``.
        register: namespaces to register in at every point while running.
        discover: namespaces to poll at every point while running (``""``: all).
        ttl: TTL asked for (None: the spec's 2 h default, sent explicitly).
        poll_interval: seconds between polls.
        discover_limit: registrations asked for per page (0: the point's maximum).
        timeout: seconds for one request, dialing included.
        allow_unsigned: accept py-libp2p's unsigned registrations from points.
        peer_info_fallback: retry a refused signed registration as a ``PeerInfo``.

    Raises:
        ValueError: a point has no peer ID, or a namespace is too long.
    """

    source = "rendezvous"

    def __init__(
        self,
        points: Sequence[Multiaddr | str] = (),
        *,
        register: Sequence[str] = (),
        discover: Sequence[str] = (),
        ttl: int | None = None,
        poll_interval: float = 60.0,
        discover_limit: int = 100,
        timeout: float = 10.0,
        allow_unsigned: bool = True,
        peer_info_fallback: bool = True,
    ) -> None:
        self._points = [_parse_point(p) for p in points]
        for ns in (*register, *discover):
            if len(ns.encode()) > MAX_NAMESPACE_LENGTH:
                raise ValueError(f"namespace longer than {MAX_NAMESPACE_LENGTH} bytes")
        self._register_ns = tuple(register)
        self._discover_ns = tuple(discover)
        self._ttl = ttl
        self._poll_interval = poll_interval
        self._limit = discover_limit
        self._timeout = timeout
        self._allow_unsigned = allow_unsigned
        self._fallback = peer_info_fallback
        self._peer_info_points: set[PeerId] = set()
        self._cookies: dict[tuple[PeerId, str], bytes] = {}
        self._registered: set[tuple[PeerId, str]] = set()
        # Unregistered by the application: the background refresh of these stops.
        self._withdrawn: set[tuple[PeerId, str]] = set()
        self._feed = DiscoveryFeed()
        self._host: Host | None = None
        self._record_seq = 0

    # -- PeerDiscovery and Service --------------------------------------------------------------

    def discovered(self) -> AsyncIterator[DiscoveredPeer]:
        return self._feed.discovered()

    async def start(self, host: Host) -> None:
        """Learn the points' addresses and start registering and polling in tasks."""
        self._host = host
        for peer, addr in self._points:
            if addr is not None:
                host.peerstore.add_addrs(peer, [addr], ADDR_TTL_PERMANENT)
        for peer, _ in self._points:
            for ns in self._register_ns:
                host.start_soon(self._keep_registered, peer, ns, name=f"rendezvous {ns}")
        if self._discover_ns and self._points:
            host.start_soon(self._poll, name="rendezvous poll")

    async def stop(self) -> None:
        """Unregister everywhere (best effort, bounded) and end ``discovered()``."""
        self._feed.close()
        with anyio.move_on_after(self._timeout):
            for peer, ns in sorted(self._registered, key=str):
                try:
                    await self.unregister(ns, point=peer)
                except _ERRORS as exc:
                    _log.debug("unregister %s at %s failed: %r", ns, peer, exc)

    @property
    def points(self) -> list[PeerId]:
        return [peer for peer, _ in self._points]

    # -- the API --------------------------------------------------------------------------------

    async def register(
        self, namespace: str, ttl: int | None = None, *, point: PeerId | None = None
    ) -> int:
        """Register our listen addresses in ``namespace``.

        Args:
            namespace: the namespace.
            ttl: seconds asked for (None: 2 h).
            point: the point (None: the first configured one).

        Returns:
            The TTL the point granted, in seconds.

        Raises:
            RendezvousRefused: the point refused (``status`` says why).
            RendezvousError: no listen address to register, or no point configured.
            RemoteProtocolError: the point's answer is not a REGISTER_RESPONSE.
            DialError, RequestTimeout, ...: from the request.
        """
        peer = self._point(point)
        self._withdrawn.discard((peer, namespace))
        return await self._register(peer, namespace, ttl)

    async def _register(self, peer: PeerId, namespace: str, ttl: int | None) -> int:
        host = self._need_host()
        addrs = tuple(host.listen_addrs)
        if not addrs:
            raise RendezvousError("no listen address to register")
        asked = DEFAULT_TTL if ttl is None else ttl
        peer_info = peer in self._peer_info_points
        response = await self._register_once(peer, namespace, asked, addrs, peer_info=peer_info)
        if response.status in _FALLBACK_STATUSES and self._fallback and not peer_info:
            response = await self._register_once(peer, namespace, asked, addrs, peer_info=True)
            if response.status == Status.OK:
                self._peer_info_points.add(peer)
        if response.status != Status.OK:
            raise RendezvousRefused(response.status, response.text)
        self._registered.add((peer, namespace))
        return response.ttl

    async def unregister(self, namespace: str, *, point: PeerId | None = None) -> None:
        """Remove our registration in ``namespace`` (no answer comes: the spec has none), and
        stop refreshing it if it is one of the service's ``register`` namespaces.

        Raises:
            DialError, P2PTimeoutError, ...: the message could not be sent.
        """
        host = self._need_host()
        peer = self._point(point)
        self._registered.discard((peer, namespace))
        self._withdrawn.add((peer, namespace))
        # py-libp2p's point requires the (deprecated) peer ID field and ignores the message
        # without it; points following the spec ignore it.
        msg = Unregister(ns=namespace, peer_id=host.peer_id.to_bytes())
        await send_unregister(host, peer, msg, timeout=self._timeout)

    async def discover(
        self,
        namespace: str = "",
        limit: int = 0,
        cookie: bytes = b"",
        *,
        point: PeerId | None = None,
    ) -> tuple[list[RendezvousRegistration], bytes]:
        """One DISCOVER request.

        Args:
            namespace: the namespace (``""``: every namespace).
            limit: most registrations wanted (0: the point's maximum).
            cookie: from a previous answer, to get only newer registrations.
            point: the point (None: the first configured one).

        Returns:
            The registrations whose records verify (others are skipped) and the new cookie.

        Raises:
            RendezvousRefused: the point answered with an error status.
            RemoteProtocolError: the answer is not a DISCOVER_RESPONSE.
            DialError, RequestTimeout, ...: from the request.
        """
        msg = Discover(ns=namespace, limit=limit, cookie=cookie)
        return await send_discover(
            self._need_host(),
            self._point(point),
            msg,
            timeout=self._timeout,
            allow_unsigned=self._allow_unsigned,
        )

    # -- internals ------------------------------------------------------------------------------

    def _need_host(self) -> Host:
        if self._host is None:
            raise RendezvousError("the rendezvous service is not started")
        return self._host

    def _point(self, point: PeerId | None) -> PeerId:
        if point is not None:
            return point
        if not self._points:
            raise RendezvousError("no rendezvous point configured")
        return self._points[0][0]

    def _record(self, addrs: tuple[Multiaddr, ...], *, peer_info: bool) -> bytes:
        host = self._need_host()
        if peer_info:
            return encode_peer_info(host.peer_id, addrs)
        # Peer record sequence numbers must grow: wall-clock nanoseconds, kept increasing.
        self._record_seq = max(time.time_ns(), self._record_seq + 1)
        record = PeerRecord(host.peer_id, self._record_seq, addrs)
        return record.seal(host.identity.private_key).to_bytes()

    async def _register_once(
        self, peer: PeerId, ns: str, ttl: int, addrs: tuple[Multiaddr, ...], *, peer_info: bool
    ) -> RegisterResponse:
        msg = Register(ns=ns, record=self._record(addrs, peer_info=peer_info), ttl=ttl)
        return await send_register(self._need_host(), peer, msg, timeout=self._timeout)

    async def _keep_registered(self, peer: PeerId, ns: str) -> None:
        retry = _RETRY_FIRST
        while (peer, ns) not in self._withdrawn:
            try:
                granted = await self._register(peer, ns, self._ttl)
                if (peer, ns) in self._withdrawn:  # unregistered while this was under way
                    await self.unregister(ns, point=peer)
                    return
                delay, retry = max(1.0, math.floor(granted * 7 / 8)), _RETRY_FIRST
            except _ERRORS as exc:
                _log.info("rendezvous: registering %r at %s failed: %r", ns, peer, exc)
                delay, retry = retry, min(2 * retry, _RETRY_MAX)
            await anyio.sleep(delay)

    async def _poll(self) -> None:
        host = self._need_host()
        while True:
            for peer, _ in self._points:
                for ns in self._discover_ns:
                    try:
                        await self._poll_one(host, peer, ns)
                    except _ERRORS as exc:
                        _log.info("rendezvous: discover %r at %s failed: %r", ns, peer, exc)
            await anyio.sleep(self._poll_interval)

    async def _poll_one(self, host: Host, peer: PeerId, ns: str) -> None:
        for _ in range(_MAX_PAGES):
            cookie = self._cookies.get((peer, ns), b"")
            try:
                found, cookie = await self.discover(ns, self._limit, cookie, point=peer)
            except RendezvousRefused as exc:
                if exc.status != Status.E_INVALID_COOKIE:
                    raise
                self._cookies.pop((peer, ns), None)  # the point restarted: start over
                continue
            if cookie:
                self._cookies[(peer, ns)] = cookie
            for reg in found:
                if reg.peer_id != host.peer_id:
                    self._feed.offer(
                        DiscoveredPeer(peer_id=reg.peer_id, addrs=reg.addrs, source=self.source)
                    )
            if not cookie or not found or (self._limit and len(found) < self._limit):
                return
