"""The ``/plaintext/2.0.0`` security channel: exchanges peer IDs and public keys, encrypts
nothing. For tests and trusted links only.

Spec: https://github.com/libp2p/specs/blob/master/plaintext/README.md
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio

from p2pstack.errors import (
    HandshakeError,
    IdentityError,
    PeerIdMismatch,
    RemoteProtocolError,
    SecurityError,
)
from p2pstack.identity import PeerId, PublicKey
from p2pstack.interfaces import Buffer, RawConnection
from transports.plaintext._exchange import Exchange, ExchangeReader, encode_exchange

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.identity import Identity

__all__ = ["PROTOCOL_ID", "Plaintext", "PlaintextSecureConnection"]

PROTOCOL_ID = "/plaintext/2.0.0"

#: Bytes asked of the raw connection per read while waiting for the ``Exchange``.
_HANDSHAKE_READ = 4096

_IO_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class PlaintextSecureConnection:
    """A raw connection labelled with the identities exchanged (a ``SecureConnection``).

    Bytes the peer sent right behind its ``Exchange`` are returned first by ``receive``.
    """

    def __init__(
        self,
        raw: RawConnection,
        *,
        local_peer: PeerId,
        remote_peer: PeerId,
        remote_public_key: PublicKey,
        leftover: bytes = b"",
    ) -> None:
        self._raw = raw
        self._local_peer = local_peer
        self._remote_peer = remote_peer
        self._remote_key = remote_public_key
        self._prefix = leftover

    @property
    def local_multiaddr(self) -> Multiaddr:
        return self._raw.local_multiaddr

    @property
    def remote_multiaddr(self) -> Multiaddr:
        return self._raw.remote_multiaddr

    @property
    def local_peer(self) -> PeerId:
        return self._local_peer

    @property
    def remote_peer(self) -> PeerId:
        return self._remote_peer

    @property
    def remote_public_key(self) -> PublicKey:
        return self._remote_key

    @property
    def security_protocol(self) -> str:
        return PROTOCOL_ID

    @property
    def early_muxer(self) -> str | None:
        return None

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Return 1 to ``max_bytes`` bytes; see ``ByteStream.receive``."""
        if self._prefix:
            data, self._prefix = self._prefix[:max_bytes], self._prefix[max_bytes:]
            return data
        return await self._raw.receive(max_bytes)

    async def send(self, item: Buffer) -> None:
        """Send ``item`` unchanged; see ``ByteStream.send``."""
        await self._raw.send(item)

    async def send_eof(self) -> None:
        """Half-close; see ``ByteStream.send_eof``."""
        await self._raw.send_eof()

    async def aclose(self) -> None:
        """Close both directions; never raises for a closed or broken connection."""
        try:
            await self._raw.aclose()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass


class Plaintext:
    """The ``/plaintext/2.0.0`` security channel (a ``SecurityChannel``); no encryption and no
    proof of key possession: never use it on an untrusted network."""

    @property
    def protocol_id(self) -> str:
        return PROTOCOL_ID

    async def secure_outbound(
        self,
        conn: RawConnection,
        identity: Identity,
        *,
        remote_peer: PeerId | None,
        muxers: Sequence[str] = (),
    ) -> PlaintextSecureConnection:
        """Exchange identities as initiator; ``muxers`` is ignored (no inlined negotiation).

        Raises:
            HandshakeError: the exchange failed or its ID does not match its key; ``conn`` is
                closed.
            PeerIdMismatch: the peer is not ``remote_peer``; ``conn`` is closed.
        """
        return await _exchange(conn, identity, remote_peer)

    async def secure_inbound(
        self, conn: RawConnection, identity: Identity, *, muxers: Sequence[str] = ()
    ) -> PlaintextSecureConnection:
        """Exchange identities as responder; ``muxers`` is ignored.

        Raises:
            HandshakeError: the exchange failed or its ID does not match its key; ``conn`` is
                closed.
        """
        return await _exchange(conn, identity, None)


def _verify(exchange: Exchange) -> tuple[PeerId, PublicKey]:
    try:
        key = PublicKey.from_protobuf(exchange.pubkey)
    except IdentityError as exc:
        raise HandshakeError(f"invalid public key in Exchange: {exc}") from exc
    peer = PeerId.from_public_key(key)
    if peer.to_bytes() != exchange.id:
        raise HandshakeError("Exchange peer ID does not match its public key")
    return peer, key


async def _exchange(
    conn: RawConnection, identity: Identity, expected: PeerId | None
) -> PlaintextSecureConnection:
    ours = Exchange(id=identity.peer_id.to_bytes(), pubkey=identity.public_key.to_protobuf())
    reader = ExchangeReader()
    try:
        # Both sides speak first: the spec's exchange is symmetric.
        await conn.send(encode_exchange(ours))
        while (theirs := reader.feed(await conn.receive(_HANDSHAKE_READ))) is None:
            pass
        peer, key = _verify(theirs)
        if expected is not None and peer != expected:
            raise PeerIdMismatch(str(expected), str(peer))
    except SecurityError:
        await _close_quietly(conn)
        raise
    except (*_IO_ERRORS, RemoteProtocolError) as exc:
        await _close_quietly(conn)
        raise HandshakeError(f"plaintext exchange failed: {exc!r}") from exc
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _close_quietly(conn)
        raise
    return PlaintextSecureConnection(
        conn,
        local_peer=identity.peer_id,
        remote_peer=peer,
        remote_public_key=key,
        leftover=reader.take_remaining(),
    )


async def _close_quietly(conn: RawConnection) -> None:
    try:
        await conn.aclose()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
