"""What a listening socket does with a datagram for an unknown connection ID (RFC 9000
sections 6, 8.1 and 14.1), without I/O: drop it, answer statelessly (Version Negotiation,
Retry), or start a server handshake.

Half-open handshakes are bounded. Past half the bound, a client must first prove its address
with a Retry token (one round trip, no state kept here), so a flood of Initials from spoofed
addresses cannot fill the remaining slots; at the bound, Initials are dropped.
"""

from __future__ import annotations

import os

import attrs
from aioquic._buffer import Buffer
from aioquic.quic.packet import (
    QuicPacketType,
    encode_quic_retry,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from aioquic.quic.retry import QuicRetryTokenHandler

from transports.quic._engine import CID_LENGTH

__all__ = ["Accept", "Admission", "InitialGate", "Reply"]

#: QUIC version 1 (RFC 9000), the only one /quic-v1 speaks.
VERSION_1 = 0x00000001
#: A client's first datagram is padded to at least this size (RFC 9000 section 14.1).
MIN_INITIAL_SIZE = 1200


@attrs.frozen
class Reply:
    """Send ``data`` back to the sender and keep no state."""

    data: bytes


@attrs.frozen
class Accept:
    """Start a server connection: aioquic's ``original_destination_connection_id`` and
    ``retry_source_connection_id``; ``cid`` is the destination ID the client uses now."""

    original_dcid: bytes
    retry_scid: bytes | None
    cid: bytes


#: ``None``: drop the datagram.
Admission = Reply | Accept | None


class InitialGate:
    """Decides about datagrams for unknown connection IDs on one listening socket.

    Args:
        max_half_open: handshakes in progress at most; Retry is required from half of it.
    """

    def __init__(self, *, max_half_open: int) -> None:
        self.max_half_open = max_half_open
        self.retry_from = max(1, max_half_open // 2)
        self._tokens = QuicRetryTokenHandler()
        self.retries_sent = 0

    def admit(self, data: bytes, addr: tuple[str, int], half_open: int, now: float) -> Admission:
        """What to do with ``data`` from ``addr`` while ``half_open`` handshakes run.

        Args:
            data: the datagram (its destination ID matched no connection).
            addr: the sender.
            half_open: server handshakes in progress on this socket.
            now: the clock Retry tokens are stamped and checked with.

        Returns:
            ``Reply``, ``Accept``, or ``None`` to drop it.
        """
        if len(data) < MIN_INITIAL_SIZE:  # also keeps every stateless answer smaller
            return None
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
        except ValueError:
            return None
        if header.packet_type == QuicPacketType.VERSION_NEGOTIATION or header.version is None:
            return None
        if header.version != VERSION_1:
            return Reply(
                encode_quic_version_negotiation(
                    source_cid=header.destination_cid,
                    destination_cid=header.source_cid,
                    supported_versions=[VERSION_1],
                )
            )
        if header.packet_type != QuicPacketType.INITIAL or len(header.destination_cid) < 8:
            return None
        if header.token:
            return self._redeem(header.token, header.destination_cid, addr, half_open, now)
        if half_open >= self.retry_from:
            return self._retry(header.destination_cid, header.source_cid, addr, now)
        return Accept(header.destination_cid, None, header.destination_cid)

    def _retry(self, dcid: bytes, scid: bytes, addr: tuple[str, int], now: float) -> Reply:
        retry_scid = os.urandom(CID_LENGTH)
        token = self._tokens.create_token(
            address=addr,
            original_destination_connection_id=dcid,
            retry_source_connection_id=retry_scid,
            now=now,
        )
        self.retries_sent += 1
        return Reply(
            encode_quic_retry(
                version=VERSION_1,
                source_cid=retry_scid,
                destination_cid=scid,
                original_destination_cid=dcid,
                retry_token=token,
            )
        )

    def _redeem(
        self, token: bytes, dcid: bytes, addr: tuple[str, int], half_open: int, now: float
    ) -> Admission:
        if half_open >= self.max_half_open:
            return None
        try:
            original = self._tokens.validate_token(
                address=addr, destination_cid=dcid, token=token, now=now
            )
        except ValueError:  # forged, expired, or from another address: drop it
            return None
        return Accept(original, dcid, dcid)
