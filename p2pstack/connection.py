"""Host-level connections and streams: a muxed connection bound to a peer, and a stream bound to
the protocol multistream-select agreed on it
(https://github.com/libp2p/specs/blob/master/connections/README.md#opening-new-streams-over-a-connection).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio

from p2pstack.errors import NETWORK_ERRORS, ConnectionClosedError, P2PError
from p2pstack.interfaces import Direction
from p2pstack.multistream import LazyOutbound, negotiate_outbound
from p2pstack.sync import Signal

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.identity import PeerId, PublicKey
    from p2pstack.interfaces import (
        Buffer,
        ConnectionInfo,
        ConnectionLimits,
        MuxedStream,
        UpgradedConnection,
    )
    from p2pstack.resources import ConnectionScope, StreamScope

__all__ = ["Connection", "Direction", "Stream"]

#: Protocol bytes an optimistic stream sends before the listener confirmed the protocol: a
#: request/response exchange fits; more waits for the echo (one round trip, as without it).
_OPTIMISTIC_BYTES = 64 * 1024


class Stream:
    """A negotiated stream to a peer: a ``ByteStream`` that also knows its protocol and can be
    reset. Returned by ``Host.new_stream`` and handed to stream handlers.

    A stream opened with a ``LazyOutbound`` negotiation sends its proposal with the first write
    (or before the first read) and checks the answer on the first read, which then raises what
    ``negotiate_outbound`` would (``ProtocolNotSupported`` when refused; the stream is reset).
    """

    def __init__(
        self,
        muxed: MuxedStream,
        protocol: str,
        connection: Connection,
        prefix: bytes = b"",
        *,
        scope: StreamScope | None = None,
        negotiation: LazyOutbound | None = None,
    ) -> None:
        self._muxed = muxed
        self._prefix = prefix
        self.protocol = protocol
        self.connection = connection
        self._scope = scope  # its resource reservation, released when the stream ends
        self._negotiation = negotiation  # an unconfirmed optimistic proposal
        self._unsent = b"" if negotiation is None else negotiation.proposal
        self._confirming: anyio.Event | None = None  # set when a confirmation attempt ends
        self._failure: BaseException | None = None  # why the optimistic negotiation failed

    @property
    def remote_peer(self) -> PeerId:
        return self.connection.remote_peer

    @property
    def stream_id(self) -> int:
        return self._muxed.stream_id

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Receive 1..max_bytes bytes. Raises ``anyio.EndOfStream`` at the end of the stream
        and ``StreamReset`` if it was reset."""
        if self._negotiation is not None:
            await self._confirm()
        if self._prefix:
            data, self._prefix = self._prefix[:max_bytes], self._prefix[max_bytes:]
            return data
        return await self._muxed.receive(max_bytes)

    async def send(self, item: Buffer) -> None:
        """Send bytes; blocks under backpressure. Raises ``StreamReset`` if reset."""
        if self._negotiation is not None:
            if self._unsent:
                # The proposal and the first data in one write: one frame, one packet. Only
                # that much goes unconfirmed: a listener that has not taken the stream yet
                # buffers it, and mplex has no flow control to bound that buffer.
                view = memoryview(item).cast("B")
                first, rest = view[:_OPTIMISTIC_BYTES], view[_OPTIMISTIC_BYTES:]
                data, self._unsent = self._unsent + first, b""
                await self._muxed.send(data)
                if not rest:
                    return
                item = rest
            await self._confirm()
        await self._muxed.send(item)

    async def send_eof(self) -> None:
        """Half-close: the peer reads end of stream; we can still receive."""
        if self._unsent:
            await self.send(b"")
        if self._negotiation is None:
            await self._muxed.send_eof()
            return
        # A write-only exchange learns here, as with eager negotiation, whether the listener
        # took the protocol (and so the data): ``ProtocolNotSupported`` when refused.
        try:
            await self._muxed.send_eof()
        except NETWORK_ERRORS:
            await self._confirm()  # the listener's refusal, when that is why
            raise
        await self._confirm()

    async def _confirm(self) -> None:
        """Finish an optimistic negotiation (the listener's answer precedes the first data),
        once for the stream's reader and writer: whichever comes second waits."""
        while (negotiation := self._negotiation) is not None:
            if self._failure is not None:
                raise self._failure
            if self._confirming is not None:
                await self._confirming.wait()
                continue
            self._confirming = done = anyio.Event()
            try:
                if self._unsent:
                    data, self._unsent = self._unsent, b""
                    await self._muxed.send(data)
                self._prefix = await negotiation.finish(self._muxed)
                self._negotiation = None
            except NETWORK_ERRORS as exc:
                self._failure = exc
                await self.reset()
                raise
            finally:
                self._confirming = None
                done.set()

    async def aclose(self) -> None:
        """Close the stream. Never raises.

        An optimistic stream that sent data whose protocol is still unconfirmed first waits
        (within its negotiation timeout) for the listener's answer, so that a close that
        returned means the listener took the stream, as with eager negotiation.
        """
        try:
            if self._negotiation is not None and not self._unsent and self._failure is None:
                with contextlib.suppress(P2PError, *NETWORK_ERRORS):
                    await self._confirm()
        finally:
            self._release()
            await self._muxed.aclose()

    async def reset(self) -> None:
        """Abort the stream in both directions. Never raises."""
        self._release()
        await self._muxed.reset()

    def _release(self) -> None:
        self.connection._forget(self)
        if self._scope is not None:
            self._scope.done()

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<Stream {self.protocol} #{self.stream_id} to {self.remote_peer}>"


