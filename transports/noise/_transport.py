"""Sans-IO transport phase of a Noise session: ChaCha20-Poly1305 over length-prefixed frames.

Spec: https://github.com/libp2p/specs/blob/master/noise/README.md#wire-format and the Noise
framework, sections 5.1 (CipherState) and 12.3 (ChaChaPoly nonce: 32 bits of zeros followed by
the 64-bit little-endian counter). This is the data path, so every frame costs one AEAD call
that writes straight into (or reads straight from) the caller's buffers.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from p2pstack.errors import LocalProtocolError, RemoteProtocolError
from transports.noise._framing import LENGTH_PREFIX_SIZE, MAX_FRAME_SIZE

__all__ = ["MAX_PLAINTEXT_PER_FRAME", "TAG_SIZE", "NoiseTransportState"]

#: Poly1305 authentication tag appended to every message.
TAG_SIZE = 16
#: The largest plaintext one frame carries: a 65535-byte message minus the tag.
MAX_PLAINTEXT_PER_FRAME = MAX_FRAME_SIZE - TAG_SIZE

_LENGTH = struct.Struct(">H")
_NONCE = struct.Struct("<4xQ")
# Noise reserves nonce 2**64 - 1; a session would need ~10**19 frames to get there.
_MAX_NONCE = (1 << 64) - 1
#: Frames read from the front of the plaintext list after which it is compacted even though
#: it was not drained.
_COMPACT_FRAMES = 1024


class NoiseTransportState:
    """Encrypts outbound and decrypts inbound transport messages of one Noise session.

    Bounds: the ciphertext buffer holds at most one partial frame (< 65537 bytes) between
    calls; the plaintext buffer holds what the last ``receive_data`` decrypted. A driver that
    feeds only when ``pending`` is 0 and reads at most R bytes from the network at a time thus
    holds at most R + 65537 bytes.

    Args:
        send_key: the 32-byte key of our sending CipherState.
        recv_key: the 32-byte key of our receiving CipherState.
        send_nonce: the next sending nonce (0 right after the handshake).
        recv_nonce: the next receiving nonce.
    """

    def __init__(
        self, send_key: bytes, recv_key: bytes, *, send_nonce: int = 0, recv_nonce: int = 0
    ) -> None:
        self._enc = ChaCha20Poly1305(send_key)
        self._dec = ChaCha20Poly1305(recv_key)
        self._send_n = send_nonce
        self._recv_n = recv_nonce
        self._partial = bytearray()
        # Decrypted frames not yet read: a list read from ``_plain_head`` and cleared once
        # drained (an empty deque costs about 0.75 KiB per connection, a list 56 B).
        self._plain: list[bytes] = []
        self._plain_head = 0
        self._plain_offset = 0
        self._pending = 0
        self._broken = False

    @property
    def pending(self) -> int:
        """Decrypted plaintext bytes waiting to be read."""
        return self._pending

    @property
    def has_partial_frame(self) -> bool:
        """Whether bytes of an incomplete frame are buffered (a truncation if the stream ends)."""
        return bool(self._partial)

    def encrypt(self, data: bytes | bytearray | memoryview) -> bytearray:
        """Encrypt ``data`` into as many frames as needed, each framed with its length.

        Args:
            data: plaintext of any length; it is split into chunks of at most
                ``MAX_PLAINTEXT_PER_FRAME`` bytes. Empty data gives no frames.

        Returns:
            One buffer with every frame, ready for a single write.

        Raises:
            LocalProtocolError: the sending nonce is exhausted.
        """
        size = len(data)
        frames = -(-size // MAX_PLAINTEXT_PER_FRAME)
        if self._send_n + frames >= _MAX_NONCE:
            raise LocalProtocolError("Noise sending nonce exhausted")
        out = bytearray(size + frames * (LENGTH_PREFIX_SIZE + TAG_SIZE))
        with memoryview(data) as src, memoryview(out) as dst:
            pos = 0
            for start in range(0, size, MAX_PLAINTEXT_PER_FRAME):
                chunk = src[start : start + MAX_PLAINTEXT_PER_FRAME]
                sealed = len(chunk) + TAG_SIZE
                _LENGTH.pack_into(out, pos, sealed)
                pos += LENGTH_PREFIX_SIZE
                self._enc.encrypt_into(
                    _NONCE.pack(self._send_n), chunk, None, dst[pos : pos + sealed]
                )
                self._send_n += 1
                pos += sealed
        return out

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Take bytes from the network and decrypt every complete frame in them.

        Raises:
            RemoteProtocolError: a frame is shorter than a tag or fails authentication. The
                state is then broken and every later call raises the same error.
        """
        if self._broken:
            raise RemoteProtocolError("Noise session already failed")
        with memoryview(data) as view:
            pos = self._complete_partial(view) if self._partial else 0
            if self._partial:  # still incomplete: all of ``data`` went into it
                return
            with view[pos:] as rest:
                end = self._decrypt_frames(rest)
                if end < len(rest):
                    # Only the tail (< one frame) is copied; complete frames never are.
                    self._partial = bytearray(rest[end:])

    def _complete_partial(self, view: memoryview) -> int:
        """Move bytes from the head of ``view`` into the buffered partial frame and decrypt it
        once complete; return how many bytes of ``view`` were used."""
        partial = self._partial
        used = 0
        if len(partial) < LENGTH_PREFIX_SIZE:
            used = min(LENGTH_PREFIX_SIZE - len(partial), len(view))
            partial += view[:used]
            if len(partial) < LENGTH_PREFIX_SIZE:
                return used
        length: int = _LENGTH.unpack_from(partial)[0]
        more = min(LENGTH_PREFIX_SIZE + length - len(partial), len(view) - used)
        partial += view[used : used + more]
        used += more
        if len(partial) == LENGTH_PREFIX_SIZE + length:
            self._partial = bytearray()
            with memoryview(partial) as frame:
                self._decrypt_frames(frame)
        return used

    def _decrypt_frames(self, view: memoryview) -> int:
        """Decrypt each complete frame of ``view``; return the index just past the last one."""
        pos = 0
        end = len(view)
        while end - pos >= LENGTH_PREFIX_SIZE:
            (length,) = _LENGTH.unpack_from(view, pos)
            stop = pos + LENGTH_PREFIX_SIZE + length
            if stop > end:
                break
            if length < TAG_SIZE:
                self._broken = True
                raise RemoteProtocolError(f"Noise frame of {length} bytes is shorter than a tag")
            if self._recv_n >= _MAX_NONCE:
                self._broken = True
                raise RemoteProtocolError("Noise receiving nonce exhausted")
            try:
                plain = self._dec.decrypt(
                    _NONCE.pack(self._recv_n), view[pos + LENGTH_PREFIX_SIZE : stop], None
                )
            except InvalidTag:
                self._broken = True
                raise RemoteProtocolError("Noise frame failed authentication") from None
            self._recv_n += 1
            if plain:
                self._plain.append(plain)
                self._pending += len(plain)
            pos = stop
        return pos

    def read(self, max_bytes: int) -> bytes:
        """Remove and return up to ``max_bytes`` of decrypted plaintext (``b""`` if none),
        joining frames when one is not enough.

        Raises:
            ValueError: ``max_bytes`` is smaller than 1.
        """
        first = self.read_frame(max_bytes)
        want = max_bytes - len(first)
        if not want or not self._pending:
            return first
        parts = [first]
        while want and self._pending:
            part = self.read_frame(want)
            parts.append(part)
            want -= len(part)
        return b"".join(parts)

    def read_frame(self, max_bytes: int) -> bytes:
        """Like ``read`` but never joins frames: up to ``max_bytes`` of the oldest decrypted
        frame. A whole frame is returned without copying it, so a reader that takes large
        chunks (a muxer) gets each decrypted byte without a second copy.

        Raises:
            ValueError: ``max_bytes`` is smaller than 1.
        """
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        if not self._pending:
            return b""
        avail = len(self._plain[self._plain_head]) - self._plain_offset
        return self._take_from_first(min(avail, max_bytes))

    def _take_from_first(self, n: int) -> bytes:
        first = self._plain[self._plain_head]
        start = self._plain_offset
        if start == 0 and n == len(first):
            # The common case: hand the decrypted frame over without copying it.
            self._drop_first()
            self._pending -= n
            return first
        piece = first[start : start + n]
        if start + n == len(first):
            self._drop_first()
            self._plain_offset = 0
        else:
            self._plain_offset = start + n
        self._pending -= n
        return piece

    def _drop_first(self) -> None:
        plain, head = self._plain, self._plain_head
        plain[head] = b""  # the reader has it now: keep no reference
        head += 1
        if head == len(plain):
            plain.clear()
            head = 0
        elif head >= _COMPACT_FRAMES:
            del plain[:head]
            head = 0
        self._plain_head = head
