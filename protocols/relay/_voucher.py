"""Reservation vouchers: a relay's signed statement that it serves a peer until a time
(https://github.com/libp2p/specs/blob/master/relay/circuit-v2.md#reservation-vouchers).

A voucher is a ``ReservationVoucher`` protobuf carried in a signed envelope (RFC 0002) with the
domain ``"libp2p-relay-rsvp"`` and the payload type ``0x03 0x02`` (the multicodec
``libp2p-relay-rsvp``, 0x0302, written as two bytes, as go and js write it). No I/O.
"""

from __future__ import annotations

import attrs
from google.protobuf.message import DecodeError

from p2pstack.errors import IdentityError, InvalidPeerIdError
from p2pstack.identity import Envelope, PeerId, PrivateKey
from protocols.relay.pb import voucher_pb2

__all__ = [
    "VOUCHER_DOMAIN",
    "VOUCHER_PAYLOAD_TYPE",
    "Voucher",
    "VoucherError",
    "make_voucher",
    "open_voucher",
]

VOUCHER_DOMAIN = "libp2p-relay-rsvp"
VOUCHER_PAYLOAD_TYPE = b"\x03\x02"
_U64_MAX = (1 << 64) - 1


class VoucherError(IdentityError):
    """A voucher that does not verify, is malformed, expired, or names other peers."""


def _check_expiration(_instance: object, _attribute: object, value: int) -> None:
    if not 0 <= value <= _U64_MAX:
        raise ValueError(f"expiration must fit in a uint64, got {value}")


@attrs.frozen(kw_only=True)
class Voucher:
    """The content of a reservation voucher.

    Attributes:
        relay: the relay's peer ID (the signer).
        peer: the reserving peer's ID.
        expiration: Unix time (seconds, UTC) the reservation ends.
    """

    relay: PeerId
    peer: PeerId
    expiration: int = attrs.field(validator=_check_expiration)

    def to_bytes(self) -> bytes:
        """The serialized ``ReservationVoucher`` (the envelope payload)."""
        message = voucher_pb2.ReservationVoucher(
            relay=self.relay.to_bytes(), peer=self.peer.to_bytes(), expiration=self.expiration
        )
        return message.SerializeToString(deterministic=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> Voucher:
        """Parse a ``ReservationVoucher`` (no signature check: see ``open_voucher``).

        Raises:
            VoucherError: malformed, a field missing, or an invalid peer ID.
        """
        message = voucher_pb2.ReservationVoucher()
        try:
            message.ParseFromString(bytes(data))
        except DecodeError as exc:
            raise VoucherError(f"malformed voucher: {exc}") from None
        for name in ("relay", "peer", "expiration"):
            if not message.HasField(name):
                raise VoucherError(f"voucher without {name}")
        try:
            relay = PeerId.from_bytes(message.relay)
            peer = PeerId.from_bytes(message.peer)
        except InvalidPeerIdError as exc:
            raise VoucherError(f"voucher with an invalid peer ID: {exc}") from None
        return cls(relay=relay, peer=peer, expiration=message.expiration)


def make_voucher(private_key: PrivateKey, peer: PeerId, expiration: int) -> bytes:
    """Sign a voucher for ``peer`` with the relay's key.

    Args:
        private_key: the relay's key (the voucher's ``relay`` is its peer ID).
        peer: the reserving peer.
        expiration: Unix time (seconds) the reservation ends.

    Returns:
        The serialized envelope, for ``Reservation.voucher``.
    """
    relay = PeerId.from_public_key(private_key.public_key)
    voucher = Voucher(relay=relay, peer=peer, expiration=expiration)
    envelope = Envelope.seal(private_key, VOUCHER_DOMAIN, VOUCHER_PAYLOAD_TYPE, voucher.to_bytes())
    return envelope.to_bytes()


def open_voucher(
    data: bytes,
    *,
    relay: PeerId | None = None,
    peer: PeerId | None = None,
    now: float | None = None,
) -> Voucher:
    """Verify a voucher envelope and return its content.

    Checks, in order: the envelope's signature for ``VOUCHER_DOMAIN``, the payload type, that
    the signer is the voucher's relay, then the expectations given.

    Args:
        data: the serialized envelope.
        relay: the relay the voucher must come from.
        peer: the peer it must be for.
        now: Unix time; the voucher must not have expired by then.

    Returns:
        The voucher.

    Raises:
        VoucherError: any check failed (also a wrong payload type or a voucher signed by a key
            other than its relay's).
        IdentityError: the envelope is malformed or its signature does not verify
            (``InvalidSignatureError``).
    """
    envelope = Envelope.from_bytes(data, VOUCHER_DOMAIN)
    if envelope.payload_type != VOUCHER_PAYLOAD_TYPE:
        raise VoucherError(f"envelope payload type {envelope.payload_type.hex()} is not a voucher")
    voucher = Voucher.from_bytes(envelope.payload)
    if not voucher.relay.matches(envelope.public_key):
        raise VoucherError(f"voucher for relay {voucher.relay} is signed by another key")
    if relay is not None and voucher.relay != relay:
        raise VoucherError(f"voucher from relay {voucher.relay}, expected {relay}")
    if peer is not None and voucher.peer != peer:
        raise VoucherError(f"voucher for peer {voucher.peer}, expected {peer}")
    if now is not None and voucher.expiration <= now:
        raise VoucherError(f"voucher expired at {voucher.expiration}")
    return voucher
