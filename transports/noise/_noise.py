"""The ``/noise`` security channel driver: runs the XX handshake core over a raw connection and
wraps it in an encrypted ``SecureConnection``.

Spec: https://github.com/libp2p/specs/blob/master/noise/README.md
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import anyio

from p2pstack.errors import HandshakeError, RemoteProtocolError, SecurityError
from p2pstack.interfaces import Buffer, RawConnection
from p2pstack.sync import FastLock
from transports.noise._framing import LENGTH_PREFIX_SIZE, MAX_FRAME_SIZE, FrameDecoder
from transports.noise._handshake import DH_KEY_SIZE, HandshakeResult, NoiseHandshake
from transports.noise._transport import NoiseTransportState

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from p2pstack.identity import Identity, PeerId, PublicKey

__all__ = ["PROTOCOL_ID", "Noise", "NoiseSecureConnection"]

PROTOCOL_ID = "/noise"

#: Most bytes asked of the raw connection per read. With the one partial frame the transport
#: state may hold, a connection buffers at most this + 65537 bytes of inbound data.
READ_SIZE = 256 * 1024
#: Most plaintext encrypted per write; bounds the ciphertext buffer ``send`` builds. Larger
#: sends are written in several batches.
SEND_BATCH = 1024 * 1024

# What a raw connection raises when the peer or the network went away mid-handshake.
_IO_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class NoiseSecureConnection:
    """An established Noise session over a raw connection (a ``SecureConnection``).

    ``send`` and ``receive`` may run concurrently with each other; concurrent ``send`` calls
    are serialised (frames must reach the wire in nonce order), concurrent ``receive`` calls
    raise ``anyio.BusyResourceError``. A frame that fails authentication raises
    ``RemoteProtocolError`` and closes the connection.
    """

    def __init__(
        self,
        raw: RawConnection,
        *,
        local_peer: PeerId,
        result: HandshakeResult,
        leftover: bytes = b"",
    ) -> None:
        self._raw = raw
        self._local_peer = local_peer
        self._result = result
        self._state = NoiseTransportState(result.send_key, result.recv_key)
        # An uncontended send takes no scheduler round trip and no loop lookup.
        self._send_lock = FastLock()
        self._recv_guard = anyio.ResourceGuard("receiving from")
        self._eof_received = False
        self._eof_sent = False
        self._closed = False
        if leftover:
            # Transport frames the peer sent right behind its last handshake message.
            self._state.receive_data(leftover)

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
        return self._result.remote_peer

    @property
    def remote_public_key(self) -> PublicKey:
        return self._result.remote_public_key

    @property
    def security_protocol(self) -> str:
        return PROTOCOL_ID

    @property
    def early_muxer(self) -> str | None:
        return self._result.early_muxer

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Return 1 to ``max_bytes`` bytes of plaintext.

        Raises:
            anyio.EndOfStream: the peer half-closed and every frame has been read.
            RemoteProtocolError: a frame was malformed, failed authentication, or the stream
                ended inside a frame; the connection is closed.
            anyio.BrokenResourceError: the raw connection failed.
            anyio.ClosedResourceError: we closed the connection.
        """
        with self._recv_guard:
            while True:
                if self._closed:
                    raise anyio.ClosedResourceError
                data = self._state.read_frame(max_bytes)
                if data:
                    return data
                if self._eof_received:
                    raise anyio.EndOfStream
                try:
                    chunk = await self._raw.receive(READ_SIZE)
                except anyio.EndOfStream:
                    self._eof_received = True
                    if self._state.has_partial_frame:
                        await self.aclose()
                        raise RemoteProtocolError("stream ended inside a Noise frame") from None
                    raise
                try:
                    self._state.receive_data(chunk)
                except RemoteProtocolError:
                    await self.aclose()
                    raise

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
                    wire = self._state.encrypt(view[start : start + SEND_BATCH])
                    # The bytearray goes out as it is (``send`` takes any buffer): no copy of
                    # each batch once more.
                    await self._raw.send(wire)

    async def send_eof(self) -> None:
        """Half-close: the peer reads end of stream after our last frame; we may still receive."""
        if self._eof_sent or self._closed:
            return
        async with self._send_lock:
            self._eof_sent = True
            await self._raw.send_eof()

    async def aclose(self) -> None:
        """Close both directions. Idempotent, never raises for a closed or broken connection."""
        self._closed = True
        self._eof_sent = True
        try:
            await self._raw.aclose()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass


