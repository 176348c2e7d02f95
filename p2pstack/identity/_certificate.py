"""The libp2p TLS identity: a self-signed X.509 certificate carrying the host key in the libp2p
Public Key Extension (https://github.com/libp2p/specs/blob/master/tls/tls.md#peer-authentication).

Shared by the ``/tls/1.0.0`` security channel and QUIC-v1. The certificate is signed by a key
of its own (ECDSA P-256, unrelated to the host key, as the spec recommends); the extension holds
``SignedKey ::= SEQUENCE { publicKey OCTET STRING, signature OCTET STRING }`` where
``publicKey`` is the protobuf ``PublicKey`` of the host key and ``signature`` is the host key's
signature over ``b"libp2p-tls-handshake:" + SubjectPublicKeyInfo`` (DER) of the certificate.
"""

from __future__ import annotations

import datetime
import secrets
import time
import warnings
from collections.abc import Callable

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtensionOID, NameOID

from p2pstack.errors import CertificateError, InvalidKeyError
from p2pstack.identity._keys import MAX_PUBLIC_KEY_PROTOBUF_SIZE, PrivateKey, PublicKey

__all__ = [
    "ALPN_LIBP2P",
    "DEFAULT_CERTIFICATE_LIFETIME",
    "LIBP2P_TLS_OID",
    "MAX_CERTIFICATE_SIZE",
    "CertifiedKey",
    "make_certificate",
    "verify_certificate",
]

#: The libp2p Public Key Extension, "allocated by IANA to the libp2p project at Protocol Labs".
LIBP2P_TLS_OID = x509.ObjectIdentifier("1.3.6.1.4.1.53594.1.1")

#: The ALPN protocol id of libp2p's TLS handshake (tls.md "ALPN").
ALPN_LIBP2P = "libp2p"

#: Validity of the certificates ``make_certificate`` makes, in seconds (one year).
DEFAULT_CERTIFICATE_LIFETIME = 365 * 24 * 3600.0

#: NotBefore is set this far in the past (seconds) so that a peer whose clock is a little behind
#: still finds the certificate valid.
_CLOCK_SKEW = 3600.0

#: Largest certificate accepted: an RSA-4096 host key and a large certificate key fit well.
MAX_CERTIFICATE_SIZE = 16 * 1024

_SIGNING_PREFIX = b"libp2p-tls-handshake:"

#: Critical extensions we understand and may accept besides the libp2p one. The spec: a
#: certificate with a critical extension the endpoint does not understand MUST be rejected.
_UNDERSTOOD_CRITICAL = frozenset(
    {
        LIBP2P_TLS_OID,
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
    }
)

#: Certificate signature hashes accepted (None: Ed25519/Ed448, which hash internally): those of
#: the TLS 1.3 signature schemes (RFC 8446 section 4.2.3); SHA-1, MD5 and SHA-224 are refused.
_ACCEPTED_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)


@attrs.frozen(kw_only=True)
class CertifiedKey:
    """A libp2p certificate and the private key it was issued for (its own TLS key, not the
    host key).

    Attributes:
        certificate: the self-signed certificate with the libp2p Public Key Extension.
        private_key: the certificate's key, which signs the TLS handshake: ECDSA P-256, or
            Ed25519 when made from given randomness (simulations).
    """

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

    def certificate_der(self) -> bytes:
        """The certificate in DER form, as sent in the TLS Certificate message.

        Returns:
            The DER bytes.
        """
        return self.certificate.public_bytes(serialization.Encoding.DER)


