"""The libp2p TLS certificate: generation, the spec's test vectors, and every rejection cause."""

from __future__ import annotations

import datetime
import random
import time
from collections.abc import Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pstack.errors import CertificateError, SecurityError
from p2pstack.identity import (
    LIBP2P_TLS_OID,
    MAX_CERTIFICATE_SIZE,
    KeyType,
    PeerId,
    PrivateKey,
    generate_private_key,
    make_certificate,
    verify_certificate,
)
from p2pstack.identity._certificate import _decode_signed_key, _der_sequence, _der_tlv
from tests.p2pstack.identity import vectors
from tests.p2pstack.identity.tls_vectors import SPEC_CERTIFICATES, SPEC_INVALID_CERTIFICATE

HOST_KEYS = {
    "ed25519": vectors.ED25519_PRIVATE_HEX,
    "secp256k1": vectors.SECP256K1_PRIVATE_HEX,
    "ecdsa": vectors.ECDSA_PRIVATE_HEX,
    "rsa": vectors.RSA_PRIVATE_HEX,
}
ED25519 = PrivateKey.from_protobuf(bytes.fromhex(vectors.ED25519_PRIVATE_HEX))
OTHER = generate_private_key(KeyType.ED25519)
NOW = 1_800_000_000.0
PREFIX = b"libp2p-tls-handshake:"


def _utc(timestamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)


def _signed_key(host: PrivateKey, spki: bytes, *, claimed: PrivateKey | None = None) -> bytes:
    public = (claimed or host).public_key.to_protobuf()
    return _der_sequence(_der_tlv(0x04, public), _der_tlv(0x04, host.sign(PREFIX + spki)))


def _build(
    host: PrivateKey | None = ED25519,
    *,
    signed_key: bytes | None = None,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    critical: bool = False,
    signer: ec.EllipticCurvePrivateKey | None = None,
    hash_algorithm: hashes.SHA224 | hashes.SHA256 | None = None,
) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(_utc(NOW - 60))
        .not_valid_after(_utc(NOW + 60))
    )
    if host is not None:
        value = signed_key if signed_key is not None else _signed_key(host, spki)
        builder = builder.add_extension(
            x509.UnrecognizedExtension(LIBP2P_TLS_OID, value), critical=critical
        )
    for extension, is_critical in extensions:
        builder = builder.add_extension(extension, critical=is_critical)
    certificate = builder.sign(signer or key, hash_algorithm or hashes.SHA256())
    return certificate.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("name", sorted(HOST_KEYS))
def test_round_trip_for_every_host_key_type(name: str) -> None:
    host = PrivateKey.from_protobuf(bytes.fromhex(HOST_KEYS[name]))
    certified = make_certificate(host)
    assert isinstance(certified.private_key, ec.EllipticCurvePrivateKey)
    assert certified.private_key.curve.name == "secp256r1"
    remote = verify_certificate(certified.certificate_der())
    assert remote == host.public_key
    assert PeerId.from_public_key(remote) == PeerId.from_public_key(host.public_key)


def test_generated_certificate_is_fresh_self_signed_and_time_bounded() -> None:
    first = make_certificate(ED25519, lifetime=100.0, now=NOW)
    second = make_certificate(ED25519, lifetime=100.0, now=NOW)
    assert first.certificate_der() != second.certificate_der()
    certificate = first.certificate
    assert certificate.issuer == certificate.subject
    assert certificate.not_valid_after_utc == _utc(NOW + 100)
    assert certificate.not_valid_before_utc <= _utc(NOW)
    extension = certificate.extensions.get_extension_for_oid(LIBP2P_TLS_OID)
    assert not extension.critical
    assert verify_certificate(first.certificate_der(), now=NOW + 99) == ED25519.public_key


@pytest.mark.parametrize(("certificate_hex", "peer_id"), SPEC_CERTIFICATES)
def test_spec_vectors_authenticate_their_peer_id(certificate_hex: str, peer_id: str) -> None:
    host_key = verify_certificate(bytes.fromhex(certificate_hex))
    assert str(PeerId.from_public_key(host_key)) == peer_id


def test_spec_invalid_vector_is_rejected() -> None:
    with pytest.raises(CertificateError, match="signature in libp2p extension is invalid"):
        verify_certificate(bytes.fromhex(SPEC_INVALID_CERTIFICATE))


def test_expired_and_not_yet_valid() -> None:
    der = make_certificate(ED25519, lifetime=10.0, now=NOW).certificate_der()
    with pytest.raises(CertificateError, match="expired"):
        verify_certificate(der, now=NOW + 11)
    with pytest.raises(CertificateError, match="not yet valid"):
        verify_certificate(der, now=NOW - 7200)
    assert issubclass(CertificateError, SecurityError)


def test_default_clock_is_used() -> None:
    der = make_certificate(ED25519, lifetime=1.0, now=time.time() - 10).certificate_der()
    with pytest.raises(CertificateError, match="expired"):
        verify_certificate(der)


