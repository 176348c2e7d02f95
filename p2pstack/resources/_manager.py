"""The resource manager: the one limit system for connections, streams and memory, with the
pending-upgrade pool that evicts silent connections first.

Concepts follow go-libp2p's resource manager (a DAG of scopes: system, transient, peer,
protocol, service, connection, stream):
https://github.com/libp2p/go-libp2p/blob/master/p2p/host/resource-manager/README.md
"""

from __future__ import annotations

import types
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

import attrs

from p2pstack.errors import ConnectionDenied, ResourceLimitExceeded
from p2pstack.resources._gater import BasicConnectionGater, ConnectionGater, ip_of, subnet_of
from p2pstack.resources._limits import Limits, ScopeLimit
from p2pstack.resources._scopes import (
    CONNECTION_FIELD,
    Account,
    ConnectionScope,
    Direction,
    ScopeUsage,
)

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.identity import PeerId

__all__ = [
    "LimitedResourceManager",
    "NullResourceManager",
    "ResourceManager",
    "ResourceStatistics",
]

#: Scope kinds reported in ``ResourceStatistics.usage``.
SCOPE_KINDS = ("system", "transient", "peer", "protocol", "service", "connection", "stream")


@attrs.frozen(kw_only=True)
class ResourceStatistics:
    """A snapshot of the resource manager.

    Attributes:
        usage: current usage summed per scope kind (``"system"``, ``"transient"``, ``"peer"``,
            ``"protocol"``, ``"service"``, ``"connection"``, ``"stream"``).
        protocols: current usage per protocol.
        services: current usage per service.
        peers: peers holding at least one connection or stream.
        pending: inbound connections in the pending-upgrade pool.
        refusals: refusals per cause, keyed ``"<scope>/<resource>"`` (``"peer/connections"``,
            ``"ip/connections"``, ``"gater/address"``, ...).
        evictions: silent pending connections evicted to admit a newcomer.
        limits: the limits in force (with the file-descriptor cap applied).
    """

    usage: Mapping[str, ScopeUsage]
    protocols: Mapping[str, ScopeUsage]
    services: Mapping[str, ScopeUsage]
    peers: int
    pending: int
    refusals: Mapping[str, int]
    evictions: int
    limits: Limits


class ResourceManager(Protocol):
    """Accounts for every connection, stream and buffer of a host, and refuses what is over a
    limit. Every call is synchronous and never blocks; refusals raise
    ``ResourceLimitExceeded`` (or its subclass ``ConnectionDenied``)."""

    def open_connection(
        self,
        direction: Direction,
        remote_addr: Multiaddr,
        *,
        on_evict: Callable[[], object] | None = None,
    ) -> ConnectionScope:
        """Reserve a connection before dialing (outbound) or right after accepting (inbound).

        Args:
            direction: ``"inbound"`` or ``"outbound"``.
            remote_addr: the remote transport address.
            on_evict: for inbound connections, called (synchronously, must not raise) if the
                connection is evicted from the pending-upgrade pool to admit a newer one; it
                should close the connection. Its scope is already released when it is called.

        Returns:
            The connection's scope; call ``done()`` on it when the connection is gone.

        Raises:
            ConnectionDenied: the gater denies ``remote_addr``.
            ResourceLimitExceeded: a system, transient (pending-upgrade pool full and no
                silent connection to evict) or per-IP limit.
        """
        ...

    @property
    def limits(self) -> Limits:
        """The limits in force."""
        ...

    def set_protocol_limits(
        self, protocol: str, *, total: ScopeLimit | None = None, per_peer: ScopeLimit | None = None
    ) -> None:
        """Override the limits of ``protocol`` over all peers (``total``) and for each peer
        (``per_peer``); ``None`` drops that override (the ``Limits.protocol`` and
        ``Limits.protocol_peer`` defaults apply). Live scopes follow the new limits."""
        ...

    def statistics(self) -> ResourceStatistics:
        """A snapshot of usage, refusals and evictions."""
        ...