def make_certificate(
    host_key: PrivateKey,
    *,
    lifetime: float = DEFAULT_CERTIFICATE_LIFETIME,
    now: float | None = None,
    random_bytes: Callable[[int], bytes] | None = None,
) -> CertifiedKey:
    """Make a fresh ECDSA P-256 key and a self-signed certificate that binds it to ``host_key``.

    Args:
        host_key: the libp2p host key whose peer ID the certificate proves.
        lifetime: seconds from ``now`` until NotAfter (NotBefore is an hour before ``now``).
        now: the current time (Unix seconds); the system clock when ``None``.
        random_bytes: for simulations: the certificate key is then an Ed25519 key made from
            these bytes and the serial number is drawn from them, so the certificate, and every
            handshake signature (Ed25519 signatures are deterministic), has the same size and
            content for the same bytes (ECDSA signatures vary by a few bytes).

    Returns:
        The certificate and its private key.

    Raises:
        ValueError: ``lifetime`` is not positive.
    """
    if lifetime <= 0:
        raise ValueError(f"certificate lifetime must be positive, got {lifetime}")
    current = time.time() if now is None else now
    private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    if random_bytes is None:
        private_key = ec.generate_private_key(ec.SECP256R1())
        serial = secrets.randbits(63) + 1
    else:
        private_key = ed25519.Ed25519PrivateKey.from_private_bytes(random_bytes(32))
        # 19 decimal digits and 8 DER bytes always: the certificate's size is fixed.
        serial = (1 << 62) | int.from_bytes(random_bytes(8), "big") >> 2
    spki = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signature = host_key.sign(_SIGNING_PREFIX + spki)
    signed_key = _der_sequence(
        _der_tlv(_OCTET_STRING, host_key.public_key.to_protobuf()),
        _der_tlv(_OCTET_STRING, signature),
    )
    # No name is required; a serial number attribute keeps the subject unique and non-empty.
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, str(serial))])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(serial)
        .not_valid_before(_utc(current - _CLOCK_SKEW))
        .not_valid_after(_utc(current + lifetime))
        # Not critical: every libp2p implementation knows it, and a non-critical extension
        # cannot make a stricter verifier refuse the certificate.
        .add_extension(x509.UnrecognizedExtension(LIBP2P_TLS_OID, signed_key), critical=False)
        .sign(private_key, None if random_bytes is not None else hashes.SHA256())
    )
    return CertifiedKey(certificate=certificate, private_key=private_key)


def verify_certificate(der: bytes, *, now: float | None = None) -> PublicKey:
    """Check a peer's libp2p certificate and return the host key it proves.

    Checks, in order: the DER parses; the certificate is valid at ``now``; it is self-signed
    with an accepted algorithm; no critical extension other than those understood; the libp2p
    Public Key Extension is present once and holds a host key whose signature over
    ``b"libp2p-tls-handshake:" + SubjectPublicKeyInfo`` is valid.

    Args:
        der: the certificate, DER-encoded, at most ``MAX_CERTIFICATE_SIZE`` bytes.
        now: the current time (Unix seconds); the system clock when ``None``.

    Returns:
        The host public key (derive the peer ID with ``PeerId.from_public_key``).

    Raises:
        CertificateError: the certificate is malformed, expired or not yet valid, wrongly
            signed, has an unknown critical extension, lacks the libp2p extension, or its
            extension's key or signature is invalid. The message names the cause.
    """
    if len(der) > MAX_CERTIFICATE_SIZE:
        raise CertificateError(f"certificate of {len(der)} bytes exceeds {MAX_CERTIFICATE_SIZE}")
    try:
        with warnings.catch_warnings():
            # A non-positive serial number only warns (for now); it is refused just below.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            certificate = x509.load_der_x509_certificate(der)
            serial = certificate.serial_number
    except (ValueError, x509.InvalidVersion) as exc:
        raise CertificateError(f"malformed certificate: {exc}") from exc
    if serial <= 0:
        # RFC 5280 section 4.1.2.2: "The serial number MUST be a positive integer" (go refuses
        # others too).
        raise CertificateError("certificate serial number is not positive")
    _check_validity(certificate, time.time() if now is None else now)
    _check_self_signature(certificate)
    signed_key = _libp2p_extension(certificate)
    host_key = _decode_signed_key(signed_key)
    return _check_host_signature(certificate, host_key)


def _utc(timestamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)


def _check_validity(certificate: x509.Certificate, now: float) -> None:
    current = _utc(now)
    if current < certificate.not_valid_before_utc:
        raise CertificateError(
            f"certificate not yet valid: NotBefore {certificate.not_valid_before_utc.isoformat()}"
        )
    if current > certificate.not_valid_after_utc:
        raise CertificateError(
            f"certificate expired: NotAfter {certificate.not_valid_after_utc.isoformat()}"
        )


def _check_self_signature(certificate: x509.Certificate) -> None:
    try:
        hash_algorithm = certificate.signature_hash_algorithm
    except UnsupportedAlgorithm as exc:
        raise CertificateError(f"unsupported certificate signature algorithm: {exc}") from exc
    if hash_algorithm is not None and not isinstance(hash_algorithm, _ACCEPTED_HASHES):
        raise CertificateError(f"certificate signature hash {hash_algorithm.name} not accepted")
    try:
        certificate.verify_directly_issued_by(certificate)
    except InvalidSignature as exc:
        raise CertificateError("certificate self-signature is invalid") from exc
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CertificateError(f"certificate is not properly self-signed: {exc}") from exc


