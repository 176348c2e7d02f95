"""The connection upgrade path, written once: raw connection → multistream-select → security
channel → multistream-select (skipped when the security handshake agreed a muxer) → muxer.

Spec: https://github.com/libp2p/specs/blob/master/connections/README.md#upgrading-connections
and https://github.com/libp2p/specs/blob/master/connections/inlined-muxer-negotiation.md
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Literal

import anyio
import attrs

from p2pstack.errors import (
    NegotiationError,
    P2PError,
    P2PTimeoutError,
    PeerIdMismatch,
    SecurityError,
    UpgradeError,
)
from p2pstack.interfaces import (
    MuxedConnection,
    Muxer,
    RawConnection,
    SecureConnection,
    SecurityChannel,
)
from p2pstack.multistream import negotiate_inbound, negotiate_outbound
from p2pstack.streams import PrefixedConnection

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.identity import Identity, PeerId, PublicKey

__all__ = ["UpgradedConnection", "Upgrader"]

log = logging.getLogger("p2pstack.upgrader")

Direction = Literal["inbound", "outbound"]

#: Errors an upgrade can fail with that come from the network rather than from a bug.
_NETWORK_ERRORS = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)


@attrs.frozen(kw_only=True)
class UpgradedConnection:
    """The result of an upgrade: the secured connection and the muxed connection over it."""

    secure: SecureConnection
    muxed: MuxedConnection
    muxer_protocol: str
    direction: Direction


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


class Upgrader:
    """Upgrades raw connections, with the security channels and muxers in preference order.

    Args:
        identity: our key pair.
        security: security channels, most preferred first.
        muxers: stream muxers, most preferred first.
        timeout: seconds the whole upgrade may take (negotiations and handshake).
    """

    def __init__(
        self,
        identity: Identity,
        security: Sequence[SecurityChannel],
        muxers: Sequence[Muxer],
        *,
        timeout: float = 15.0,
    ) -> None:
        if not security:
            raise ValueError("at least one security channel is required")
        if not muxers:
            raise ValueError("at least one stream muxer is required")
        self._identity = identity
        self._security = {s.protocol_id: s for s in security}
        self._muxers = {m.protocol_id: m for m in muxers}
        self.security_ids = [s.protocol_id for s in security]
        self.muxer_ids = [m.protocol_id for m in muxers]
        self.timeout = timeout

    async def upgrade_outbound(
        self, raw: RawConnection, *, remote_peer: PeerId | None
    ) -> UpgradedConnection:
        """Upgrade a connection we dialed.

        Raises:
            NegotiationError: no common security channel or muxer.
            SecurityError: the handshake failed, or ``PeerIdMismatch``.
            P2PTimeoutError: the upgrade took longer than ``timeout``.
            UpgradeError: the connection broke during the upgrade.
        In every case the raw connection is closed.
        """
        return await self._guarded(raw, self._outbound(raw, remote_peer), "outbound")

    async def upgrade_inbound(self, raw: RawConnection) -> UpgradedConnection:
        """Upgrade a connection we accepted. Raises as ``upgrade_outbound`` does."""
        return await self._guarded(raw, self._inbound(raw), "inbound")

    async def _guarded(
        self,
        raw: RawConnection,
        steps: Awaitable[tuple[SecureConnection, str]],
        direction: Direction,
    ) -> UpgradedConnection:
        try:
            with anyio.fail_after(self.timeout if math.isfinite(self.timeout) else None):
                secure, muxer_id = await steps
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await raw.aclose()
            if isinstance(exc, TimeoutError) and not isinstance(exc, P2PError):
                raise P2PTimeoutError(
                    f"{direction} upgrade from {_addr(raw)} timed out after {self.timeout:g} s"
                ) from None
            if isinstance(exc, _NETWORK_ERRORS):
                raise UpgradeError(
                    f"connection {_addr(raw)} closed during {direction} upgrade: "
                    f"{type(exc).__name__}"
                ) from exc
            if isinstance(exc, SecurityError | NegotiationError) or not isinstance(exc, P2PError):
                raise
            raise UpgradeError(f"{direction} upgrade of {_addr(raw)} failed: {exc}") from exc
        muxed = self._muxers[muxer_id].new_connection(secure, is_initiator=direction == "outbound")
        return UpgradedConnection(
            secure=secure, muxed=muxed, muxer_protocol=muxer_id, direction=direction
        )

    async def _outbound(
        self, raw: RawConnection, remote_peer: PeerId | None
    ) -> tuple[SecureConnection, str]:
        proto, leftover = await negotiate_outbound(raw, self.security_ids, timeout=math.inf)
        conn: RawConnection = PrefixedConnection(raw, leftover) if leftover else raw
        secure = await self._security[proto].secure_outbound(
            conn, self._identity, remote_peer=remote_peer, muxers=self.muxer_ids
        )
        if remote_peer is not None and secure.remote_peer != remote_peer:
            # A channel must check this itself; this guards third-party channels that forget.
            raise PeerIdMismatch(str(remote_peer), str(secure.remote_peer))
        early = secure.early_muxer
        if early is not None and early in self._muxers:
            return secure, early
        muxer_id, leftover = await negotiate_outbound(secure, self.muxer_ids, timeout=math.inf)
        return (_PrefixedSecure(secure, leftover) if leftover else secure), muxer_id

    async def _inbound(self, raw: RawConnection) -> tuple[SecureConnection, str]:
        proto, leftover = await negotiate_inbound(raw, self._security, timeout=math.inf)
        conn: RawConnection = PrefixedConnection(raw, leftover) if leftover else raw
        secure = await self._security[proto].secure_inbound(
            conn, self._identity, muxers=self.muxer_ids
        )
        early = secure.early_muxer
        if early is not None and early in self._muxers:
            return secure, early
        muxer_id, leftover = await negotiate_inbound(secure, self._muxers, timeout=math.inf)
        return (_PrefixedSecure(secure, leftover) if leftover else secure), muxer_id


def _addr(raw: RawConnection) -> Multiaddr | str:
    try:
        return raw.remote_multiaddr
    except Exception:  # a broken third-party connection must not mask the real error
        return "<unknown address>"