def test_wrong_self_signature() -> None:
    der = _build(signer=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(CertificateError, match="self-signature is invalid"):
        verify_certificate(der, now=NOW)


def test_weak_signature_hash_rejected() -> None:
    der = _build(hash_algorithm=hashes.SHA224())
    with pytest.raises(CertificateError, match="hash sha224 not accepted"):
        verify_certificate(der, now=NOW)


def test_missing_extension() -> None:
    with pytest.raises(CertificateError, match="lacks the libp2p public key extension"):
        verify_certificate(_build(host=None), now=NOW)


def test_forged_extension_claims_another_peers_key() -> None:
    # The certificate owner signs with its own host key but claims OTHER's public key.
    der = _build(signed_key=None, host=ED25519)
    assert verify_certificate(der, now=NOW) == ED25519.public_key
    forged_value = _signed_key(ED25519, b"irrelevant", claimed=OTHER)
    forged = _build(signed_key=forged_value)
    with pytest.raises(CertificateError, match="signature in libp2p extension is invalid"):
        verify_certificate(forged, now=NOW)


def test_extension_copied_from_another_certificate() -> None:
    # A valid SignedKey of a victim, replayed into a certificate over another TLS key.
    victim = make_certificate(OTHER).certificate
    stolen = victim.extensions.get_extension_for_oid(LIBP2P_TLS_OID).value
    assert isinstance(stolen, x509.UnrecognizedExtension)
    with pytest.raises(CertificateError, match="signature in libp2p extension is invalid"):
        verify_certificate(_build(signed_key=stolen.value), now=NOW)


def test_unknown_critical_extension_rejected_unknown_noncritical_ignored() -> None:
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.5"), b"\x05\x00")
    with pytest.raises(CertificateError, match=r"unknown critical extension 1\.2\.3\.4\.5"):
        verify_certificate(_build(extensions=[(unknown, True)]), now=NOW)
    assert verify_certificate(_build(extensions=[(unknown, False)]), now=NOW)
    constraints = x509.BasicConstraints(ca=False, path_length=None)
    assert verify_certificate(_build(extensions=[(constraints, True)], critical=True), now=NOW)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (b"", "expected DER tag 0x30 for SignedKey"),
        (b"\x30", "truncated DER"),
        (b"\x04\x00", "expected DER tag"),
        (_der_sequence(_der_tlv(0x04, b"x")), "expected DER tag 0x04 for SignedKey.signature"),
        (_der_sequence(_der_tlv(0x04, b"x"), _der_tlv(0x04, b"y"), b"\x05\x00"), "trailing"),
        (_der_sequence(_der_tlv(0x04, b"x"), _der_tlv(0x04, b"y")) + b"\x00", "trailing bytes"),
        (b"\x30\x81\x05" + b"\x04\x00" * 2 + b"\x05", "non-minimal DER length"),
        (b"\x30\x80\x00\x00", "bad DER length"),
        (b"\x30\x05\x04\x00", "truncated DER"),
        (_der_sequence(_der_tlv(0x04, b"\x08\x09"), _der_tlv(0x04, b"y")), "invalid host key"),
    ],
)
def test_malformed_signed_key(value: bytes, match: str) -> None:
    with pytest.raises(CertificateError, match=match):
        verify_certificate(_build(signed_key=value), now=NOW)


def test_malformed_and_oversized_der() -> None:
    with pytest.raises(CertificateError, match="malformed certificate"):
        verify_certificate(b"\x30\x03garbage")
    with pytest.raises(CertificateError, match="exceeds"):
        verify_certificate(b"\x30" * (MAX_CERTIFICATE_SIZE + 1))


def test_non_positive_serial_number() -> None:
    # The serial is the INTEGER after the version in the TBSCertificate: 02 01 07 in _build.
    der = bytearray(_build())
    index = der.index(b"\xa0\x03\x02\x01\x02\x02\x01\x07") + 7
    der[index] = 0x00
    with pytest.raises(CertificateError, match="serial number is not positive"):
        verify_certificate(bytes(der), now=NOW)


def test_lifetime_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        make_certificate(ED25519, lifetime=0)


@given(st.binary(max_size=200))
def test_signed_key_parser_raises_only_certificate_error(data: bytes) -> None:
    try:
        _decode_signed_key(data)
    except CertificateError:
        pass


VALID_DER = make_certificate(ED25519).certificate_der()


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(VALID_DER) - 1), st.integers(1, 255))
def test_any_flipped_byte_gives_certificate_error_or_the_same_key(index: int, flip: int) -> None:
    mutated = bytearray(VALID_DER)
    mutated[index] ^= flip
    try:
        key = verify_certificate(bytes(mutated))
    except CertificateError:
        return
    # A few bytes are not covered by a signature nor checked (the outer signature algorithm's
    # parameters, say); what verifies must still name the same host key.
    assert key == ED25519.public_key


@given(st.binary(max_size=600))
def test_random_bytes_give_certificate_error(data: bytes) -> None:
    with pytest.raises(CertificateError):
        verify_certificate(data)


def test_certificate_from_given_randomness_is_ed25519_and_repeats() -> None:
    made = [
        make_certificate(ED25519, now=NOW, random_bytes=random.Random(seed).randbytes)
        for seed in (1, 1, 2)
    ]
    first, again, other = (m.certificate_der() for m in made)
    assert isinstance(made[0].private_key, ed25519.Ed25519PrivateKey)
    assert first == again  # the same bytes make the same certificate
    assert other != first and len(other) == len(first)  # other bytes: same size
    assert verify_certificate(first, now=NOW) == ED25519.public_key
