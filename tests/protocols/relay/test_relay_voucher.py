"""Reservation vouchers: made, opened, and every forgery refused."""

from __future__ import annotations

import pytest

from p2pstack.errors import IdentityError, InvalidSignatureError
from p2pstack.identity import Envelope, Identity
from protocols.relay import (
    VOUCHER_DOMAIN,
    VOUCHER_PAYLOAD_TYPE,
    Voucher,
    VoucherError,
    make_voucher,
    open_voucher,
)

RELAY = Identity.generate()
PEER = Identity.generate()
OTHER = Identity.generate()


def test_round_trip() -> None:
    data = make_voucher(RELAY.private_key, PEER.peer_id, 2_000)
    voucher = open_voucher(data, relay=RELAY.peer_id, peer=PEER.peer_id, now=1_000)
    assert voucher == Voucher(relay=RELAY.peer_id, peer=PEER.peer_id, expiration=2_000)
    envelope = Envelope.from_bytes(data, VOUCHER_DOMAIN)
    assert envelope.payload_type == b"\x03\x02" == VOUCHER_PAYLOAD_TYPE


def test_mismatches_are_refused() -> None:
    data = make_voucher(RELAY.private_key, PEER.peer_id, 2_000)
    with pytest.raises(VoucherError, match="expected"):
        open_voucher(data, relay=OTHER.peer_id)
    with pytest.raises(VoucherError, match="expected"):
        open_voucher(data, peer=OTHER.peer_id)
    with pytest.raises(VoucherError, match="expired"):
        open_voucher(data, now=2_000)


def test_voucher_naming_another_relay_is_forged() -> None:
    # Signed by OTHER but claiming RELAY as the relay.
    payload = Voucher(relay=RELAY.peer_id, peer=PEER.peer_id, expiration=9).to_bytes()
    forged = Envelope.seal(OTHER.private_key, VOUCHER_DOMAIN, VOUCHER_PAYLOAD_TYPE, payload)
    with pytest.raises(VoucherError, match="signed by another key"):
        open_voucher(forged.to_bytes())


def test_tampered_wrong_domain_and_wrong_type() -> None:
    data = bytearray(make_voucher(RELAY.private_key, PEER.peer_id, 2_000))
    data[-1] ^= 1  # the signature's last byte
    with pytest.raises(InvalidSignatureError):
        open_voucher(bytes(data))
    payload = Voucher(relay=RELAY.peer_id, peer=PEER.peer_id, expiration=9).to_bytes()
    other_domain = Envelope.seal(
        RELAY.private_key, "libp2p-peer-record", VOUCHER_PAYLOAD_TYPE, payload
    )
    with pytest.raises(InvalidSignatureError):
        open_voucher(other_domain.to_bytes())
    other_type = Envelope.seal(RELAY.private_key, VOUCHER_DOMAIN, b"\x03\x01", payload)
    with pytest.raises(VoucherError, match="payload type"):
        open_voucher(other_type.to_bytes())
    with pytest.raises(IdentityError):
        open_voucher(b"\xff\xff")


@pytest.mark.parametrize("payload", [b"", b"\x0a\x01\x00\x12\x00\x18\x01", b"\xff"])
def test_malformed_payloads(payload: bytes) -> None:
    sealed = Envelope.seal(RELAY.private_key, VOUCHER_DOMAIN, VOUCHER_PAYLOAD_TYPE, payload)
    with pytest.raises(VoucherError):
        open_voucher(sealed.to_bytes())
