"""The ``/tls/1.0.0`` security channel: runs a ``TlsSession`` handshake over a raw connection
(https://github.com/libp2p/specs/blob/master/tls/tls.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import anyio
from OpenSSL import SSL

from p2pstack.errors import HandshakeError, SecurityError
from p2pstack.identity import DEFAULT_CERTIFICATE_LIFETIME, make_certificate
from p2pstack.interfaces import RawConnection
from transports.tls._connection import PROTOCOL_ID, READ_SIZE, TlsSecureConnection
from transports.tls._tls import TlsSession, make_context

if TYPE_CHECKING:
    from p2pstack.identity import Identity, PeerId

__all__ = ["Tls"]

# What a raw connection raises when the peer or the network went away mid-handshake.
_IO_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)

#: Identities whose contexts are kept (a host has one; tests may use a few).
_MAX_CACHED_IDENTITIES = 8


class Tls:
    """The ``/tls/1.0.0`` security channel (a ``SecurityChannel``).

    One certificate (a fresh ECDSA P-256 key bound to the host key) serves every connection of
    an identity until half its lifetime has passed; then a new one is made. The muxer ids passed
    by the upgrader are offered in ALPN before ``libp2p``, so a peer that supports one of them
    skips the multistream-select round for the muxer (``early_muxer``).

    Args:
        certificate_lifetime: validity of the certificates made, in seconds.
        clock: the wall clock (Unix seconds) for certificate validity; ``time.time`` by default.
    """

    def __init__(
        self,
        *,
        certificate_lifetime: float = DEFAULT_CERTIFICATE_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if certificate_lifetime <= 0:
            raise ValueError("certificate_lifetime must be positive")
        self._lifetime = certificate_lifetime
        self._clock = clock
        # peer ID -> (renew after, client context, server context)
        self._contexts: dict[PeerId, tuple[float, SSL.Context, SSL.Context]] = {}

    @property
    def protocol_id(self) -> str:
        return PROTOCOL_ID

    def _context(self, identity: Identity, *, server: bool, now: float) -> SSL.Context:
        entry = self._contexts.get(identity.peer_id)
        if entry is None or now >= entry[0]:
            certified = make_certificate(identity.private_key, lifetime=self._lifetime, now=now)
            if len(self._contexts) >= _MAX_CACHED_IDENTITIES:
                self._contexts.clear()
            entry = (
                now + self._lifetime / 2,
                make_context(certified, server=False),
                make_context(certified, server=True),
            )
            self._contexts[identity.peer_id] = entry
        return entry[2] if server else entry[1]

    async def secure_outbound(
        self,
        conn: RawConnection,
        identity: Identity,
        *,
        remote_peer: PeerId | None,
        muxers: Sequence[str] = (),
    ) -> TlsSecureConnection:
        """Run the handshake as client.

        Args:
            conn: the raw connection, after multistream-select chose ``/tls/1.0.0``.
            identity: our identity.
            remote_peer: the peer we dialed, or ``None`` to accept whoever answers.
            muxers: our muxer preference list, offered in ALPN before ``libp2p``.

        Returns:
            The encrypted connection.

        Raises:
            CertificateError: the server's certificate was rejected; ``conn`` is closed.
            PeerIdMismatch: the server proved another peer ID; ``conn`` is closed.
            HandshakeError: the handshake failed otherwise; ``conn`` is closed.
        """
        now = self._clock()
        context = self._context(identity, server=False, now=now)
        session = TlsSession(context, client=True, muxers=muxers, remote_peer=remote_peer, now=now)
        return await _run_handshake(conn, session, identity)

    async def secure_inbound(
        self, conn: RawConnection, identity: Identity, *, muxers: Sequence[str] = ()
    ) -> TlsSecureConnection:
        """Run the handshake as server; the client must present a valid certificate.

        Args:
            conn: the raw connection, after multistream-select chose ``/tls/1.0.0``.
            identity: our identity.
            muxers: the muxers we support; the client's first one among them is selected.

        Returns:
            The encrypted connection.

        Raises:
            CertificateError: the client's certificate was rejected; ``conn`` is closed.
            HandshakeError: the handshake failed otherwise (no client certificate, no common
                ALPN protocol, not TLS 1.3); ``conn`` is closed.
        """
        now = self._clock()
        context = self._context(identity, server=True, now=now)
        session = TlsSession(context, client=False, muxers=muxers, now=now)
        return await _run_handshake(conn, session, identity)


async def _run_handshake(
    conn: RawConnection, session: TlsSession, identity: Identity
) -> TlsSecureConnection:
    try:
        while True:
            try:
                done = session.step()
            finally:
                # The handshake flight, or the alert that tells the peer why we give up.
                wire = session.data_to_send()
                if wire:
                    await _send_best_effort(conn, wire, session)
            if done:
                return TlsSecureConnection(conn, session, local_peer=identity.peer_id)
            session.receive_data(await conn.receive(READ_SIZE))
    except SecurityError:
        await _close_quietly(conn)
        raise
    except _IO_ERRORS as exc:
        await _close_quietly(conn)
        raise HandshakeError(f"TLS handshake failed: {exc!r}") from exc
    except BaseException:
        # Cancelled (the upgrader's deadline) or a bug: still release the connection.
        with anyio.CancelScope(shield=True):
            await _close_quietly(conn)
        raise


async def _send_best_effort(conn: RawConnection, wire: bytes, session: TlsSession) -> None:
    # While the handshake goes on a failed send is an error; a fatal alert on the way out of a
    # failed handshake is a courtesy, and the handshake's own error is the one to report.
    try:
        await conn.send(wire)
    except _IO_ERRORS:
        if session.failed:
            return
        raise


async def _close_quietly(conn: RawConnection) -> None:
    try:
        await conn.aclose()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
