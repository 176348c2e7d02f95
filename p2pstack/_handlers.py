"""The host's stream handler registry: which protocols it serves, with what limits, and how an
inbound stream is negotiated and handed to its handler
(https://github.com/libp2p/specs/blob/master/connections/README.md#opening-new-streams-over-a-connection).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import attrs

from p2pstack.connection import Stream
from p2pstack.errors import (
    NETWORK_ERRORS,
    ProtocolAlreadyRegistered,
    RemoteProtocolError,
    ResourceLimitExceeded,
)
from p2pstack.events import EventBus, StreamHandlerFailed
from p2pstack.multistream import negotiate_inbound

if TYPE_CHECKING:
    from p2pstack.connection import Connection
    from p2pstack.interfaces import MuxedStream
    from p2pstack.resources import ResourceManager, StreamScope

__all__ = ["HandlerRegistry", "StreamHandler"]

log = logging.getLogger("p2pstack.host")

#: Serves one negotiated inbound stream; the stream is closed when it returns, reset if it raises.
StreamHandler = Callable[[Stream], Awaitable[None]]


@attrs.frozen(kw_only=True)
class _Entry:
    handler: StreamHandler
    max_inbound: int | None
    max_inbound_per_peer: int | None
    allow_limited: bool


def _check_limit(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{name} must be at least 1")


class HandlerRegistry:
    """Stream handlers by protocol ID and the inbound stream path. Concurrency limits are the
    resource manager's stream scopes (per connection, peer, protocol, protocol per peer).

    Args:
        bus: where ``StreamHandlerFailed`` is published.
        resources: the host's resource manager; ``max_inbound`` limits are set in it.
        negotiate_timeout: seconds multistream-select may take on an inbound stream.
    """

    def __init__(
        self, bus: EventBus, resources: ResourceManager, *, negotiate_timeout: float
    ) -> None:
        self._bus = bus
        self._resources = resources
        self._negotiate_timeout = negotiate_timeout
        self._entries: dict[str, _Entry] = {}
        self._limited: set[str] = set()  # protocols whose limits were set from max_inbound*
        self.handler_failures = 0

    @property
    def protocols(self) -> list[str]:
        return list(self._entries)

    def add(
        self,
        protocol_id: str,
        handler: StreamHandler,
        *,
        replace: bool,
        max_inbound: int | None,
        max_inbound_per_peer: int | None,
        allow_limited: bool,
    ) -> None:
        """Register ``handler``; see ``Host.set_stream_handler``.

        Raises:
            ValueError: a limit is less than 1.
            ProtocolAlreadyRegistered: ``protocol_id`` has a handler and ``replace`` is false.
        """
        _check_limit("max_inbound", max_inbound)
        _check_limit("max_inbound_per_peer", max_inbound_per_peer)
        if protocol_id in self._entries and not replace:
            raise ProtocolAlreadyRegistered(
                f"a handler for {protocol_id} is already registered (pass replace=True)"
            )
        self._entries[protocol_id] = _Entry(
            handler=handler,
            max_inbound=max_inbound,
            max_inbound_per_peer=max_inbound_per_peer,
            allow_limited=allow_limited,
        )
        self._set_limits(protocol_id, max_inbound, max_inbound_per_peer)

    def _set_limits(self, protocol_id: str, total: int | None, per_peer: int | None) -> None:
        """Map ``max_inbound``/``max_inbound_per_peer`` onto the protocol's stream scopes."""
        if total is None and per_peer is None:
            if protocol_id in self._limited:  # a replaced handler drops the old limits
                self._limited.discard(protocol_id)
                self._resources.set_protocol_limits(protocol_id)
            return
        defaults = self._resources.limits
        self._limited.add(protocol_id)
        self._resources.set_protocol_limits(
            protocol_id,
            total=None if total is None else attrs.evolve(defaults.protocol, streams_inbound=total),
            per_peer=None
            if per_peer is None
            else attrs.evolve(defaults.protocol_peer, streams_inbound=per_peer),
        )

    def remove(self, protocol_id: str) -> bool:
        """Unregister ``protocol_id``; whether it was registered."""
        return self._entries.pop(protocol_id, None) is not None

    def _allowed_on_limited(self, protocol_id: str) -> bool:
        entry = self._entries.get(protocol_id)
        return entry is not None and entry.allow_limited

    def _refusal(self, entry: _Entry | None, conn: Connection) -> str | None:
        if entry is None:
            return "handler removed while negotiating"
        if conn.limited and not entry.allow_limited:
            return "handler does not run on limited connections"
        return None

    async def serve(self, conn: Connection, muxed: MuxedStream) -> None:
        """Negotiate an inbound stream and run its handler; reset it when refused (by a
        resource limit too) or failed."""
        # On a limited connection, protocols whose handler did not opt in are answered "na".
        supports = self._allowed_on_limited if conn.limited else self._entries
        scope: StreamScope | None = None
        if conn._scope is not None and conn._scope.closed:
            # The connection ended between the muxer handing the stream over and now (a
            # pushed stream waits one scheduling round): nothing to serve it on.
            await muxed.reset()
            return
        try:
            if conn._scope is not None:
                scope = conn._scope.open_stream("inbound")
            proto, leftover = await negotiate_inbound(
                muxed, supports, timeout=self._negotiate_timeout
            )
            entry = self._entries.get(proto)
            refusal = self._refusal(entry, conn)
            if scope is not None and scope.closed:
                # The connection ended while the stream negotiated: its scope went with it.
                await muxed.reset()
                return
            if refusal is None and scope is not None:
                scope.set_protocol(proto)
        except ResourceLimitExceeded as exc:
            log.debug("refusing inbound stream from %s: %s", conn.remote_peer, exc)
            await muxed.reset()
            return
        except RemoteProtocolError as exc:
            # Typically an optimistic dialer's data read as a proposal after our ``na``: a
            # close (FIN, the stream forgotten) rather than a reset lets the dialer read that
            # ``na`` (a reset makes it drop unread data) and fail with ProtocolNotSupported.
            log.debug("inbound stream from %s failed to negotiate: %r", conn.remote_peer, exc)
            await muxed.aclose()
            return
        except NETWORK_ERRORS as exc:
            log.debug("inbound stream from %s failed to negotiate: %r", conn.remote_peer, exc)
            await muxed.reset()
            return
        finally:
            if scope is not None and scope.protocol is None:
                scope.done()  # refused or failed before it was counted for its protocol
        if entry is None or refusal is not None:
            log.debug("refusing %s stream from %s: %s", proto, conn.remote_peer, refusal)
            await muxed.reset()
            return
        stream = Stream(muxed, proto, conn, leftover, scope=scope)
        conn._track(stream)
        await self._run(entry.handler, stream)

    async def _run(self, handler: StreamHandler, stream: Stream) -> None:
        proto = stream.protocol
        try:
            await handler(stream)
        except NETWORK_ERRORS as exc:
            log.debug("%s handler ended with %r", proto, exc)
            await stream.reset()
            return
        except Exception as exc:
            # A bug in one handler must not take down every connection of the host: only its
            # stream is reset, and the failure is logged, counted and published.
            log.exception("stream handler for %s failed", proto)
            self.handler_failures += 1
            await stream.reset()
            self._bus.emit(
                StreamHandlerFailed(peer_id=stream.remote_peer, protocol=proto, error=exc)
            )
            return
        await stream.aclose()
