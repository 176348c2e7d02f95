"""How the membership driver moves SWIM messages over libp2p and which connections it keeps.

**A stream per message.** Every SWIM message (ping, ack, ping-req, nack, gossip, push-pull) is
one length-prefixed frame on a fresh ``/p2pstack/swim/1.0.0`` stream that the sender half-closes
after writing; the receiver reads exactly one frame. Replies travel on their own streams, as
UDP datagrams do in memberlist: the core matches acks to probes by sequence number, so a stream
per exchange would buy nothing, and a message never waits behind another one. Opening a muxed
stream on an open connection is cheap (a yamux SYN rides with the first data frame).

**Connections.** :class:`~protocols.membership.ConnectionPolicy` decides: the next probe
targets are dialed a period ahead, and connections outside that set that carried nothing for
the idle timeout, or over the cap, are closed. Only the connections this driver dialed itself
are candidates, and never while a stream of another protocol is open on one: connections that
other services opened or use are left alone. Each side closes what it dialed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
from multiaddr import Multiaddr

from p2pstack.errors import NETWORK_ERRORS
from p2pstack.framing import write_lp
from p2pstack.peerstore import ADDR_TTL_RECENT
from protocols.membership._types import PROTOCOL_ID

if TYPE_CHECKING:
    from p2pstack.connection import Connection
    from p2pstack.host import Host
    from p2pstack.identity import PeerId
    from protocols.membership._core import SwimCore
    from protocols.membership._policy import ConnectionPolicy

_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *NETWORK_ERRORS)

__all__ = ["Links"]

_log = logging.getLogger(__name__)


class Links:
    """Sends SWIM messages and keeps the membership's own connections within its policy.

    Args:
        host: our host.
        policy: which connections to keep.
        timeout: most seconds for dialing, opening a stream and writing one message.
        max_in_flight: most sends and dials running at once; more messages are dropped
            (SWIM tolerates loss) and counted.
    """

    def __init__(
        self, host: Host, policy: ConnectionPolicy, *, timeout: float, max_in_flight: int
    ) -> None:
        self.host = host
        self.policy = policy
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.send_failures = 0
        self.dropped = 0
        self.closed_by_policy = 0
        self._opened: dict[PeerId, Connection] = {}
        self._dialing: set[PeerId] = set()
        self._idle = anyio.Event()
        self._idle.set()

    # -- addresses ---------------------------------------------------------------------------

    def learn_addrs(self, core: SwimCore, peer: PeerId) -> None:
        """Put the addresses ``peer`` announced in its alive claim into the peerstore."""
        member = core.member(peer)
        if member is None or not member.addrs:
            return
        addrs: list[Multiaddr] = []
        for raw in member.addrs:
            try:
                addrs.append(Multiaddr(str(Multiaddr(raw))))
            except ValueError:  # a claim's address is checked for size, not content
                continue
        self.host.peerstore.add_addrs(peer, addrs, ADDR_TTL_RECENT)

    # -- sending -----------------------------------------------------------------------------

    def submit(self, core: SwimCore, peer: PeerId, data: bytes) -> None:
        """Send ``data`` to ``peer`` in a host task (dropped when too many are in flight)."""
        if self.in_flight >= self.max_in_flight:
            self.dropped += 1
            return
        if not self.host.connections(peer):
            self.learn_addrs(core, peer)
        self._begin()
        self.host.start_soon(self._send, peer, data, name="swim send")

    def _begin(self) -> None:
        self.in_flight += 1
        self._idle = anyio.Event()

    def _end(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no send or dial is running."""
        await self._idle.wait()

    async def _send(self, peer: PeerId, data: bytes) -> None:
        try:
            had = bool(self.host.connections(peer))
            with anyio.fail_after(self.timeout):
                stream = await self.host.new_stream(peer, PROTOCOL_ID)
                try:
                    await write_lp(stream, data)
                    await stream.send_eof()
                finally:
                    await stream.aclose()
            if not had:
                self._opened.setdefault(peer, stream.connection)
            self.policy.used(peer, anyio.current_time())
        except _ERRORS as exc:
            self.send_failures += 1  # a lost message: SWIM's probes and gossip tolerate it
            _log.debug("swim: message to %s lost: %r", peer, exc)
        finally:
            self._end()

    # -- connections -------------------------------------------------------------------------

    def received(self, peer: PeerId) -> None:
        """A message from ``peer`` arrived (its connection is in use)."""
        self.policy.used(peer, anyio.current_time())

    def maintain(self, core: SwimCore, now: float) -> None:
        """Dial the upcoming probe targets; close our idle or surplus connections."""
        for peer, conn in list(self._opened.items()):
            if conn.is_closed:
                del self._opened[peer]
                self.policy.forget(peer)
        for peer in self.policy.ahead(core):
            if self.host.connections(peer) or peer in self._dialing:
                continue
            if self.in_flight >= self.max_in_flight:
                break
            self.learn_addrs(core, peer)
            self._dialing.add(peer)
            self._begin()
            self.host.start_soon(self._dial, peer, name="swim dial ahead")
        for peer in self.policy.to_close(core, now, list(self._opened)):
            conn = self._opened[peer]
            if any(s.protocol != PROTOCOL_ID for s in conn.streams):
                continue  # another service uses it now: not ours to close
            del self._opened[peer]
            self.closed_by_policy += 1
            self.host.start_soon(self._close, conn, name="swim close idle")

    def adopt(self, conn: Connection) -> None:
        """``conn`` was dialed for the membership (a join): the policy may close it."""
        self._opened.setdefault(conn.remote_peer, conn)

    async def _dial(self, peer: PeerId) -> None:
        try:
            had = bool(self.host.connections(peer))
            with anyio.fail_after(self.timeout):
                conn = await self.host.dial_peer(peer)
            if not had:
                self._opened.setdefault(peer, conn)
            self.policy.used(peer, anyio.current_time())
        except _ERRORS as exc:
            _log.debug("swim: dialing %s ahead failed: %r", peer, exc)
        finally:
            self._dialing.discard(peer)
            self._end()

    async def _close(self, conn: Connection) -> None:
        with anyio.move_on_after(self.timeout):
            await conn.aclose()

    def opened(self) -> int:
        """Open connections this driver dialed."""
        return sum(1 for conn in self._opened.values() if not conn.is_closed)
