"""Ping wire rules: 32-byte payloads echoed back verbatim
(https://github.com/libp2p/specs/blob/master/ping/ping.md).

The protocol has no framing, so the "core" is a byte accumulator that cuts the stream into
payloads and a check that an echo matches what was sent. No I/O here.
"""

from __future__ import annotations

from p2pstack.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["PAYLOAD_SIZE", "PROTOCOL_ID", "PayloadBuffer", "check_echo"]

PROTOCOL_ID = "/ipfs/ping/1.0.0"
#: "The dialing peer sends 32-bytes of random binary data" (ping.md).
PAYLOAD_SIZE = 32


class PayloadBuffer:
    """Collects received bytes and hands out complete 32-byte payloads.

    Holds at most ``capacity`` bytes, and fewer than ``PAYLOAD_SIZE`` after ``pop_payloads``:
    the driver reads at most ``capacity - pending`` bytes at a time, so the buffer is bounded
    by construction.

    Args:
        capacity: most bytes held at once (at least ``PAYLOAD_SIZE``).

    Raises:
        ValueError: ``capacity`` is smaller than one payload.
    """

    def __init__(self, capacity: int = 2 * PAYLOAD_SIZE) -> None:
        if capacity < PAYLOAD_SIZE:
            raise ValueError(f"capacity must be at least {PAYLOAD_SIZE}")
        self.capacity = capacity
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        """Add received bytes.

        Raises:
            LocalProtocolError: more than ``capacity`` bytes would be held (driver bug).
        """
        if len(self._buf) + len(data) > self.capacity:
            raise LocalProtocolError(
                f"ping buffer overfilled: read at most {self.capacity} - pending bytes at a time"
            )
        self._buf += data

    def pop_payloads(self) -> list[bytes]:
        """Remove and return every complete payload received so far, in order."""
        out: list[bytes] = []
        while len(self._buf) >= PAYLOAD_SIZE:
            out.append(bytes(self._buf[:PAYLOAD_SIZE]))
            del self._buf[:PAYLOAD_SIZE]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete payload held back."""
        return len(self._buf)

    def finish(self) -> None:
        """Call at end of stream.

        Raises:
            RemoteProtocolError: the stream ended inside a payload.
        """
        if self._buf:
            raise RemoteProtocolError(
                f"ping stream ended after {len(self._buf)} bytes of a {PAYLOAD_SIZE}-byte payload"
            )


def check_echo(sent: bytes, received: bytes) -> None:
    """Check that the peer echoed our payload.

    Raises:
        RemoteProtocolError: the echo differs from the payload sent.
    """
    if sent != received:
        raise RemoteProtocolError(
            f"ping echo mismatch: sent {sent.hex()}, received {received.hex()}"
        )
