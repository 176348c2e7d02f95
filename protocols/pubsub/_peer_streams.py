"""The streams of the ``Pubsub`` service's peers
(https://github.com/libp2p/specs/blob/master/pubsub/README.md#stream-management): one long-lived
outbound stream per peer, written by one task from the peer's bounded ``OutboundQueue``, and the
peer's inbound streams, read into the router.

The spec has each side keep one outbound stream to the other and read what the other writes on
its own stream; RPCs are length-prefixed protobufs. A peer that reads slowly (or never) costs at
most its queue: the writer blocks on that peer's stream alone, and what overflows the queue is
dropped and counted. A write that takes longer than ``write_timeout`` drops the peer (it may
come back with a new connection). A malformed RPC resets the inbound stream that carried it and
is counted; the rest of the host is untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import attrs

from p2pstack.errors import NETWORK_ERRORS, LimitedConnectionError, ProtocolNotSupported
from p2pstack.sync import Signal
from protocols.pubsub._queue import OutboundQueue, QueueStats
from protocols.pubsub._types import RPC, PubsubProtocolError
from protocols.pubsub._wire import RpcDecoder, frame_rpc

if TYPE_CHECKING:
    from p2pstack.host import Host, Stream
    from p2pstack.identity import PeerId

__all__ = ["REOPEN_DELAYS", "LinkSettings", "PeerStreams"]

_log = logging.getLogger(__name__)

_ERRORS: tuple[type[BaseException], ...] = (*NETWORK_ERRORS, TimeoutError)

#: Seconds before each new try to open a peer's outbound stream after a failed open, while the
#: peer stays connected; the link (and the peer's place in the router) is kept meanwhile.
REOPEN_DELAYS = (0.5, 1.0, 2.0, 4.0)


@attrs.frozen(kw_only=True)
class LinkSettings:
    """Bounds of the peer streams.

    Attributes:
        max_rpc_size: the largest RPC read or written.
        max_queued_bytes: message bytes queued per peer.
        max_queued_control: control items queued per peer.
        open_timeout: seconds to open (and negotiate) an outbound stream.
        write_timeout: seconds one RPC may take to write before the peer is dropped.
    """

    max_rpc_size: int
    max_queued_bytes: int
    max_queued_control: int
    open_timeout: float
    write_timeout: float


@attrs.define
class _Link:
    queue: OutboundQueue
    scope: anyio.CancelScope = attrs.Factory(anyio.CancelScope)
    wake: Signal = attrs.Factory(Signal)
    writing: bool = False  # an RPC taken from the queue is being written
    closing: bool = False  # ended by ``close``: the stream is closed (FIN), not reset


@attrs.define
class LinkCounters:
    """What the streams counted (read by ``Pubsub.statistics``)."""

    malformed_rpcs: int = 0
    dropped_outbound: int = 0
    write_failures: int = 0
    open_retries: int = 0


class PeerStreams:
    """The outbound writers and inbound readers of every pubsub peer.

    Args:
        host: our host.
        protocols: the protocol IDs to negotiate, most preferred first.
        settings: bounds and timeouts.
        on_joined: called with (peer, protocol, outbound, remote IP or ``None``) when a
            peer's first stream is up.
        on_left: called with a peer whose outbound link ended.
        on_rpc: called with (peer, RPC) for each RPC read; it raises ``PubsubProtocolError``
            for an RPC that breaks the protocol (the stream is then reset).
    """

    def __init__(
        self,
        *,
        host: Host,
        protocols: tuple[str, ...],
        settings: LinkSettings,
        on_joined: Callable[[PeerId, str, bool, str | None], None],
        on_left: Callable[[PeerId], None],
        on_rpc: Callable[[PeerId, RPC], None],
    ) -> None:
        self._host = host
        self._protocols = protocols
        self._settings = settings
        self._on_joined = on_joined
        self._on_left = on_left
        self._on_rpc = on_rpc
        self._links: dict[PeerId, _Link] = {}
        self._dropped_closed = 0  # drops counted by queues of links that ended
        self.counters = LinkCounters()
        self.inbound_streams = 0
        #: Set after each RPC written and each link ended (what ``idle`` waiters wait for).
        self.progress = Signal()
        self._writers = 0  # writer tasks still running (``wait_closed``)

    @property
    def dropped_outbound(self) -> int:
        """RPC parts dropped by full queues, over all links."""
        live = sum(link.queue.statistics().dropped_messages for link in self._links.values())
        live += sum(link.queue.statistics().dropped_control for link in self._links.values())
        return live + self._dropped_closed

    def queue_statistics(self, peer: PeerId) -> QueueStats | None:
        """The outbound queue of ``peer`` (``None`` when it has no link)."""
        link = self._links.get(peer)
        return None if link is None else link.queue.statistics()

    def idle(self, peer: PeerId) -> bool:
        """Whether everything queued for ``peer`` has been written (true without a link)."""
        link = self._links.get(peer)
        return link is None or (not link.writing and not link.queue)

    def connect(self, peer: PeerId) -> None:
        """Open the outbound stream to ``peer`` (in a task) unless it has one. Never blocks."""
        if peer in self._links or peer == self._host.peer_id:
            return
        settings = self._settings
        link = self._links[peer] = _Link(
            OutboundQueue(
                max_bytes=settings.max_queued_bytes,
                max_control=settings.max_queued_control,
                max_rpc_size=settings.max_rpc_size,
            )
        )
        self._host.start_soon(self._run_outbound, peer, link, name="pubsub writer")

    def send(self, peer: PeerId, rpc: RPC) -> None:
        """Queue ``rpc`` for ``peer`` (dropped when the peer has no link). Never blocks."""
        link = self._links.get(peer)
        if link is None or not rpc:
            return
        link.queue.push(rpc)
        link.wake.set()

    def disconnect(self, peer: PeerId) -> None:
        """End ``peer``'s outbound link (its writer task is cancelled) and report it left."""
        link = self._links.get(peer)
        if link is not None:
            self._drop(peer, link)

    def close(self) -> None:
        """End every link; each stream is closed gracefully (FIN, so that the peer still reads
        what was written: a reset may discard it) instead of reset. Await ``wait_closed``
        before the connections close."""
        for peer, link in list(self._links.items()):
            link.closing = True
            self._drop(peer, link)

    async def wait_closed(self) -> None:
        """Wait until every writer task has ended (after ``close``). Bound it with a timeout."""
        while self._writers:
            await self.progress.wait()

    def _drop(self, peer: PeerId, link: _Link) -> None:
        if self._links.get(peer) is not link:
            return
        del self._links[peer]
        stats = link.queue.statistics()
        self._dropped_closed += stats.dropped_messages + stats.dropped_control
        link.scope.cancel()
        self.progress.set()
        self._on_left(peer)

    async def _run_outbound(self, peer: PeerId, link: _Link) -> None:
        self._writers += 1
        try:
            with link.scope:
                stream: Stream | None = None
                try:
                    stream = await self._open(peer)
                    self._joined(stream)
                    await self._write_loop(stream, link)
                except _ERRORS as exc:
                    if stream is not None:
                        self.counters.write_failures += 1
                    link.closing = False
                    _log.debug("pubsub stream to %s ended: %r", peer, exc)
                finally:
                    if stream is not None:
                        with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                            await (stream.aclose() if link.closing else stream.reset())
            self._drop(peer, link)
        finally:
            self._writers -= 1
            self.progress.set()

    async def _open(self, peer: PeerId) -> Stream:
        """The outbound stream to ``peer``, tried again after each of ``REOPEN_DELAYS`` while a
        direct connection to the peer stays open (no new dial: the link ends with it)."""
        delays = iter(REOPEN_DELAYS)
        while True:
            try:
                with anyio.fail_after(self._settings.open_timeout):
                    return await self._host.new_stream(peer, self._protocols)
            except (ProtocolNotSupported, LimitedConnectionError):
                raise  # trying again cannot help
            except _ERRORS as exc:
                delay = next(delays, None)
                connected = any(not c.limited for c in self._host.connections(peer))
                if delay is None or not connected:
                    raise
                self.counters.open_retries += 1
                _log.debug(
                    "pubsub stream to %s failed to open (%r): again in %g s", peer, exc, delay
                )
            await anyio.sleep(delay)

    def _joined(self, stream: Stream) -> None:
        conn = stream.connection
        ip = next(
            (str(v) for p, v in conn.remote_multiaddr.items() if p.name in ("ip4", "ip6")), None
        )
        self._on_joined(stream.remote_peer, stream.protocol, conn.direction == "outbound", ip)

    async def _write_loop(self, stream: Stream, link: _Link) -> None:
        timeout = self._settings.write_timeout
        while True:
            rpc = link.queue.take()
            if rpc is None:
                await link.wake.wait()
                continue
            link.writing = True
            with anyio.fail_after(timeout):
                await stream.send(frame_rpc(rpc))
            link.writing = False
            self.progress.set()

    async def handle_inbound(self, stream: Stream) -> None:
        """The stream handler of the pubsub protocols: read RPCs until the stream ends.

        Raises:
            BaseException: only cancellation; bad input and network errors end the stream.
        """
        peer = stream.remote_peer
        self.connect(peer)  # the spec: answer an inbound stream with our own outbound one
        self._joined(stream)
        self.inbound_streams += 1
        decoder = RpcDecoder(self._settings.max_rpc_size)
        try:
            while True:
                data = await stream.receive()
                for rpc in decoder.feed(data):
                    self._on_rpc(peer, rpc)
        except anyio.EndOfStream:
            return
        except PubsubProtocolError as exc:
            self.counters.malformed_rpcs += 1
            _log.debug("malformed pubsub RPC from %s: %s", peer, exc)
            await stream.reset()
        except NETWORK_ERRORS as exc:
            _log.debug("pubsub stream from %s failed: %r", peer, exc)
            await stream.reset()
        finally:
            self.inbound_streams -= 1