class Noise:
    """The ``/noise`` security channel (a ``SecurityChannel``).

    A fresh X25519 static key is drawn for each connection: the spec allows it and it ties no
    two connections together.

    Args:
        random_bytes: where the X25519 keys come from (default ``os.urandom``). A deterministic
            simulation passes a seeded source; never do that on a real network.
    """

    def __init__(self, *, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self._random_bytes = random_bytes

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
    ) -> NoiseSecureConnection:
        """Run the handshake as initiator.

        Args:
            conn: the raw connection, after multistream-select chose ``/noise``.
            identity: our identity.
            remote_peer: the peer we dialed, or ``None`` to accept whoever answers.
            muxers: our muxer preference list for inlined negotiation.

        Returns:
            The encrypted connection.

        Raises:
            HandshakeError: the handshake failed; ``conn`` is closed.
            PeerIdMismatch: the responder proved another peer ID; ``conn`` is closed.
        """
        core = NoiseHandshake(
            initiator=True,
            identity=identity,
            static_key=self._random_bytes(DH_KEY_SIZE),
            ephemeral_key=self._random_bytes(DH_KEY_SIZE),
            muxers=muxers,
            remote_peer=remote_peer,
        )
        return await _run_handshake(conn, core, identity)

    async def secure_inbound(
        self, conn: RawConnection, identity: Identity, *, muxers: Sequence[str] = ()
    ) -> NoiseSecureConnection:
        """Run the handshake as responder.

        Args:
            conn: the raw connection, after multistream-select chose ``/noise``.
            identity: our identity.
            muxers: our muxer preference list; only the first is advertised.

        Returns:
            The encrypted connection.

        Raises:
            HandshakeError: the handshake failed; ``conn`` is closed.
        """
        core = NoiseHandshake(
            initiator=False,
            identity=identity,
            static_key=self._random_bytes(DH_KEY_SIZE),
            ephemeral_key=self._random_bytes(DH_KEY_SIZE),
            muxers=muxers,
        )
        return await _run_handshake(conn, core, identity)


async def _read_message(conn: RawConnection, decoder: FrameDecoder) -> bytes:
    """Read one framed handshake message; never buffers more than two maximal frames."""
    while (frame := decoder.next_frame()) is None:
        decoder.feed(await conn.receive(LENGTH_PREFIX_SIZE + MAX_FRAME_SIZE))
    return frame


async def _run_handshake(
    conn: RawConnection, core: NoiseHandshake, identity: Identity
) -> NoiseSecureConnection:
    decoder = FrameDecoder()
    try:
        for writing in (True, False, True) if core.initiator else (False, True, False):
            if writing:
                await conn.send(core.write_message())
            else:
                core.read_message(await _read_message(conn, decoder))
        result = core.result
        if result is None:  # pragma: no cover - the three steps above always complete it
            raise HandshakeError("Noise handshake did not complete")
        return NoiseSecureConnection(
            conn, local_peer=identity.peer_id, result=result, leftover=decoder.take_remaining()
        )
    except SecurityError:
        await _close_quietly(conn)
        raise
    except (*_IO_ERRORS, RemoteProtocolError) as exc:
        await _close_quietly(conn)
        raise HandshakeError(f"Noise handshake failed: {exc!r}") from exc
    except BaseException:
        # Cancelled (the upgrader's deadline) or a bug: still release the connection.
        with anyio.CancelScope(shield=True):
            await _close_quietly(conn)
        raise


async def _close_quietly(conn: RawConnection) -> None:
    try:
        await conn.aclose()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