def _libp2p_extension(certificate: x509.Certificate) -> bytes:
    try:
        extensions = certificate.extensions
    except (x509.DuplicateExtension, ValueError) as exc:
        raise CertificateError(f"malformed certificate extensions: {exc}") from exc
    found: bytes | None = None
    for extension in extensions:
        if extension.critical and extension.oid not in _UNDERSTOOD_CRITICAL:
            raise CertificateError(
                f"certificate has an unknown critical extension {extension.oid.dotted_string}"
            )
        if extension.oid == LIBP2P_TLS_OID:
            value = extension.value
            if not isinstance(value, x509.UnrecognizedExtension):  # pragma: no cover
                raise CertificateError("libp2p extension parsed as a known extension")
            found = value.value
    if found is None:
        raise CertificateError("certificate lacks the libp2p public key extension")
    return found


def _decode_signed_key(data: bytes) -> tuple[PublicKey, bytes]:
    body = _der_expect(data, _SEQUENCE, "SignedKey")
    key_bytes, rest = _der_read(body, _OCTET_STRING, "SignedKey.publicKey")
    signature, rest = _der_read(rest, _OCTET_STRING, "SignedKey.signature")
    if rest:
        raise CertificateError("SignedKey has trailing fields")
    if len(key_bytes) > MAX_PUBLIC_KEY_PROTOBUF_SIZE:
        raise CertificateError("SignedKey.publicKey is too large")
    try:
        host_key = PublicKey.from_protobuf(key_bytes)
    except InvalidKeyError as exc:
        raise CertificateError(f"invalid host key in libp2p extension: {exc}") from exc
    return host_key, signature


def _check_host_signature(
    certificate: x509.Certificate, signed: tuple[PublicKey, bytes]
) -> PublicKey:
    host_key, signature = signed
    # The SubjectPublicKeyInfo exactly as the certificate encodes it: the TBSCertificate's
    # seventh field (after version [0], serial, signature, issuer, validity, subject).
    spki = _tbs_subject_public_key_info(certificate.tbs_certificate_bytes)
    if not host_key.verify(_SIGNING_PREFIX + spki, signature):
        raise CertificateError("host key signature in libp2p extension is invalid")
    return host_key


def _tbs_subject_public_key_info(tbs: bytes) -> bytes:
    rest = _der_expect(tbs, _SEQUENCE, "TBSCertificate")
    if rest[:1] == b"\xa0":  # explicit [0] version
        _, rest = _der_read(rest, 0xA0, "version")
    for field in ("serialNumber", "signature", "issuer", "validity", "subject"):
        _, rest = _der_read_any(rest, field)
    start = len(tbs) - len(rest)
    _, after = _der_read(rest, _SEQUENCE, "subjectPublicKeyInfo")
    return tbs[start : len(tbs) - len(after)]


# A minimal strict DER reader/writer: definite, minimally encoded lengths only.
_SEQUENCE = 0x30
_OCTET_STRING = 0x04


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der_tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(value)) + value


def _der_sequence(*items: bytes) -> bytes:
    return _der_tlv(_SEQUENCE, b"".join(items))


def _der_read_any(data: bytes, what: str) -> tuple[bytes, bytes]:
    if len(data) < 2:
        raise CertificateError(f"truncated DER in {what}")
    first = data[1]
    if first < 0x80:
        length, offset = first, 2
    else:
        count = first & 0x7F
        raw = data[2 : 2 + count]
        if count == 0 or count > 4 or len(raw) != count or raw[0] == 0:
            raise CertificateError(f"bad DER length in {what}")
        length, offset = int.from_bytes(raw, "big"), 2 + count
        if length < 0x80:
            raise CertificateError(f"non-minimal DER length in {what}")
    end = offset + length
    if end > len(data):
        raise CertificateError(f"truncated DER in {what}")
    return data[offset:end], data[end:]


def _der_read(data: bytes, tag: int, what: str) -> tuple[bytes, bytes]:
    if not data or data[0] != tag:
        raise CertificateError(f"expected DER tag {tag:#04x} for {what}")
    return _der_read_any(data, what)


def _der_expect(data: bytes, tag: int, what: str) -> bytes:
    value, rest = _der_read(data, tag, what)
    if rest:
        raise CertificateError(f"trailing bytes after {what}")
    return value
