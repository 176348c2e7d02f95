"""The membership service: one :class:`SwimCore` driven over libp2p streams (docs/membership.md).

The driver is a loop on the anyio clock (so it runs in the simulator too): it runs the core's
timers at ``next_deadline()``, hands each outgoing message to :class:`Links` (a stream per
message), publishes the core's events on ``host.events`` and applies the connection policy once
per probe interval. Inbound streams carry one length-prefixed message each; bad input resets
that stream and is counted, nothing else.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, cast

import anyio
import attrs

from p2pstack.errors import NETWORK_ERRORS, LocalProtocolError, RemoteProtocolError
from p2pstack.events import LocalAddrsChanged, PeerFailed, Subscription, Unsubscribe
from p2pstack.framing import read_lp
from p2pstack.identity import PeerId
from protocols.membership._core import SwimCore
from protocols.membership._links import Links
from protocols.membership._policy import ConnectionPolicy
from protocols.membership._stats import MEMBER_EVENT_TYPES, MembershipStatistics
from protocols.membership._types import (
    PROTOCOL_ID,
    Member,
    MemberAlive,
    MemberDead,
    MemberEvent,
    MemberJoined,
    MemberLeft,
    MemberState,
    SwimConfig,
)

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.host import Host, Stream

_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *NETWORK_ERRORS)

__all__ = ["Membership"]


class Membership:
    """SWIM + Lifeguard membership as a host service (``host.service(Membership)``).

    Args:
        config: protocol parameters (memberlist's LAN defaults).
        policy: which connections to keep (``ConnectionPolicy()`` if ``None``).
        seed: seeds the core's randomness (probe order, gossip targets, picks).
        send_timeout: most seconds to dial, open a stream and write one message.
        leave_timeout: most seconds ``stop()`` spends gossiping the leave (the host's
            ``service_stop_timeout``, 5 s by default, bounds it too).
        max_in_flight: most sends and dials at once; more messages are dropped and counted.
        max_inbound: most inbound SWIM streams served at once; more are reset.
        max_inbound_per_peer: most inbound SWIM streams one peer may hold at once, so that one
            flooding peer cannot use up ``max_inbound`` and starve the others' probes.
        addrs_wait: most seconds to wait for the host to listen before the core starts (its
            alive claims announce the listen addresses).
    """

    def __init__(
        self,
        *,
        config: SwimConfig | None = None,
        policy: ConnectionPolicy | None = None,
        seed: int | None = None,
        send_timeout: float = 5.0,
        leave_timeout: float = 3.0,
        max_in_flight: int = 256,
        max_inbound: int = 256,
        max_inbound_per_peer: int = 32,
        addrs_wait: float = 5.0,
    ) -> None:
        self.config = config or SwimConfig()
        self.policy = policy or ConnectionPolicy()
        self._rng = random.Random(seed)
        self._send_timeout = send_timeout
        self._leave_timeout = leave_timeout
        self._max_in_flight = max_in_flight
        self._max_inbound = max_inbound
        self._max_inbound_per_peer = max_inbound_per_peer
        self._addrs_wait = addrs_wait
        self._host: Host | None = None
        self._core: SwimCore | None = None
        self._links: Links | None = None
        self._ready = anyio.Event()
        self._wake = anyio.Event()
        self._changed = anyio.Event()
        self._addrs_known = anyio.Event()
        self._handles: list[Unsubscribe] = []
        self._pending_load: float | None = None
        self._pending_entries: dict[str, bytes] | None = None
        self._bad_messages = 0

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, host: Host) -> None:
        """Serve ``/p2pstack/swim/1.0.0`` and start the driver loop (in a host task)."""
        self._host = host
        self._links = Links(
            host, self.policy, timeout=self._send_timeout, max_in_flight=self._max_in_flight
        )
        host.set_stream_handler(
            PROTOCOL_ID,
            self._handle,
            max_inbound=self._max_inbound,
            max_inbound_per_peer=self._max_inbound_per_peer,
        )
        self._handles.append(host.events.on(LocalAddrsChanged, lambda _e: self._addrs_known.set()))
        host.start_soon(self._run, name="swim driver")

    async def stop(self) -> None:
        """Leave gracefully: gossip our signed leave until it is retransmitted enough, bounded
        by ``leave_timeout``."""
        for handle in self._handles:
            handle.close()
        self._handles.clear()
        core, links = self._core, self._links
        if core is None or links is None:
            return
        core.leave(anyio.current_time())
        self._poke()
        with anyio.move_on_after(self._leave_timeout):
            # Alone, there is no one to tell: the leave stays queued, so do not wait for it.
            while core.leave_pending and self.live_members():
                await self._wait_changed()
            await links.wait_idle()

    # -- API ----------------------------------------------------------------------------------

    async def join(self, seed: PeerId | Multiaddr | str, *, timeout: float = 10.0) -> None:
        """Join the cluster through ``seed`` (a member's peer ID, or a multiaddr to dial) and
        wait until it answered (it is then in ``members()``); the join request is sent again
        every few probe intervals until then.

        Raises:
            ValueError: ``seed`` is not a valid multiaddr.
            DialError: ``seed`` could not be reached.
            TimeoutError: no answer within ``timeout``.
        """
        host = self._require_host()
        with anyio.fail_after(timeout):
            before = set(host.connections())
            if isinstance(seed, PeerId):
                conn = await host.dial_peer(seed)
            else:
                conn = await host.connect(seed)
            peer = conn.remote_peer
            if conn not in before:  # dialed for the join: the connection policy may close it
                self._require_links().adopt(conn)
            await self._ready.wait()
            core = self._require_core()
            # A lost push-pull (a failed stream) is sent again after a few probe intervals.
            retry = max(1.0, 5 * self.config.probe_interval)
            while core.member(peer) is None:
                core.join(anyio.current_time(), peer)
                self._poke()
                with anyio.move_on_after(retry):
                    while core.member(peer) is None:
                        await self._wait_changed()

    def set_metadata(
        self, *, load: float | None = None, entries: dict[str, bytes] | None = None
    ) -> None:
        """Change our gossiped metadata (``load``: lower is less loaded; ``entries``: a small
        key/value set). Before the core starts, it is applied when it does; once ``stop()``
        began leaving it is ignored (a new alive claim would undo the leave).

        Raises:
            MetadataTooLarge: over ``config.max_metadata_size``.
        """
        if self._core is None:
            if load is not None:
                self._pending_load = load
            if entries is not None:
                self._pending_entries = entries
            return
        if self._core.leaving:
            return
        self._core.set_metadata(load=load, entries=entries)
        self._poke()

    def members(self) -> list[Member]:
        """Copies of every known member but us (alive, suspect, dead and left)."""
        if self._core is None:
            return []
        return [attrs.evolve(m) for m in self._core.members()]

    def live_members(self) -> list[PeerId]:
        """The members alive or suspect."""
        live = (MemberState.ALIVE, MemberState.SUSPECT)
        return [m.peer_id for m in self.members() if m.state in live]

    def member(self, peer_id: PeerId) -> Member | None:
        """A copy of what we know of ``peer_id`` (``None`` if unknown)."""
        member = None if self._core is None else self._core.member(peer_id)
        return None if member is None else attrs.evolve(member)

    def pick_member_by_load(self) -> PeerId | None:
        """Power of two choices: of two random alive members, the one with the lower gossiped
        load (``None`` when no member is alive)."""
        return None if self._core is None else self._core.pick_member_by_load(self._rng)

    def subscribe(
        self, *, max_buffer: int | None = None, lossy: bool = False
    ) -> Subscription[MemberEvent]:
        """An async-iterable subscription to the membership events (``MemberJoined``,
        ``MemberAlive``, ``MemberSuspected``, ``MemberDead``, ``MemberLeft``,
        ``MetadataChanged``); use it in a ``with`` block."""
        host = self._require_host()
        sub = host.events.subscribe(*MEMBER_EVENT_TYPES, max_buffer=max_buffer, lossy=lossy)
        return cast("Subscription[MemberEvent]", sub)  # it carries only these types

    def statistics(self) -> MembershipStatistics:
        """A snapshot of the driver's and the core's counters."""
        core, links, host = self._core, self._links, self._host
        live = self.live_members()
        connected = sum(1 for p in live if host is not None and host.connections(p))
        return MembershipStatistics(
            members=0 if core is None else len(core.members()),
            live_members=len(live),
            connected_members=connected,
            own_connections=0 if links is None else links.opened(),
            closed_by_policy=0 if links is None else links.closed_by_policy,
            bad_messages=self._bad_messages,
            send_failures=0 if links is None else links.send_failures,
            dropped_sends=0 if links is None else links.dropped,
            swim=None if core is None else core.statistics(),
        )

    # -- the loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        host = self._require_host()
        if not host.listen_addrs:
            with anyio.move_on_after(self._addrs_wait):
                await self._addrs_known.wait()
        identity = host.identity
        core = SwimCore(
            host.peer_id,
            tuple(addr.to_bytes() for addr in host.listen_addrs),
            sign=identity.private_key.sign,
            verify=self._verify,
            rng=self._rng,
            now=anyio.current_time(),
            config=self.config,
        )
        if self._pending_load is not None or self._pending_entries is not None:
            core.set_metadata(load=self._pending_load, entries=self._pending_entries)
        self._core = core
        self._ready.set()
        next_maintain = anyio.current_time()
        while True:
            now = anyio.current_time()
            deadline = core.next_deadline()
            if deadline is not None and deadline <= now:
                core.handle_timer(now)
            self._pump()
            if now >= next_maintain:
                next_maintain = now + self.config.probe_interval
                self._require_links().maintain(core, now)
            self._wake = anyio.Event()
            deadline = core.next_deadline()
            until = next_maintain if deadline is None else min(deadline, next_maintain)
            with anyio.move_on_after(max(0.0, until - anyio.current_time())):
                await self._wake.wait()

    def _pump(self) -> None:
        core, links, host = self._require_core(), self._require_links(), self._require_host()
        for peer, data in core.outgoing():
            links.submit(core, peer, data)
        events = core.events()
        for event in events:
            self._publish(host, core, links, event)
        if events:
            self._changed.set()
            self._changed = anyio.Event()

    def _publish(self, host: Host, core: SwimCore, links: Links, event: MemberEvent) -> None:
        host.events.emit(event)
        match event:
            case MemberJoined() | MemberAlive():
                links.learn_addrs(core, event.peer_id)
                host.dialer.clear_backoff(event.peer_id)
            case MemberDead():
                host.events.emit(PeerFailed(peer_id=event.peer_id, source="membership"))
            case MemberLeft():
                host.events.emit(
                    PeerFailed(peer_id=event.peer_id, source="membership", reason="left")
                )
            case _:
                pass

    def _poke(self) -> None:
        self._wake.set()

    async def _wait_changed(self) -> None:
        """Wait for the next batch of events (or a tick of the loop)."""
        with anyio.move_on_after(self.config.probe_interval):
            await self._changed.wait()

    # -- inbound ------------------------------------------------------------------------------

    async def _handle(self, stream: Stream) -> None:
        try:
            with anyio.fail_after(self._send_timeout):
                data = await read_lp(stream, max_size=self.config.max_push_pull_size)
            await self._ready.wait()
            core = self._require_core()
            self._require_links().received(stream.remote_peer)
            try:
                core.handle_message(anyio.current_time(), stream.remote_peer, data)
            finally:
                self._poke()
        except RemoteProtocolError:
            # Bad input (a typed SwimProtocolError, bad framing): reset that stream, carry on.
            self._bad_messages += 1
            await stream.reset()
        except _ERRORS:
            await stream.reset()  # the peer went away or stalled

    def _verify(self, peer: PeerId, payload: bytes, signature: bytes) -> bool:
        key = peer.extract_public_key()
        if key is None and self._host is not None:
            key = self._host.peerstore.public_key(peer)
        return key is not None and key.verify(payload, signature)

    # -- helpers ------------------------------------------------------------------------------

    def _require_host(self) -> Host:
        if self._host is None:
            raise LocalProtocolError("the Membership service is not started")
        return self._host

    def _require_core(self) -> SwimCore:
        if self._core is None:
            raise LocalProtocolError("the membership core is not running yet")
        return self._core

    def _require_links(self) -> Links:
        if self._links is None:
            raise LocalProtocolError("the Membership service is not started")
        return self._links
