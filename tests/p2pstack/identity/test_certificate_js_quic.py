"""The certificate js-libp2p's QUIC transport presents (@chainsafe/libp2p-quic 2.1.1: rustls with
the rust libp2p-tls certificate inside) verifies here and names the peer js names.

vectors/js-quic-ed25519.der was captured from the js interop peer (``peer.mjs --listen
/ip4/127.0.0.1/udp/0/quic-v1 --seed 12``) as the server certificate of a QUIC handshake with
our transport; js printed the peer ID below for that identity.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from p2pstack.errors import CertificateError
from p2pstack.identity import LIBP2P_TLS_OID, PeerId, verify_certificate

DER = (Path(__file__).parent / "vectors" / "js-quic-ed25519.der").read_bytes()
JS_PEER_ID = "12D3KooWFgT5WdvhsvQF74ibA6h8Rs7CBa2ZTwBT11Q8g8Z47gox"
NOW = datetime(2026, 12, 1, tzinfo=UTC).timestamp()


def test_js_quic_certificate_names_the_peer_js_names() -> None:
    key = verify_certificate(DER, now=NOW)
    assert str(PeerId.from_public_key(key)) == JS_PEER_ID
    assert key.key_type.name.lower() == "ed25519"


def test_js_quic_certificate_shape() -> None:
    # Unlike @libp2p/tls (about 100 years from now), rust's libp2p-tls is valid 1975-4096.
    certificate = x509.load_der_x509_certificate(DER)
    (extension,) = certificate.extensions
    assert extension.oid == LIBP2P_TLS_OID and extension.critical
    assert len(certificate.subject) == 0 and len(certificate.issuer) == 0
    assert certificate.not_valid_before_utc.year == 1975
    assert certificate.not_valid_after_utc.year == 4096
    public_key = certificate.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"


def test_js_quic_certificate_before_its_validity_is_refused() -> None:
    before = datetime(1974, 12, 31, tzinfo=UTC).timestamp()
    with pytest.raises(CertificateError):
        verify_certificate(DER, now=before)


def test_js_quic_certificate_with_a_changed_byte_is_refused() -> None:
    # The last byte belongs to the certificate's own ECDSA signature.
    tampered = DER[:-1] + bytes([DER[-1] ^ 0x01])
    with pytest.raises(CertificateError):
        verify_certificate(tampered, now=NOW)