class LimitedResourceManager:
    """The default resource manager.

    Args:
        limits: the limits (``Limits()`` if omitted); ``system.connections`` is capped by the
            process's file-descriptor budget unless ``limits.fd_fraction`` is ``None``.
        gater: allow and deny lists (an empty ``BasicConnectionGater`` if omitted).
    """

    def __init__(
        self, limits: Limits | None = None, *, gater: ConnectionGater | None = None
    ) -> None:
        self._limits = (limits or Limits()).effective()
        self.gater: ConnectionGater = gater if gater is not None else BasicConnectionGater()
        self._system = Account("system", self.limits.system)
        self._transient = Account("transient", self.limits.transient)
        self._tables: dict[str, dict[object, Account]] = {
            kind: {}
            for kind in ("peer", "ip", "protocol", "protocol-peer", "service", "service-peer")
        }
        self._live: dict[ConnectionScope, None] = {}
        self._pending: dict[ConnectionScope, None] = {}  # inbound, oldest first
        self._refusals: Counter[str] = Counter()
        self._evictions = 0

    # -- ResourceManager ------------------------------------------------------------------

    def open_connection(
        self,
        direction: Direction,
        remote_addr: Multiaddr,
        *,
        on_evict: Callable[[], object] | None = None,
    ) -> ConnectionScope:
        if direction not in ("inbound", "outbound"):
            raise ValueError(f"direction must be 'inbound' or 'outbound', not {direction!r}")
        reason = self.gater.address_denied(remote_addr)
        if reason is not None:
            self._refuse(ConnectionDenied(reason, resource="address"))
        field = CONNECTION_FIELD[direction]
        subnets = self._subnet_accounts(remote_addr) if direction == "inbound" else []
        try:
            self._reserve([self._system, *subnets], field, 1)
            if direction == "inbound":
                self._make_room(field)
            self._reserve([self._transient], field, 1)
        except ResourceLimitExceeded:
            for account in subnets:
                account.remove(field, 0)  # drop the ones created for this attempt
            raise
        counted = [self._system, self._transient, *subnets]
        for account in counted:
            account.add(field, 1)
        scope = ConnectionScope(self, direction, remote_addr, counted, on_evict)
        self._live[scope] = None
        if direction == "inbound":
            self._pending[scope] = None
        return scope

    def set_protocol_limits(
        self, protocol: str, *, total: ScopeLimit | None = None, per_peer: ScopeLimit | None = None
    ) -> None:
        totals = {k: v for k, v in self._limits.protocols.items() if k != protocol}
        per_peers = {k: v for k, v in self._limits.protocol_peers.items() if k != protocol}
        if total is not None:
            totals[protocol] = total
        if per_peer is not None:
            per_peers[protocol] = per_peer
        self.update_limits(attrs.evolve(self._limits, protocols=totals, protocol_peers=per_peers))

    @property
    def limits(self) -> Limits:
        """The limits in force (``system.connections`` capped by the descriptor budget)."""
        return self._limits

    def update_limits(self, limits: Limits) -> None:
        """Replace the limits; live scopes are checked against the new ones from now on (what
        they already hold is kept even if over the new limits)."""
        self._limits = limits.effective()
        self._system.limit = self.limits.system
        self._transient.limit = self.limits.transient
        for kind, table in self._tables.items():
            for account in table.values():
                account.limit = self._limit_of(kind, account.key)
        for conn in self._live:
            conn._account.limit = self.limits.connection
            for stream in conn._streams:
                stream._account.limit = self.limits.stream

    def statistics(self) -> ResourceStatistics:
        usage = dict.fromkeys(SCOPE_KINDS, ScopeUsage())
        usage["system"] = self._system.snapshot()
        usage["transient"] = self._transient.snapshot()
        for kind in ("peer", "protocol", "service"):
            for account in list(self._tables[kind].values()):
                usage[kind] += account.snapshot()
        for conn in list(self._live):
            usage["connection"] += conn._account.snapshot() + ScopeUsage(**{conn._field: 1})
            for stream in list(conn._streams):
                usage["stream"] += stream._account.snapshot() + ScopeUsage(**{stream._field: 1})

        def by_name(kind: str) -> Mapping[str, ScopeUsage]:
            table = list(self._tables[kind].values())
            return types.MappingProxyType({a.name: a.snapshot() for a in table})

        return ResourceStatistics(
            usage=types.MappingProxyType(usage),
            protocols=by_name("protocol"),
            services=by_name("service"),
            peers=len(self._tables["peer"]),
            pending=len(self._pending),
            refusals=types.MappingProxyType(dict(self._refusals)),
            evictions=self._evictions,
            limits=self.limits,
        )

    # -- accounts -------------------------------------------------------------------------

    def _limit_of(self, kind: str, key: object) -> ScopeLimit:
        limits = self.limits
        if kind == "peer":
            return limits.peer
        if kind == "ip":
            assert isinstance(key, tuple)
            return ScopeLimit(connections=key[0])
        name = key[0] if isinstance(key, tuple) else key
        assert isinstance(name, str)
        return {
            "protocol": limits.protocol_limit,
            "protocol-peer": limits.protocol_peer_limit,
            "service": limits.service_limit,
            "service-peer": limits.service_peer_limit,
        }[kind](name)

    def _account(self, kind: str, key: object, name: str) -> Account:
        table = self._tables[kind]
        account = table.get(key)
        if account is None:
            limit = self._limit_of(kind, key)
            account = table[key] = Account(kind, limit, name=name, table=table, key=key)
        return account

    def _peer_account(self, peer: PeerId) -> Account:
        return self._account("peer", peer, str(peer))

    def _named_accounts(self, kind: str, name: str, peer: PeerId | None) -> list[Account]:
        accounts = [self._account(kind, name, name)]
        if peer is not None:
            accounts.append(self._account(f"{kind}-peer", (name, peer), name))
        return accounts

    def _subnet_accounts(self, addr: Multiaddr) -> list[Account]:
        ip = ip_of(addr)
        if ip is None or (self.limits.exempt_loopback and ip.is_loopback):
            return []
        if self.gater.allowlisted(addr):
            return []
        accounts = []
        for rule in self.limits.subnets:
            if rule.version == ip.version:
                net = subnet_of(ip, rule.prefix)
                accounts.append(self._account("ip", (rule.connections, net), str(net)))
        return accounts

    def _reserve(self, accounts: list[Account], field: str, amount: int) -> None:
        """Check that ``amount`` more of ``field`` fits every account (adds nothing).

        Raises:
            ResourceLimitExceeded: the first account it does not fit.
        """
        for account in accounts:
            refused = account.refusal(field, amount)
            if refused is not None:
                for other in accounts:  # drop accounts created for this check only
                    other.remove(field, 0)
                resource, limit = refused
                self._refuse(
                    ResourceLimitExceeded(
                        account.message(resource, limit),
                        scope=account.kind,
                        resource=resource,
                        limit=limit,
                    )
                )

    def _refuse(self, error: ResourceLimitExceeded) -> None:
        self._refusals[f"{error.scope}/{error.resource}"] += 1
        raise error

    def _check_peer_allowed(self, peer: PeerId) -> None:
        reason = self.gater.peer_denied(peer)
        if reason is not None:
            self._refuse(ConnectionDenied(reason, resource="peer"))

    # -- the pending-upgrade pool ---------------------------------------------------------

    def _make_room(self, field: str) -> None:
        """Evict the oldest silent pending connections while the pool refuses a newcomer."""
        while self._transient.refusal(field, 1) is not None:
            victim = next(
                (c for c in self._pending if not c.active and c.on_evict is not None), None
            )
            if victim is None:
                return  # every pending connection has sent something: the newcomer is refused
            self._evictions += 1
            victim.done()
            assert victim.on_evict is not None
            victim.on_evict()

    def _is_pending(self, conn: ConnectionScope) -> bool:
        return conn in self._pending

    def _leave_pending(self, conn: ConnectionScope) -> None:
        self._pending.pop(conn, None)

    def _forget(self, conn: ConnectionScope) -> None:
        self._pending.pop(conn, None)
        self._live.pop(conn, None)


class NullResourceManager(LimitedResourceManager):
    """A resource manager that refuses nothing (usage is still counted in ``statistics()``)."""

    def __init__(self) -> None:
        super().__init__(Limits.unlimited(), gater=_OpenGate())


class _OpenGate:
    def address_denied(self, addr: Multiaddr) -> str | None:
        return None

    def peer_denied(self, peer: PeerId) -> str | None:
        return None

    def allowlisted(self, addr: Multiaddr) -> bool:
        return True
