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
from p2pstack.errors import NETWORK_ERRORS, ProtocolAlreadyRegistered
from p2pstack.events import EventBus, StreamHandlerFailed
from p2pstack.multistream import negotiate_inbound

if TYPE_CHECKING:
    from p2pstack.connection import Connection
    from p2pstack.identity import PeerId
    from p2pstack.interfaces import MuxedStream

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
    """Stream handlers by protocol ID, their concurrency counters, and the inbound stream path.

    Args:
        bus: where ``StreamHandlerFailed`` is published.
        negotiate_timeout: seconds multistream-select may take on an inbound stream.
    """

    def __init__(self, bus: EventBus, *, negotiate_timeout: float) -> None:
        self._bus = bus
        self._negotiate_timeout = negotiate_timeout
        self._entries: dict[str, _Entry] = {}
        self._active: dict[str, int] = {}
        self._active_per_peer: dict[tuple[str, PeerId], int] = {}
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

    def remove(self, protocol_id: str) -> bool:
        """Unregister ``protocol_id``; whether it was registered."""
        return self._entries.pop(protocol_id, None) is not None

    def _allowed_on_limited(self, protocol_id: str) -> bool:
        entry = self._entries.get(protocol_id)
        return entry is not None and entry.allow_limited

    def _refusal(self, proto: str, entry: _Entry | None, conn: Connection) -> str | None:
        if entry is None:
            return "handler removed while negotiating"
        if conn.limited and not entry.allow_limited:
            return "handler does not run on limited connections"
        active = self._active.get(proto, 0)
        if entry.max_inbound is not None and active >= entry.max_inbound:
            return f"at its limit of {entry.max_inbound} inbound streams"
        per_peer = self._active_per_peer.get((proto, conn.remote_peer), 0)
        if entry.max_inbound_per_peer is not None and per_peer >= entry.max_inbound_per_peer:
            return f"peer at its limit of {entry.max_inbound_per_peer} inbound streams"
        return None

    async def serve(self, conn: Connection, muxed: MuxedStream) -> None:
        """Negotiate an inbound stream and run its handler; reset it when refused or failed."""
        # On a limited connection, protocols whose handler did not opt in are answered "na".
        supports = self._allowed_on_limited if conn.limited else self._entries
        try:
            proto, leftover = await negotiate_inbound(
                muxed, supports, timeout=self._negotiate_timeout
            )
        except NETWORK_ERRORS as exc:
            log.debug("inbound stream from %s failed to negotiate: %r", conn.remote_peer, exc)
            await muxed.reset()
            return
        entry = self._entries.get(proto)
        refusal = self._refusal(proto, entry, conn)
        if entry is None or refusal is not None:
            log.debug("refusing %s stream from %s: %s", proto, conn.remote_peer, refusal)
            await muxed.reset()
            return
        stream = Stream(muxed, proto, conn, leftover)
        conn._track(stream)
        key = (proto, conn.remote_peer)
        self._active[proto] = self._active.get(proto, 0) + 1
        self._active_per_peer[key] = self._active_per_peer.get(key, 0) + 1
        try:
            await self._run(entry.handler, stream)
        finally:
            self._active[proto] -= 1
            remaining = self._active_per_peer.pop(key) - 1
            if remaining:
                self._active_per_peer[key] = remaining

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
