"""The identify service: answers ``/ipfs/id/1.0.0``, identifies every new connection, and sends
and receives ``/ipfs/id/push/1.0.0`` updates
(https://github.com/libp2p/specs/blob/master/identify/README.md).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import anyio
import attrs
from multiaddr import Multiaddr

from p2pstack.errors import (
    NETWORK_ERRORS,
    IdentityError,
    LocalProtocolError,
    P2PTimeoutError,
    RemoteProtocolError,
)
from p2pstack.events import (
    ConnectionOpened,
    LocalAddrsChanged,
    LocalProtocolsChanged,
    ObservedAddrsChanged,
    Unsubscribe,
)
from p2pstack.identity import PeerId, PeerRecord, PublicKey
from p2pstack.interfaces import ByteStream
from p2pstack.peerstore import ADDR_TTL_RECENT
from protocols.identify._wire import (
    MAX_INBOUND_SIZE,
    PROTOCOL_ID,
    PUSH_PROTOCOL_ID,
    IdentifyMessage,
    decode_identify_stream,
    frame_identify,
)

if TYPE_CHECKING:
    from p2pstack.host import Connection, Host, Stream

__all__ = ["Identify", "IdentifyInfo", "PeerIdentified", "read_identify_stream"]

_log = logging.getLogger(__name__)

#: What a failed identify or push attempt can raise because of the network or the peer.
#: Peers remembered as having asked us for identify (``Identify.identified_by``).
_MAX_ASKED_BY = 4096
_ATTEMPT_ERRORS: tuple[type[BaseException], ...] = (*NETWORK_ERRORS, TimeoutError)


@attrs.frozen(kw_only=True)
class PeerIdentified:
    """Identify learned what a peer runs (published on ``host.events`` by the service)."""

    peer_id: PeerId
    protocols: Sequence[str]
    listen_addrs: Sequence[Multiaddr]
    agent_version: str
    protocol_version: str
    observed_addr: Multiaddr | None


@attrs.frozen(kw_only=True)
class IdentifyInfo:
    """What a peer told us about itself, validated.

    Attributes:
        peer_id: the peer.
        public_key: its public key (from the message, else from the connection's handshake).
        protocols: the protocols it serves.
        listen_addrs: the addresses it listens on, as sent (without ``/p2p/``).
        observed_addr: how it sees our side of the connection.
        agent_version: its software (``""`` if not sent).
        protocol_version: its protocol family (``""`` if not sent).
        signed_peer_record: its signed address record, if sent and valid.
    """

    peer_id: PeerId
    public_key: PublicKey | None
    protocols: tuple[str, ...]
    listen_addrs: tuple[Multiaddr, ...]
    observed_addr: Multiaddr | None
    agent_version: str
    protocol_version: str
    signed_peer_record: PeerRecord | None


async def read_identify_stream(stream: ByteStream) -> IdentifyMessage:
    """Read an identify (or push) stream to its end and decode it. The caller bounds the time.

    Raises:
        RemoteProtocolError: more than ``MAX_INBOUND_SIZE`` bytes, or not an Identify message.
    """
    buf = bytearray()
    while True:
        try:
            buf += await stream.receive(MAX_INBOUND_SIZE + 1 - len(buf))
        except anyio.EndOfStream:
            return decode_identify_stream(bytes(buf))
        if len(buf) > MAX_INBOUND_SIZE:
            raise RemoteProtocolError(f"identify message larger than {MAX_INBOUND_SIZE} bytes")


def _text_field(sent: str | None, stored: str | None, push: bool) -> str:
    # A push may leave a field out to mean "unchanged"; a full answer without it means "none".
    if sent is not None:
        return sent
    return (stored or "") if push else ""


class Identify:
    """The identify service (``host.service(Identify)``).

    Args:
        timeout: most seconds for one identify exchange, served or requested, and for one push.
        identify_on_connect: identify every new connection automatically.
        push: push our new protocols to connected peers when they change, and accept pushes.
        addr_ttl: seconds that addresses learned through identify stay in the peerstore.
        clock: wall-clock seconds, for the signed peer record's sequence number.
        max_push_concurrency: most pushes sent at once.
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        identify_on_connect: bool = True,
        push: bool = True,
        addr_ttl: float = ADDR_TTL_RECENT,
        clock: Callable[[], float] = time.time,
        max_push_concurrency: int = 16,
    ) -> None:
        self._timeout = timeout
        self._on_connect = identify_on_connect
        self._push_enabled = push
        self._addr_ttl = addr_ttl
        self._max_push = max_push_concurrency
        # "time-based at start, +1 per change": strictly increasing across restarts too.
        self._seq = int(clock() * 1_000_000)
        self._record_addrs: tuple[Multiaddr, ...] | None = None
        self._record_bytes = b""
        self._host: Host | None = None
        self._push_wanted: anyio.Event | None = None
        self._handles: list[Unsubscribe] = []
        # Peers that asked us for identify (most recent last, bounded), and who waits for whom.
        self._asked_by: OrderedDict[PeerId, None] = OrderedDict()
        self._asked_waiters: dict[PeerId, anyio.Event] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, host: Host) -> None:
        """Register the identify (and push) handlers and event callbacks."""
        self._host = host
        # Identify runs over limited (relayed) connections too: DCUtR needs the observed and
        # listen addresses exchanged there (circuit relay v2 spec, "Interaction with DCUtR").
        host.set_stream_handler(PROTOCOL_ID, self._handle_identify, allow_limited=True)
        if self._on_connect:
            self._handles.append(host.events.on(ConnectionOpened, self._connection_opened))
        if self._push_enabled:
            host.set_stream_handler(PUSH_PROTOCOL_ID, self._handle_push, allow_limited=True)
            self._push_wanted = anyio.Event()
            host.start_soon(self._run_pusher, name="identify push")
            # A DHT switching mode changes our protocols; a new listener changes our addresses.
            self._handles.append(host.events.on(LocalProtocolsChanged, self._want_push))
            self._handles.append(host.events.on(LocalAddrsChanged, self._want_push))
            # Newly confirmed observed addresses are advertised too.
            self._handles.append(host.events.on(ObservedAddrsChanged, self._want_push))

    async def stop(self) -> None:
        """Stop reacting to events and pushing; the host cancels the pusher task."""
        for handle in self._handles:
            handle.close()
        self._handles.clear()
        self._push_wanted = None

    def _require_host(self) -> Host:
        if self._host is None:
            raise LocalProtocolError("the Identify service has not been started")
        return self._host

    def _connection_opened(self, event: ConnectionOpened) -> None:
        self._require_host().start_soon(self._identify_quietly, event.connection, name="identify")

    def _want_push(self, _event: object) -> None:
        if self._push_wanted is not None:
            self._push_wanted.set()

    async def _identify_quietly(self, conn: Connection) -> None:
        try:
            await self.identify_connection(conn)
        except _ATTEMPT_ERRORS as exc:
            # One failed attempt says little about the connection: it stays open.
            _log.debug("identify of %s failed: %r", conn.remote_peer, exc)

    async def _run_pusher(self) -> None:
        # Bursts of protocol changes collapse into one push round.
        while self._push_wanted is not None:
            await self._push_wanted.wait()
            self._push_wanted = anyio.Event()
            await self.push()

    # -- our message ----------------------------------------------------------------------------

    def _signed_record(self, host: Host) -> bytes:
        addrs = tuple(host.addresses.advertised())
        if addrs != self._record_addrs:
            self._seq += 1
            record = PeerRecord(peer_id=host.peer_id, seq=self._seq, addrs=list(addrs))
            self._record_bytes = record.seal(host.identity.private_key).to_bytes()
            self._record_addrs = addrs
        return self._record_bytes

    def local_message(self, observed_addr: Multiaddr | None = None) -> IdentifyMessage:
        """The Identify message this host sends, for a peer seen at ``observed_addr``."""
        host = self._require_host()
        return IdentifyMessage(
            protocol_version=host.protocol_version,
            agent_version=host.agent_version,
            public_key=host.identity.public_key.to_protobuf(),
            listen_addrs=tuple(host.addresses.advertised()),
            observed_addr=observed_addr,
            protocols=tuple(host.protocols),
            signed_peer_record=self._signed_record(host),
        )

    async def _handle_identify(self, stream: Stream) -> None:
        data = frame_identify(self.local_message(stream.connection.remote_multiaddr))
        try:
            with anyio.fail_after(self._timeout):
                await stream.send(data)
                await stream.send_eof()
        except TimeoutError:
            raise P2PTimeoutError(f"identify: peer did not read within {self._timeout} s") from None
        self._note_asked_by(stream.remote_peer)

    def _note_asked_by(self, peer: PeerId) -> None:
        self._asked_by[peer] = None
        self._asked_by.move_to_end(peer)
        while len(self._asked_by) > _MAX_ASKED_BY:
            self._asked_by.popitem(last=False)
        waiter = self._asked_waiters.pop(peer, None)
        if waiter is not None:
            waiter.set()

    async def identified_by(self, peer: PeerId, *, within: float = 1.0) -> bool:
        """Wait until ``peer`` has asked us for identify and been answered, as most peers do
        right after a connection opens; give up once our newest connection to it is
        ``within`` seconds old (at once if it is older, or if there is none).

        Some peers use what identify tells them only if it came before a request: py-libp2p
        puts a Kademlia peer in its routing table only when it already holds the peer's
        addresses, so a first request sent before its identify finished leaves us out.

        Returns:
            Whether ``peer`` asked us for identify.
        """
        host = self._require_host()
        if peer in self._asked_by:
            return True
        opened = [c.opened_at for c in host.connections(peer)]
        left = within - (anyio.current_time() - max(opened)) if opened else 0.0
        if left <= 0:
            return False
        waiter = self._asked_waiters.setdefault(peer, anyio.Event())
        try:
            with anyio.move_on_after(left):
                await waiter.wait()
        finally:
            if self._asked_waiters.get(peer) is waiter:
                del self._asked_waiters[peer]
        return peer in self._asked_by

    # -- requesting -----------------------------------------------------------------------------

    async def identify(
        self,
        peer: PeerId,
        *,
        timeout: float = 10.0,
    ) -> IdentifyInfo:
        """Ask ``peer`` (dialing it if needed) what it runs; update the peerstore and emit
        ``PeerIdentified``.

        Args:
            peer: the peer to identify.
            timeout: most seconds for the whole exchange.

        Returns:
            The validated answer.

        Raises:
            RemoteProtocolError: the answer is malformed or its public key is not the peer's.
            P2PTimeoutError: no complete answer within ``timeout``.
            P2PError: dialing or negotiating failed.
        """
        host = self._require_host()
        try:
            with anyio.fail_after(timeout):
                conn = await host.dial_peer(peer)
        except TimeoutError:
            raise P2PTimeoutError(f"identify: could not reach {peer} within {timeout} s") from None
        return await self.identify_connection(conn, timeout=timeout)

    async def identify_connection(
        self,
        conn: Connection,
        *,
        timeout: float | None = None,
    ) -> IdentifyInfo:
        """Identify the peer at the other end of ``conn``, over that connection.

        Args:
            conn: an open connection.
            timeout: most seconds for the exchange (the service's ``timeout`` if ``None``).

        Returns:
            The validated answer (also stored in the peerstore and emitted as an event).

        Raises:
            RemoteProtocolError: the answer is malformed or its public key is not the peer's.
            P2PTimeoutError: no complete answer within the timeout.
            P2PError: the stream could not be opened.
        """
        limit = self._timeout if timeout is None else timeout
        try:
            with anyio.fail_after(limit):
                stream = await conn.new_stream([PROTOCOL_ID])
                try:
                    msg = await read_identify_stream(stream)
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await stream.reset()
                    raise
                await stream.aclose()
        except TimeoutError:
            raise P2PTimeoutError(f"identify: no answer within {limit} s") from None
        return self._consume(conn, msg, push=False)

    async def _handle_push(self, stream: Stream) -> None:
        try:
            with anyio.fail_after(self._timeout):
                msg = await read_identify_stream(stream)
        except TimeoutError:
            raise P2PTimeoutError(f"identify push: incomplete within {self._timeout} s") from None
        self._consume(stream.connection, msg, push=True)

    # -- pushing --------------------------------------------------------------------------------

    async def push(self) -> None:
        """Send our current Identify message to every connected peer that accepts pushes.

        Failures are logged at debug level and affect only that peer's push.
        """
        host = self._require_host()
        targets: dict[PeerId, Connection] = {}
        for conn in host.connections():
            if PUSH_PROTOCOL_ID in host.peerstore.protocols(conn.remote_peer):
                targets.setdefault(conn.remote_peer, conn)
        limiter = anyio.CapacityLimiter(self._max_push)
        async with anyio.create_task_group() as tg:
            for conn in targets.values():
                tg.start_soon(self._push_one, conn, limiter)

    async def _push_one(self, conn: Connection, limiter: anyio.CapacityLimiter) -> None:
        async with limiter:
            data = frame_identify(self.local_message(conn.remote_multiaddr))
            try:
                with anyio.fail_after(self._timeout):
                    stream = await conn.new_stream([PUSH_PROTOCOL_ID])
                    try:
                        await stream.send(data)
                        await stream.send_eof()
                    finally:
                        with anyio.CancelScope(shield=True):
                            await stream.aclose()
            except _ATTEMPT_ERRORS as exc:
                _log.debug("identify push to %s failed: %r", conn.remote_peer, exc)

    # -- consuming answers ----------------------------------------------------------------------

    def _public_key(self, conn: Connection, msg: IdentifyMessage) -> PublicKey:
        peer = conn.remote_peer
        if msg.public_key is None:
            return conn.remote_public_key
        try:
            key = PublicKey.from_protobuf(msg.public_key)
        except IdentityError as exc:
            raise RemoteProtocolError(f"identify: invalid public key from {peer}: {exc}") from None
        if not peer.matches(key):
            raise RemoteProtocolError(f"identify: public key sent by {peer} is not its own")
        return key

    def _peer_record(self, peer: PeerId, msg: IdentifyMessage) -> PeerRecord | None:
        if msg.signed_peer_record is None:
            return None
        try:
            record, _envelope = PeerRecord.from_envelope_bytes(msg.signed_peer_record)
        except (IdentityError, RemoteProtocolError) as exc:
            _log.debug("identify: ignoring invalid peer record from %s: %r", peer, exc)
            return None
        if record.peer_id != peer:
            _log.debug("identify: ignoring peer record of %s sent by %s", record.peer_id, peer)
            return None
        return record

    def _consume(self, conn: Connection, msg: IdentifyMessage, *, push: bool) -> IdentifyInfo:
        """Validate ``msg`` from the peer of ``conn``, store it and emit ``PeerIdentified``.

        A push may be partial: absent fields keep what the peerstore already has.
        """
        host = self._require_host()
        store = host.peerstore
        peer = conn.remote_peer
        key = self._public_key(conn, msg)
        record = self._peer_record(peer, msg)
        store.set_public_key(peer, key)
        if record is not None and msg.signed_peer_record is not None:
            # Kept whole (not only its addresses) so that kad and gossipsub PX can pass it on;
            # the peerstore keeps the highest seq and bounds its size per peer.
            store.consume_signed_record(msg.signed_peer_record, self._addr_ttl)
        # Addresses from a valid signed record are certified by the peer: prefer them.
        addrs = tuple(record.addrs) if record is not None else msg.listen_addrs
        if addrs:
            store.add_addrs(peer, addrs, self._addr_ttl)
        if msg.protocols or not push:
            host.set_peer_protocols(peer, msg.protocols)
        if msg.observed_addr is not None and not push:
            # Counted towards confirming how others see us (host.addresses.observed()).
            host.addresses.record_observed(conn, msg.observed_addr)
        if msg.agent_version is not None:
            store.set_metadata(peer, "agent_version", msg.agent_version)
        if msg.protocol_version is not None:
            store.set_metadata(peer, "protocol_version", msg.protocol_version)
        info = IdentifyInfo(
            peer_id=peer,
            public_key=key,
            protocols=tuple(store.protocols(peer)) if push else msg.protocols,
            listen_addrs=msg.listen_addrs or (tuple(store.addrs(peer)) if push else ()),
            observed_addr=msg.observed_addr,
            agent_version=_text_field(
                msg.agent_version, store.metadata(peer, "agent_version"), push
            ),
            protocol_version=_text_field(
                msg.protocol_version, store.metadata(peer, "protocol_version"), push
            ),
            signed_peer_record=record,
        )
        host.events.emit(
            PeerIdentified(
                peer_id=peer,
                protocols=info.protocols,
                listen_addrs=info.listen_addrs,
                agent_version=info.agent_version,
                protocol_version=info.protocol_version,
                observed_addr=info.observed_addr,
            )
        )
        return info
