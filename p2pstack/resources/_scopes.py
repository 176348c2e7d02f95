"""Resource scopes: the accounts usage is counted in, and the connection and stream scopes that
reserve and release connections, streams and memory in them.

A connection is counted in the system scope, in the transient scope until its peer is known
(``set_peer``) and in that peer's scope after, and, when inbound, in its source IP's subnets.
A stream is counted in its connection, its connection's owner (peer or transient), the system,
and once named in its protocol, protocol-per-peer, service and service-per-peer scopes.
Memory reserved by a stream is counted in all of those and in the stream itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import attrs

from p2pstack.resources._limits import ScopeLimit

if TYPE_CHECKING:
    from collections.abc import Callable

    from multiaddr import Multiaddr

    from p2pstack.identity import PeerId
    from p2pstack.resources._manager import LimitedResourceManager

__all__ = ["ConnectionScope", "Direction", "ScopeUsage", "StreamScope"]

Direction = Literal["inbound", "outbound"]

_FIELDS = (
    "connections_inbound",
    "connections_outbound",
    "streams_inbound",
    "streams_outbound",
    "memory",
)
#: Field names spelled once. A name built per call (``f"streams_{direction}"``) is a new string
#: object, and ``getattr`` with it leaves it in CPython's type attribute cache: thousands of
#: such strings outlived their connections, scattered among the freed memory of a flood and
#: keeping the allocator's pools and arenas from being returned.
CONNECTION_FIELD: dict[str, str] = {
    "inbound": "connections_inbound",
    "outbound": "connections_outbound",
}
STREAM_FIELD: dict[str, str] = {"inbound": "streams_inbound", "outbound": "streams_outbound"}
#: Per-direction field -> (the limit on both directions, the two per-direction fields).
_TOTAL_OF: dict[str, tuple[str, str, str]] = {
    field: (total, f"{total}_inbound", f"{total}_outbound")
    for total in ("connections", "streams")
    for field in (f"{total}_inbound", f"{total}_outbound")
}
_WHAT = {
    "connections": "connection",
    "connections_inbound": "inbound connection",
    "connections_outbound": "outbound connection",
    "streams": "stream",
    "streams_inbound": "inbound stream",
    "streams_outbound": "outbound stream",
    "memory": "memory",
}


@attrs.frozen(kw_only=True)
class ScopeUsage:
    """What a scope (or a sum of scopes of one kind) holds right now."""

    connections_inbound: int = 0
    connections_outbound: int = 0
    streams_inbound: int = 0
    streams_outbound: int = 0
    memory: int = 0

    @property
    def connections(self) -> int:
        return self.connections_inbound + self.connections_outbound

    @property
    def streams(self) -> int:
        return self.streams_inbound + self.streams_outbound

    def __add__(self, other: ScopeUsage) -> ScopeUsage:
        return ScopeUsage(**{f: getattr(self, f) + getattr(other, f) for f in _FIELDS})


class Account:
    """Usage counters of one scope instance, checked against its ``ScopeLimit``."""

    __slots__ = ("key", "kind", "limit", "name", "table", "usage")

    def __init__(
        self,
        kind: str,
        limit: ScopeLimit,
        *,
        name: str = "",
        table: dict[object, Account] | None = None,
        key: object = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.limit = limit
        self.usage = dict.fromkeys(_FIELDS, 0)
        self.table = table  # where the manager keeps it; it is dropped from there when empty
        self.key = key

    def refusal(self, field: str, amount: int) -> tuple[str, int] | None:
        """The (resource, limit) that adding ``amount`` to ``field`` would exceed, if any."""
        limit = self.limit
        if field == "memory":
            cap = limit.memory
            if cap is not None and self.usage["memory"] + amount > cap:
                return "memory", cap
            return None
        total_name, inbound, outbound = _TOTAL_OF[field]
        total = getattr(limit, total_name)
        used = self.usage[inbound] + self.usage[outbound]
        if total is not None and used + amount > total:
            return total_name, total
        one = getattr(limit, field)
        if one is not None and self.usage[field] + amount > one:
            return field, one
        return None

    def message(self, resource: str, limit: int) -> str:
        """A message naming the cause, e.g. ``peer at connection limit (8)``."""
        if self.kind == "ip":
            return f"too many connections from {self.name} ({limit})"
        who = {
            "protocol": f"protocol {self.name}",
            "protocol-peer": f"protocol {self.name} for this peer",
            "service": f"service {self.name}",
            "service-peer": f"service {self.name} for this peer",
            "transient": "pending-upgrade pool",
        }.get(self.kind, self.kind)
        return f"{who} at {_WHAT[resource]} limit ({limit})"

    def add(self, field: str, amount: int) -> None:
        self.usage[field] += amount

    def remove(self, field: str, amount: int) -> None:
        self.usage[field] -= amount
        if self.table is not None and not any(self.usage.values()):
            self.table.pop(self.key, None)

    def snapshot(self) -> ScopeUsage:
        return ScopeUsage(**self.usage)


class ConnectionScope:
    """The resources of one connection. Get one from ``ResourceManager.open_connection``; call
    ``done()`` exactly when the connection is gone (idempotent).

    Attributes:
        direction: ``"inbound"`` or ``"outbound"``.
        remote_addr: the remote transport address.
        peer: the authenticated remote peer once ``set_peer`` succeeded.
        active: the remote has sent enough to count as active (see ``mark_active`` and
            ``ActivityWatcher``).
    """

    def __init__(
        self,
        manager: LimitedResourceManager,
        direction: Direction,
        remote_addr: Multiaddr,
        counted: list[Account],
        on_evict: Callable[[], object] | None,
    ) -> None:
        self.direction: Direction = direction
        self.remote_addr = remote_addr
        self.peer: PeerId | None = None
        self.active = False
        self.on_evict = on_evict
        self._rm = manager
        self._field = CONNECTION_FIELD[direction]
        self._account = Account("connection", manager.limits.connection)
        self._owner = manager._transient
        self._counted = counted  # the accounts holding this connection's count
        self._streams: set[StreamScope] = set()
        self._memory = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> bool:
        """Inbound and not yet given its peer: in the pending-upgrade pool."""
        return self._rm._is_pending(self)

    def usage(self) -> ScopeUsage:
        """This connection's streams and memory (its streams' buffers included)."""
        return self._account.snapshot()

    def mark_active(self) -> None:
        """The remote sent its first byte: the pending-upgrade pool no longer evicts it first."""
        self.active = True

    def set_peer(self, peer: PeerId) -> None:
        """Attach the authenticated remote peer; the connection moves from the transient scope
        (leaving the pending-upgrade pool) to the peer's scope.

        Raises:
            ConnectionDenied: the gater denies ``peer``.
            ResourceLimitExceeded: the peer is at its connection limit (``scope="peer"``).
                The connection is left as it was; close it and call ``done()``.
            ValueError: the peer was already set, or the scope is done.
        """
        if self._closed or self.peer is not None:
            raise ValueError("set_peer on a finished scope or one whose peer is set")
        self._rm._check_peer_allowed(peer)
        account = self._rm._peer_account(peer)
        self._rm._reserve([account], self._field, 1)
        account.add(self._field, 1)
        account.add("memory", self._memory)
        self._owner.remove(self._field, 1)
        self._owner.remove("memory", self._memory)
        self._counted[self._counted.index(self._owner)] = account
        self._owner = account
        self.peer = peer
        self._rm._leave_pending(self)
        # Out of the pending pool it can no longer be evicted: drop the callback and what it
        # holds (the upgrade's cancel scope) for the rest of the connection's life.
        self.on_evict = None

    def open_stream(self, direction: Direction) -> StreamScope:
        """Reserve a new stream on this connection.

        Raises:
            ResourceLimitExceeded: the connection, its peer (or the transient scope) or the
                system is at its stream limit for ``direction``.
            ValueError: the scope is done.
        """
        if self._closed:
            raise ValueError("open_stream on a finished connection scope")
        counted = [self._account, self._owner, self._rm._system]
        field = STREAM_FIELD[direction]
        self._rm._reserve(counted, field, 1)
        for account in counted:
            account.add(field, 1)
        stream = StreamScope(self, direction, counted)
        self._streams.add(stream)
        return stream

    def reserve_memory(self, amount: int) -> None:
        """Reserve ``amount`` bytes of buffers for this connection.

        Raises:
            ResourceLimitExceeded: a memory limit (connection, peer/transient, system).
            ValueError: ``amount`` is negative, or the scope is done.
        """
        if amount < 0 or self._closed:
            raise ValueError("reserve_memory needs amount >= 0 on a live scope")
        accounts = [self._account, self._owner, self._rm._system]
        self._rm._reserve(accounts, "memory", amount)
        for account in accounts:
            account.add("memory", amount)
        self._memory += amount

    def release_memory(self, amount: int) -> None:
        """Give back ``amount`` bytes (at most what this connection itself reserved)."""
        amount = max(0, min(amount, self._memory))
        self._memory -= amount
        for account in (self._account, self._owner, self._rm._system):
            account.remove("memory", amount)

    def done(self) -> None:
        """Release the connection, its streams and its memory (idempotent)."""
        if self._closed:
            return
        for stream in list(self._streams):
            stream.done()
        self.release_memory(self._memory)
        for account in self._counted:
            account.remove(self._field, 1)
        self._closed = True
        self._rm._forget(self)


class StreamScope:
    """The resources of one stream. Get one from ``ConnectionScope.open_stream``; call
    ``done()`` when the stream is gone (idempotent)."""

    def __init__(self, conn: ConnectionScope, direction: Direction, counted: list[Account]) -> None:
        self.direction: Direction = direction
        self.connection = conn
        self.protocol: str | None = None
        self.service: str | None = None
        self._rm = conn._rm
        self._field = STREAM_FIELD[direction]
        self._account = Account("stream", self._rm.limits.stream)
        self._counted = counted  # accounts holding this stream's count and memory
        self._memory = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def set_protocol(self, protocol: str) -> None:
        """Name the stream's protocol (after negotiation); counts it in the protocol's scopes.

        Raises:
            ResourceLimitExceeded: the protocol is at its stream limit, over all peers
                (``scope="protocol"``) or for this peer (``scope="protocol-peer"``).
            ValueError: the protocol was already set, or the scope is done.
        """
        if self.protocol is not None:
            raise ValueError("the stream's protocol is already set")
        self._join(self._rm._named_accounts("protocol", protocol, self.connection.peer))
        self.protocol = protocol

    def set_service(self, service: str) -> None:
        """Name the service handling the stream; counts it in the service's scopes.

        Raises:
            ResourceLimitExceeded: the service is at its stream limit (``scope="service"`` or
                ``"service-peer"``).
            ValueError: the service was already set, or the scope is done.
        """
        if self.service is not None:
            raise ValueError("the stream's service is already set")
        self._join(self._rm._named_accounts("service", service, self.connection.peer))
        self.service = service

    def _join(self, accounts: list[Account]) -> None:
        if self._closed:
            raise ValueError("scope is done")
        self._rm._reserve(accounts, self._field, 1)
        for account in accounts:
            account.add(self._field, 1)
            account.add("memory", self._memory)
        self._counted.extend(accounts)

    def reserve_memory(self, amount: int) -> None:
        """Reserve ``amount`` bytes of buffers for this stream.

        Raises:
            ResourceLimitExceeded: a memory limit (stream, connection, peer, protocol, service,
                system).
            ValueError: ``amount`` is negative, or the scope is done.
        """
        if amount < 0 or self._closed:
            raise ValueError("reserve_memory needs amount >= 0 on a live scope")
        accounts = [self._account, *self._counted]
        self._rm._reserve(accounts, "memory", amount)
        for account in accounts:
            account.add("memory", amount)
        self._memory += amount

    def release_memory(self, amount: int) -> None:
        """Give back ``amount`` bytes (at most what this stream reserved)."""
        amount = max(0, min(amount, self._memory))
        self._memory -= amount
        for account in (self._account, *self._counted):
            account.remove("memory", amount)

    def done(self) -> None:
        """Release the stream and its memory (idempotent)."""
        if self._closed:
            return
        self.release_memory(self._memory)
        for account in self._counted:
            account.remove(self._field, 1)
        self._closed = True
        self.connection._streams.discard(self)
