"""Certificates made by js-libp2p (@libp2p/tls 3.1.10) verify here and name the peer js names.

The DER files and js-certificates.json in vectors/ are written by
tests/interop/js/tls-certs.mjs, which calls the same function js's TLS encrypter calls for each
connection and records the peer ID js itself derives from every certificate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from p2pstack.errors import CertificateError
from p2pstack.identity import LIBP2P_TLS_OID, PeerId, verify_certificate

VECTORS = Path(__file__).parent / "vectors"
MANIFEST: list[dict[str, Any]] = json.loads((VECTORS / "js-certificates.json").read_text())[
    "certificates"
]
YEAR = 365 * 24 * 3600.0


def _load(entry: dict[str, Any]) -> tuple[bytes, x509.Certificate]:
    der = (VECTORS / entry["file"]).read_bytes()
    return der, x509.load_der_x509_certificate(der)


def _inside(certificate: x509.Certificate) -> float:
    """A time one day into the certificate's validity period."""
    return certificate.not_valid_before_utc.timestamp() + 24 * 3600.0


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["host_key_type"] for e in MANIFEST])
def test_js_certificate_names_the_peer_js_names(entry: dict[str, Any]) -> None:
    der, certificate = _load(entry)
    key = verify_certificate(der, now=_inside(certificate))
    assert str(PeerId.from_public_key(key)) == entry["peer_id"]
    assert key.key_type.name.lower() == entry["host_key_type"]


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["host_key_type"] for e in MANIFEST])
def test_js_certificate_shape(entry: dict[str, Any]) -> None:
    # What js puts in its certificates (and what a verifier must cope with): the libp2p
    # extension first, marked critical; empty subject and issuer; ~100 years of validity.
    _, certificate = _load(entry)
    first = certificate.extensions[0]
    assert first.oid == LIBP2P_TLS_OID and first.critical
    assert len(certificate.subject) == 0 and len(certificate.issuer) == 0
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime.total_seconds() > 99 * YEAR


@pytest.mark.parametrize("entry", MANIFEST[:1], ids=[MANIFEST[0]["host_key_type"]])
def test_js_certificate_outside_its_validity_is_refused(entry: dict[str, Any]) -> None:
    der, certificate = _load(entry)
    before = certificate.not_valid_before_utc.timestamp() - 2 * 24 * 3600.0
    after = certificate.not_valid_after_utc.timestamp() + 2 * 24 * 3600.0
    for now in (before, after):
        with pytest.raises(CertificateError):
            verify_certificate(der, now=now)


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["host_key_type"] for e in MANIFEST])
def test_js_certificate_with_a_flipped_byte_is_refused(entry: dict[str, Any]) -> None:
    der, certificate = _load(entry)
    # Flip one byte of the host key's signature inside the libp2p extension (its last byte).
    extension = certificate.extensions.get_extension_for_oid(LIBP2P_TLS_OID).value
    assert isinstance(extension, x509.UnrecognizedExtension)
    at = der.index(extension.value) + len(extension.value) - 1
    forged = der[:at] + bytes([der[at] ^ 0x01]) + der[at + 1 :]
    with pytest.raises(CertificateError):
        verify_certificate(forged, now=_inside(certificate))