class Connection:
    """A secured, multiplexed connection to one peer, owned by a host.

    Attributes:
        info: the public description of the connection (peer, key, addresses, protocols,
            direction, ``limited``).
    """

    def __init__(
        self,
        upgraded: UpgradedConnection,
        *,
        local_peer: PeerId,
        negotiate_timeout: float,
        opened_at: float,
    ) -> None:
        self.info: ConnectionInfo = upgraded.info
        self._muxed = upgraded.muxed
        self.local_peer = local_peer
        self.opened_at = opened_at
        self._negotiate_timeout = negotiate_timeout
        self._streams: set[Stream] = set()
        # Woken when the last stream ends (costs nothing until someone waits: an
        # ``anyio.Event`` per connection was about 0.9 KiB).
        self._idle = Signal()
        self.draining = False
        #: Its resource reservation (set by the host); streams are reserved in it.
        self._scope: ConnectionScope | None = None

    @property
    def remote_peer(self) -> PeerId:
        return self.info.remote_peer

    @property
    def remote_public_key(self) -> PublicKey:
        return self.info.remote_public_key

    @property
    def local_multiaddr(self) -> Multiaddr:
        return self.info.local_addr

    @property
    def remote_multiaddr(self) -> Multiaddr:
        return self.info.remote_addr

    @property
    def direction(self) -> Direction:
        return self.info.direction

    @property
    def security_protocol(self) -> str:
        return self.info.security

    @property
    def muxer_protocol(self) -> str:
        return self.info.muxer

    @property
    def limited(self) -> bool:
        """A limited (relayed) connection runs only handlers that opted in."""
        return self.info.limited

    @property
    def limits(self) -> ConnectionLimits | None:
        """The relay's limits on a limited connection (``None`` if unknown or unlimited)."""
        return self.info.limits

    @property
    def is_closed(self) -> bool:
        return self._muxed.is_closed

    @property
    def streams(self) -> list[Stream]:
        """The streams open on this connection."""
        return list(self._streams)

    async def new_stream(
        self, protocols: Sequence[str], *, timeout: float | None = None, lazy: bool = False
    ) -> Stream:
        """Open a stream and negotiate the first of ``protocols`` the peer supports.

        Args:
            protocols: protocol IDs in order of preference.
            timeout: seconds for negotiation (default: the host's).
            lazy: with a single protocol, negotiate optimistically (``LazyOutbound``): return
                at once, and raise the negotiation errors below from the stream's first read.

        Returns:
            The stream, its protocol agreed (or, lazily, proposed).

        Raises:
            ConnectionClosedError: the connection is closed.
            ResourceLimitExceeded: a stream limit of the connection, the peer, the system or
                the negotiated protocol (then the stream is reset).
            ProtocolNotSupported: the peer supports none of ``protocols``.
            P2PTimeoutError: negotiation took longer than ``timeout`` (default: the host's).
        """
        seconds = self._negotiate_timeout if timeout is None else timeout
        if lazy and len(protocols) == 1:
            return await self._new_lazy_stream(protocols[0], seconds)
        scope = self._open_scope()
        try:
            muxed = await self._muxed.open_stream()
            try:
                proto, leftover = await negotiate_outbound(
                    muxed,
                    protocols,
                    timeout=seconds,
                )
                if scope is not None:
                    self._count_protocol(scope, proto)
            except NETWORK_ERRORS:
                await muxed.reset()
                raise
        except BaseException:
            if scope is not None:
                scope.done()
            raise
        stream = Stream(muxed, proto, self, leftover, scope=scope)
        self._track(stream)
        return stream

    def _open_scope(self) -> StreamScope | None:
        if self._scope is None:
            return None
        if self._scope.closed:
            raise ConnectionClosedError("the connection is closed")
        return self._scope.open_stream("outbound")

    def _count_protocol(self, scope: StreamScope, protocol: str) -> None:
        # The connection can end while the stream negotiates; its scope (and the stream's)
        # is then done, and the stream has nothing left to be counted in.
        if scope.closed:
            raise ConnectionClosedError("the connection closed while the stream was opened")
        scope.set_protocol(protocol)

    async def _new_lazy_stream(self, protocol: str, timeout: float) -> Stream:
        negotiation = LazyOutbound(protocol, timeout=timeout)
        scope = self._open_scope()
        try:
            if scope is not None:
                self._count_protocol(scope, protocol)
            muxed = await self._muxed.open_stream()
        except BaseException:
            if scope is not None:
                scope.done()
            raise
        stream = Stream(muxed, protocol, self, scope=scope, negotiation=negotiation)
        self._track(stream)
        return stream

    async def aclose(self) -> None:
        """Close the connection gracefully; its streams are reset. Never raises."""
        await self._muxed.aclose()

    async def wait_idle(self) -> None:
        """Wait until no stream is open on this connection."""
        while self._streams:
            await self._idle.wait()

    def _track(self, stream: Stream) -> None:
        self._streams.add(stream)

    def _forget(self, stream: Stream) -> None:
        self._streams.discard(stream)
        if not self._streams:
            self._idle.set()

    def __repr__(self) -> str:
        return (
            f"<Connection {self.direction} {self.remote_peer} {self.remote_multiaddr} "
            f"{self.security_protocol} {self.muxer_protocol}>"
        )
