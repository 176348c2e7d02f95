"""The connection upgrade path, written once: raw connection → multistream-select → security
channel → multistream-select (skipped when the security handshake agreed a muxer) → muxer.

Spec: https://github.com/libp2p/specs/blob/master/connections/README.md#upgrading-connections
and https://github.com/libp2p/specs/blob/master/connections/inlined-muxer-negotiation.md
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeGuard

import anyio

from p2pstack.errors import (
    NETWORK_ERRORS,
    NegotiationError,
    P2PError,
    P2PTimeoutError,
    PeerIdMismatch,
    SecurityError,
    UpgradeError,
)
from p2pstack.interfaces import (
    ConnectionInfo,
    Direction,
    MemoryBudget,
    MemoryBudgetedMuxer,
    Muxer,
    RawConnection,
    Role,
    SecureConnection,
    SecurityChannel,
    UpgradedConnection,
)
from p2pstack.multistream import negotiate_inbound, negotiate_outbound
from p2pstack.streams import PrefixedConnection

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.identity import Identity, PeerId, PublicKey

__all__ = [
    "DefaultUpgrader",
    "UpgradedConnection",
    "Upgrader",
    "takes_memory_budget",
    "transport_name",
]

log = logging.getLogger("p2pstack.upgrader")


class _PrefixedSecure(PrefixedConnection):
    """A secured connection that first replays bytes read ahead by muxer negotiation."""

    def __init__(self, inner: SecureConnection, prefix: bytes) -> None:
        super().__init__(inner, prefix)
        self._secure = inner

    @property
    def local_peer(self) -> PeerId:
        return self._secure.local_peer

    @property
    def remote_peer(self) -> PeerId:
        return self._secure.remote_peer

    @property
    def remote_public_key(self) -> PublicKey:
        return self._secure.remote_public_key

    @property
    def security_protocol(self) -> str:
        return self._secure.security_protocol

    @property
    def early_muxer(self) -> str | None:
        return self._secure.early_muxer


class _Stages:
    """One cancel scope whose deadline moves as the upgrade passes its stages, so that a
    silent connection is dropped after ``first_byte`` seconds while an honest slow one gets
    up to ``total``."""

    def __init__(self, first_byte: float, security: float, total: float) -> None:
        self._start = anyio.current_time()
        self._limits = {"first byte": first_byte, "security": security, "muxer": total}
        self._total = total
        self.stage = "first byte"
        self.scope = anyio.CancelScope(deadline=self._deadline(first_byte, security, total))

    def _deadline(self, *limits: float) -> float:
        limit = min(limits)
        return self._start + limit if math.isfinite(limit) else math.inf

    @property
    def limit(self) -> float:
        """Seconds allowed to the current stage (from the start of the upgrade)."""
        if self.stage == "first byte":
            return min(self._limits.values())
        if self.stage == "security":
            return min(self._limits["security"], self._total)
        return self._total

    def first_byte(self) -> None:
        if self.stage == "first byte":
            self.stage = "security"
            self.scope.deadline = self._deadline(self._limits["security"], self._total)

    def secured(self) -> None:
        self.stage = "muxer"
        self.scope.deadline = self._deadline(self._total)


class _FirstByteWatch(PrefixedConnection):
    """A raw connection that reports its first received byte (the remote's multistream
    header or answer). Used for the security negotiation only, where that byte arrives."""

    def __init__(self, inner: RawConnection, on_first: Callable[[], None]) -> None:
        super().__init__(inner, b"")
        self._on_first: Callable[[], None] | None = on_first

    async def receive(self, max_bytes: int = 65536) -> bytes:
        data = await super().receive(max_bytes)
        if self._on_first is not None:
            self._on_first()
            self._on_first = None
        return data


class DefaultUpgrader:
    """Upgrades raw connections, with the security channels and muxers in preference order.

    The upgrade has staged deadlines, each counted from its start: the remote's first byte
    within ``first_byte_timeout``, the security handshake done within ``security_timeout``,
    the muxer agreed within ``timeout``. A connection that stays silent is dropped fast; a
    slow honest one still completes.

    A ``memory`` budget given to an upgrade (the host passes the connection's resource scope)
    goes to the muxer if it accepts one (``MemoryBudgetedMuxer``: its ``new_connection`` has a
    ``memory`` parameter); other muxers are called as before.

    Args:
        identity: our key pair.
        security: security channels, most preferred first.
        muxers: stream muxers, most preferred first.
        timeout: seconds the whole upgrade may take (``math.inf``: no limit).
        first_byte_timeout: seconds until the remote's first byte.
        security_timeout: seconds until the security handshake is done.
    """

    def __init__(
        self,
        identity: Identity,
        security: Sequence[SecurityChannel],
        muxers: Sequence[Muxer],
        *,
        timeout: float = 15.0,
        first_byte_timeout: float = 3.0,
        security_timeout: float = 10.0,
    ) -> None:
        if not security:
            raise ValueError("at least one security channel is required")
        if not muxers:
            raise ValueError("at least one stream muxer is required")
        self._identity = identity
        self._security = {s.protocol_id: s for s in security}
        self._muxers = {m.protocol_id: m for m in muxers}
        self._budgeted: dict[str, MemoryBudgetedMuxer] = {
            m.protocol_id: m for m in muxers if takes_memory_budget(m)
        }
        self.security_ids = [s.protocol_id for s in security]
        self.muxer_ids = [m.protocol_id for m in muxers]
        self.timeout = timeout
        self.first_byte_timeout = first_byte_timeout
        self.security_timeout = security_timeout

    async def upgrade_outbound(
        self,
        raw: RawConnection,
        *,
        remote_peer: PeerId | None,
        role: Role = "initiator",
        memory: MemoryBudget | None = None,
    ) -> UpgradedConnection:
        """Upgrade a connection we dialed.

        Args:
            raw: the dialed connection.
            remote_peer: the peer expected at the other end (``None``: anyone).
            role: ``"responder"`` runs negotiations and handshake as the responding side
                (simultaneous open); the connection stays outbound.
            memory: where the muxer reserves its receive buffers (the connection's scope).

        Returns:
            The connection's description and its muxed connection (not yet running).

        Raises:
            NegotiationError: no common security channel or muxer.
            SecurityError: the handshake failed, or ``PeerIdMismatch``.
            P2PTimeoutError: a stage ran past its deadline (the message names it).
            UpgradeError: the connection broke during the upgrade; when the remote closed it,
                the message says so (a peer at its connection limit does that).
        In every case the raw connection is closed.
        """
        return await self._guarded(raw, "outbound", role, remote_peer, memory)

    async def upgrade_inbound(
        self, raw: RawConnection, *, role: Role = "responder", memory: MemoryBudget | None = None
    ) -> UpgradedConnection:
        """Upgrade a connection we accepted. Arguments, returns and raises as
        ``upgrade_outbound``."""
        return await self._guarded(raw, "inbound", role, None, memory)

    async def _guarded(
        self,
        raw: RawConnection,
        direction: Direction,
        role: Role,
        remote_peer: PeerId | None,
        memory: MemoryBudget | None,
    ) -> UpgradedConnection:
        stages = _Stages(self.first_byte_timeout, self.security_timeout, self.timeout)
        try:
            with stages.scope:
                secure, muxer_id = await self._steps(raw, role, remote_peer, stages)
            if stages.scope.cancelled_caught:
                raise TimeoutError
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await raw.aclose()
            error = _upgrade_error(exc, raw, direction, stages)
            if error is exc:
                raise
            raise error from exc
        initiator = role == "initiator"
        budgeted = self._budgeted.get(muxer_id)
        if memory is not None and budgeted is not None:
            muxed = budgeted.new_connection(secure, is_initiator=initiator, memory=memory)
        else:
            muxed = self._muxers[muxer_id].new_connection(secure, is_initiator=initiator)
        info = ConnectionInfo(
            remote_peer=secure.remote_peer,
            remote_public_key=secure.remote_public_key,
            local_addr=raw.local_multiaddr,
            remote_addr=raw.remote_multiaddr,
            security=secure.security_protocol,
            muxer=muxer_id,
            direction=direction,
            transport=transport_name(raw.remote_multiaddr),
        )
        return UpgradedConnection(info=info, muxed=muxed)

    def _steps(
        self, raw: RawConnection, role: Role, remote_peer: PeerId | None, stages: _Stages
    ) -> Awaitable[tuple[SecureConnection, str]]:
        if role == "initiator":
            return self._initiate(raw, remote_peer, stages)
        return self._respond(raw, remote_peer, stages)

    async def _initiate(
        self, raw: RawConnection, remote_peer: PeerId | None, stages: _Stages
    ) -> tuple[SecureConnection, str]:
        watched = _FirstByteWatch(raw, stages.first_byte)
        proto, leftover = await negotiate_outbound(watched, self.security_ids, timeout=math.inf)
        stages.first_byte()
        conn: RawConnection = PrefixedConnection(raw, leftover) if leftover else raw
        secure = await self._security[proto].secure_outbound(
            conn, self._identity, remote_peer=remote_peer, muxers=self.muxer_ids
        )
        _check_peer(secure, remote_peer)
        stages.secured()
        early = secure.early_muxer
        if early is not None and early in self._muxers:
            return secure, early
        muxer_id, leftover = await negotiate_outbound(secure, self.muxer_ids, timeout=math.inf)
        return (_PrefixedSecure(secure, leftover) if leftover else secure), muxer_id

    async def _respond(
        self, raw: RawConnection, remote_peer: PeerId | None, stages: _Stages
    ) -> tuple[SecureConnection, str]:
        watched = _FirstByteWatch(raw, stages.first_byte)
        proto, leftover = await negotiate_inbound(watched, self._security, timeout=math.inf)
        stages.first_byte()
        conn: RawConnection = PrefixedConnection(raw, leftover) if leftover else raw
        secure = await self._security[proto].secure_inbound(
            conn, self._identity, muxers=self.muxer_ids
        )
        _check_peer(secure, remote_peer)
        stages.secured()
        early = secure.early_muxer
        if early is not None and early in self._muxers:
            return secure, early
        muxer_id, leftover = await negotiate_inbound(secure, self._muxers, timeout=math.inf)
        return (_PrefixedSecure(secure, leftover) if leftover else secure), muxer_id


#: Deprecated name of ``DefaultUpgrader`` (``p2pstack.interfaces.Upgrader`` is the interface).
Upgrader = DefaultUpgrader


def takes_memory_budget(muxer: Muxer) -> TypeGuard[MemoryBudgetedMuxer]:
    """Whether ``muxer.new_connection`` accepts ``memory=`` (a ``MemoryBudgetedMuxer``); muxers
    written before that parameter existed keep working without it."""
    try:
        params = inspect.signature(muxer.new_connection).parameters
    except (TypeError, ValueError):  # no signature to inspect (a C callable)
        return False
    return "memory" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _check_peer(secure: SecureConnection, remote_peer: PeerId | None) -> None:
    # A channel must check this itself; this guards third-party channels that forget, and the
    # responder role of a simultaneous open, where the channel is not told whom to expect.
    if remote_peer is not None and secure.remote_peer != remote_peer:
        raise PeerIdMismatch(str(remote_peer), str(secure.remote_peer))


def _upgrade_error(
    exc: BaseException, raw: RawConnection, direction: Direction, stages: _Stages
) -> BaseException:
    """The typed error an upgrade failure surfaces as."""
    if isinstance(exc, TimeoutError) and not isinstance(exc, P2PError):
        return P2PTimeoutError(
            f"{direction} upgrade of {_addr(raw)} timed out waiting for the {stages.stage} "
            f"stage ({stages.limit:g} s)"
        )
    if direction == "outbound" and _remote_hung_up(exc):
        return UpgradeError(
            f"{_addr(raw)} closed the connection during our upgrade ({stages.stage} stage): "
            "the peer may be at its connection limit"
        )
    if isinstance(exc, NETWORK_ERRORS) and not isinstance(exc, P2PError):
        return UpgradeError(
            f"connection {_addr(raw)} closed during {direction} upgrade: {type(exc).__name__}"
        )
    if isinstance(exc, SecurityError | NegotiationError | UpgradeError | P2PTimeoutError):
        return exc
    if not isinstance(exc, P2PError):
        return exc
    return UpgradeError(f"{direction} upgrade of {_addr(raw)} failed: {exc}")


def _remote_hung_up(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the remote closing the connection. multistream-select
    reports the end of stream as a ``NegotiationError`` (with it as context). A security
    channel's ``HandshakeError`` keeps its type (its cause says what happened)."""
    hung_up = (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError)
    if isinstance(exc, hung_up):
        return True
    if isinstance(exc, NegotiationError):
        return isinstance(exc.__cause__, hung_up) or isinstance(exc.__context__, hung_up)
    return False


def transport_name(addr: Multiaddr) -> str:
    """A short transport name from an address: its last protocol (``tcp``, ``memory``, ``ws``),
    ignoring a trailing ``/p2p/``."""
    names = [proto.name for proto in addr.protocols() if proto.name != "p2p"]
    return names[-1] if names else ""


def _addr(raw: RawConnection) -> Multiaddr | str:
    try:
        return raw.remote_multiaddr
    except Exception:  # a broken third-party connection must not mask the real error
        return "<unknown address>"
