"""Attack clients: raw sockets, and sessions built from the project's own modules (multistream,
the Noise handshake core, yamux and mplex frame encoders) that then misbehave on purpose.

Every helper binds its socket to a chosen loopback source address (``127.0.1.x``: all of
127.0.0.0/8 is loopback on Linux), so floods can come from one address or from many.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio
import attrs
from anyio.abc import SocketStream

from p2pstack.identity import Identity
from p2pstack.interfaces import ByteStream, RawConnection, SecureConnection
from p2pstack.multistream import negotiate_outbound
from p2pstack.streams import PrefixedConnection
from p2pstack.varint import encode_uvarint
from transports.noise import PROTOCOL_ID as NOISE
from transports.noise import (
    SIGNATURE_PREFIX,
    FrameDecoder,
    Noise,
    NoiseHandshake,
    encode_frame,
    encode_payload,
)
from transports.tcp import TcpConnection

__all__ = [
    "ATTACKER",
    "HONEST",
    "MULTISTREAM",
    "ForgedHandshake",
    "Outcome",
    "ms_message",
    "noise_secured",
    "noise_session",
    "outcome",
    "raw_connect",
    "reset_connect",
    "secure_session",
    "source_addresses",
]

T = TypeVar("T")

#: The honest client's source address; attackers use 127.0.1.x.
HONEST = "127.0.0.1"
ATTACKER = "127.0.1.1"
MULTISTREAM = "/multistream/1.0.0"


def source_addresses(count: int) -> list[str]:
    """``count`` attacker source addresses, 127.0.1.1 upwards."""
    return [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(count)]


def ms_message(text: str) -> bytes:
    """One multistream-select message: varint length, text, newline."""
    body = text.encode() + b"\n"
    return encode_uvarint(len(body)) + body


async def _connected_socket(port: int, source: str) -> socket.socket:
    """A socket bound to ``source`` and connected to the node (no name resolution: anyio's
    ``connect_tcp`` resolves both ends in worker threads, which would throttle floods)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((source, 0))
        sock.setblocking(False)
        err = sock.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            raise OSError(err, os.strerror(err))
        await anyio.wait_writable(sock)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
    except BaseException:
        sock.close()
        raise
    return sock


async def raw_connect(port: int, source: str = ATTACKER) -> TcpConnection:
    """A TCP connection to the node from ``source``."""
    sock = await _connected_socket(port, source)
    return TcpConnection(await SocketStream.from_socket(sock))


async def reset_connect(port: int, source: str = ATTACKER) -> None:
    """Connect, then close with ``SO_LINGER`` (on, 0 s): the node's socket gets an RST."""
    sock = await _connected_socket(port, source)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@attrs.frozen
class Outcome:
    """How the node ended an attack connection.

    Attributes:
        result: ``"closed"`` (end of stream), ``"reset"`` (the socket broke) or ``"open"``
            (still open when the time bound ran out).
        seconds: from the call until the node ended it (or the bound).
        received: bytes the node sent meanwhile.
    """

    result: str
    seconds: float
    received: int


async def outcome(stream: ByteStream, within: float) -> Outcome:
    """Read and discard what the node sends until it ends the connection or ``within`` passes."""
    started = time.monotonic()
    received = 0
    result = "open"
    with anyio.move_on_after(within):
        try:
            while True:
                received += len(await stream.receive())
        except anyio.EndOfStream:
            result = "closed"
        except (anyio.BrokenResourceError, OSError):
            result = "reset"
    return Outcome(result, time.monotonic() - started, received)


async def noise_session(
    port: int, source: str = ATTACKER, *, identity: Identity | None = None
) -> tuple[ByteStream, ForgedHandshake, FrameDecoder]:
    """A connection that negotiated ``/noise`` and sent handshake message 1, with the handshake
    core (ready to read message 2) and a decoder for the node's frames."""
    raw = await raw_connect(port, source)
    _, leftover = await negotiate_outbound(raw, [NOISE], timeout=5)
    stream: RawConnection = PrefixedConnection(raw, leftover) if leftover else raw
    handshake = ForgedHandshake(
        initiator=True,
        identity=identity or Identity.generate(),
        static_key=os.urandom(32),
        ephemeral_key=os.urandom(32),
    )
    await stream.send(handshake.write_message())
    return stream, handshake, FrameDecoder()


async def read_frame(stream: ByteStream, decoder: FrameDecoder) -> bytes:
    """The node's next Noise frame."""
    while (frame := decoder.next_frame()) is None:
        decoder.feed(await stream.receive())
    return frame


class ForgedHandshake(NoiseHandshake):
    """An initiator handshake whose identity proof can be signed by a key other than the one it
    names (``signer``): a node must refuse such a peer."""

    signer: Identity | None = None

    def _signed_payload(self) -> bytes:
        if self.signer is None:
            return super()._signed_payload()
        static_public = self._state.s.public_bytes
        return encode_payload(
            identity_key=self._identity.public_key.to_protobuf(),
            identity_sig=self.signer.private_key.sign(SIGNATURE_PREFIX + static_public),
        )


async def noise_secured(
    port: int, source: str = ATTACKER
) -> tuple[SecureConnection, RawConnection]:
    """A connection through a complete Noise handshake, before muxer negotiation, with the raw
    connection under it (to send frames the cipher would never produce)."""
    raw = await raw_connect(port, source)
    _, leftover = await negotiate_outbound(raw, [NOISE], timeout=5)
    first: RawConnection = PrefixedConnection(raw, leftover) if leftover else raw
    secure = await Noise().secure_outbound(first, Identity.generate(), remote_peer=None)
    return secure, raw


async def secure_session(
    port: int, muxer: str, source: str = ATTACKER
) -> tuple[ByteStream, SecureConnection]:
    """A fully secured connection (Noise) that negotiated ``muxer``; the caller then speaks the
    muxer's frames itself. Returns the stream to write frames to and the secure connection."""
    secure, _ = await noise_secured(port, source)
    _, leftover = await negotiate_outbound(secure, [muxer], timeout=5)
    stream: RawConnection = PrefixedConnection(secure, leftover) if leftover else secure
    return stream, secure


async def in_thread(attack: Callable[[], Awaitable[T]]) -> T:
    """Run ``attack`` on its own event loop in a worker thread and wait for it.

    The node and the honest client share the test's event loop; an attacker there would add
    its own work (encryption, framing) to every honest round trip. In a thread it competes only
    for the interpreter lock, which is switched every few milliseconds.
    """
    return await anyio.to_thread.run_sync(anyio.run, attack)


async def close_all(streams: Sequence[ByteStream]) -> None:
    """Close every stream, ignoring errors."""
    for stream in streams:
        with anyio.CancelScope(shield=True):
            try:
                await stream.aclose()
            except (OSError, anyio.BrokenResourceError):
                pass


__all__ += ["close_all", "encode_frame", "in_thread", "read_frame"]
