"""The established ``/tls/1.0.0`` connection: application data through a ``TlsSession`` over a
raw connection (https://github.com/libp2p/specs/blob/master/tls/tls.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from p2pstack.errors import RemoteProtocolError
from p2pstack.identity import PeerId
from p2pstack.interfaces import Buffer, RawConnection
from p2pstack.sync import FastLock
from transports.tls._tls import TlsSession

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.identity import PublicKey

__all__ = ["PROTOCOL_ID", "READ_SIZE", "SEND_BATCH", "TlsSecureConnection"]

PROTOCOL_ID = "/tls/1.0.0"

#: Most bytes asked of the raw connection per read. They are fed to OpenSSL only once it has
#: consumed every complete record it holds, so a connection buffers at most this plus one
#: partial record (< 17 KiB) of inbound data.
READ_SIZE = 256 * 1024
#: Most plaintext encrypted per write; bounds the ciphertext buffer ``send`` builds.
SEND_BATCH = 1024 * 1024


class TlsSecureConnection:
    """An authenticated TLS 1.3 session over a raw connection (a ``SecureConnection``).

    ``send`` and ``receive`` may run concurrently; concurrent ``send`` calls are serialised
    (records must reach the wire in sequence order), concurrent ``receive`` calls raise
    ``anyio.BusyResourceError``. A bad record or an alert from the peer raises
    ``RemoteProtocolError`` and closes the connection.

    Args:
        raw: the raw connection the handshake ran on.
        session: the session, its handshake complete.
        local_peer: our peer ID.
    """

    def __init__(self, raw: RawConnection, session: TlsSession, *, local_peer: PeerId) -> None:
        self._raw = raw
        self._session = session
        self._local_peer = local_peer
        self._remote_key = session.remote_public_key
        self._remote_peer = PeerId.from_public_key(self._remote_key)
        self._early_muxer = session.early_muxer
        self._send_lock = FastLock()
        self._recv_guard = anyio.ResourceGuard("receiving from")
        self._eof_received = False
        self._eof_sent = False
        self._closed = False

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
        return self._early_muxer

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Return 1 to ``max_bytes`` bytes of plaintext (at most one TLS record's worth).

        Raises:
            anyio.EndOfStream: the peer sent close_notify or its side of the stream ended.
            RemoteProtocolError: a record failed authentication or the peer sent an alert;
                the connection is closed.
            anyio.BrokenResourceError: the raw connection failed.
            anyio.ClosedResourceError: we closed the connection.
        """
        with self._recv_guard:
            while True:
                if self._closed:
                    raise anyio.ClosedResourceError
                try:
                    data = self._session.read(max_bytes)
                except RemoteProtocolError:
                    await self.aclose()
                    raise
                if data:
                    return data
                if self._eof_received or self._session.peer_closed:
                    self._eof_received = True
                    raise anyio.EndOfStream
                # A key update the peer asked for is answered here when no send is running
                # (a running send takes it along with its own records).
                if not self._send_lock.locked() and not self._eof_sent:
                    await self._flush()
                try:
                    chunk = await self._raw.receive(READ_SIZE)
                except anyio.EndOfStream:
                    # Without close_notify: a muxer on top detects a truncated frame.
                    self._eof_received = True
                    raise
                self._session.receive_data(chunk)

    async def _flush(self) -> None:
        async with self._send_lock:
            wire = self._session.data_to_send()
            if wire:
                await self._raw.send(wire)

    async def send(self, item: Buffer) -> None:
        """Encrypt and send all of ``item`` (one write per ``SEND_BATCH`` bytes).

        Raises:
            anyio.ClosedResourceError: after ``send_eof`` or ``aclose``.
            anyio.BrokenResourceError: the raw connection failed.
        """
        if self._eof_sent or self._closed:
            raise anyio.ClosedResourceError
        async with self._send_lock:
            with memoryview(item) as view:
                for start in range(0, len(view), SEND_BATCH):
                    self._session.send(view[start : start + SEND_BATCH])
                    for wire in self._session.data_to_send_chunks():
                        await self._raw.send(wire)

    async def send_eof(self) -> None:
        """Half-close: send close_notify (TLS 1.3 lets the other direction go on) and end our
        side of the raw stream; we may still receive."""
        if self._eof_sent or self._closed:
            return
        async with self._send_lock:
            self._eof_sent = True
            self._session.close()
            wire = self._session.data_to_send()
            if wire:
                await self._raw.send(wire)
            await self._raw.send_eof()

    async def aclose(self) -> None:
        """Close both directions. Idempotent, never raises for a closed or broken connection."""
        self._closed = True
        self._eof_sent = True
        try:
            await self._raw.aclose()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
