"""IPNS V2 records: parse, verify and create the signed ``IpnsEntry`` of an IPNS name
(https://specs.ipfs.tech/ipns/ipns-record/).

The signed part is ``IpnsEntry.data``, a DAG-CBOR map holding ``Value``, ``Validity``,
``ValidityType``, ``Sequence`` and ``TTL``; ``signatureV2`` signs ``b"ipns-signature:" + data``.
The legacy V1 protobuf fields, when present, must repeat the CBOR values ("Record Verification"
step 7); ``signatureV1`` is never trusted. CBOR is read and written with ``cbor2``: its canonical
mode sorts map keys by length then bytes, which is the DAG-CBOR order the signature depends on.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime
from typing import Any

import attrs
import cbor2
from google.protobuf.message import DecodeError

from p2pstack.errors import InvalidKeyError
from p2pstack.identity import PeerId, PrivateKey, PublicKey
from protocols.kad import ipns_pb2
from protocols.kad._types import RecordValidationError

__all__ = [
    "DEFAULT_IPNS_TTL_NS",
    "MAX_IPNS_RECORD_SIZE",
    "SIGNATURE_V2_PREFIX",
    "IpnsRecord",
    "format_rfc3339_ns",
    "ipns_key",
    "ipns_select_key",
    "make_ipns_record",
    "parse_ipns_record",
    "parse_rfc3339_ns",
    "verify_ipns_record",
]

#: "IPNS implementations MUST support sending and receiving a serialized IpnsEntry less than or
#: equal to 10 KiB in size"; larger ones are rejected before parsing.
MAX_IPNS_RECORD_SIZE = 10 * 1024
#: Prepended to ``data`` before signing (spec "Record Creation", step 5).
SIGNATURE_V2_PREFIX = b"ipns-signature:"
#: The spec's suggested cache TTL: 5 minutes, in nanoseconds.
DEFAULT_IPNS_TTL_NS = 300 * 10**9
_EOL = 0
_U64_MAX = (1 << 64) - 1
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)


@attrs.frozen(kw_only=True)
class IpnsRecord:
    """A parsed IPNS record whose CBOR and V1 fields agree (not yet signature-checked).

    Attributes:
        value: the content path the name points at (``data[Value]``).
        validity: the EOL as written, RFC 3339 ASCII bytes.
        eol_ns: the EOL as nanoseconds since the UNIX epoch.
        sequence: the record's version.
        ttl_ns: the cache hint, in nanoseconds.
        data: the signed DAG-CBOR bytes.
        signature_v2: signature over ``SIGNATURE_V2_PREFIX + data``.
        public_key: the ``pubKey`` field (protobuf ``PublicKey``), or ``None``.
    """

    value: bytes
    validity: bytes
    eol_ns: int
    sequence: int
    ttl_ns: int
    data: bytes
    signature_v2: bytes
    public_key: bytes | None


def ipns_key(name: PeerId) -> bytes:
    """The DHT record key of an IPNS name: ``b"/ipns/" + <binary peer ID>``."""
    return b"/ipns/" + name.to_bytes()


def parse_rfc3339_ns(text: bytes) -> int:
    """Parse an RFC 3339 timestamp (fractional seconds up to nanoseconds) into nanoseconds since
    the UNIX epoch.

    Raises:
        RecordValidationError: not such a timestamp.
    """
    try:
        match = _RFC3339.fullmatch(text.decode("ascii"))
    except UnicodeDecodeError:
        match = None
    if match is None:
        raise RecordValidationError("IPNS validity is not an RFC 3339 timestamp")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    try:
        datetime(year, month, day, hour, minute, second)  # range checks only
    except ValueError as exc:
        raise RecordValidationError(f"IPNS validity is not a valid time: {exc}") from exc
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    zone = match.group(8)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    fraction = (match.group(7) or "").ljust(9, "0")
    return seconds * 10**9 + int(fraction)


def format_rfc3339_ns(moment: datetime) -> bytes:
    """Write an aware datetime as UTC RFC 3339 with nine fractional digits, as js-ipns does
    (``2030-01-01T00:00:00.000000000Z``).

    Raises:
        ValueError: ``moment`` is naive.
    """
    if moment.tzinfo is None:
        raise ValueError("IPNS validity needs a timezone-aware datetime")
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond * 1000:09d}Z".encode("ascii")


def _decode_cbor(data: bytes) -> dict[str, Any]:
    try:
        document = cbor2.loads(data)
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise RecordValidationError(f"IPNS data is not CBOR: {exc}") from exc
    if not isinstance(document, dict):
        raise RecordValidationError("IPNS data is not a CBOR map")
    return document


def _bytes_field(document: dict[str, Any], name: str) -> bytes:
    found = document.get(name)
    if not isinstance(found, bytes):
        raise RecordValidationError(f"IPNS data lacks {name} of type bytes")
    return found


def _uint_field(document: dict[str, Any], name: str) -> int:
    found = document.get(name)
    # bool is an int subclass; CBOR true/false are not integers.
    if not isinstance(found, int) or isinstance(found, bool):
        raise RecordValidationError(f"IPNS data lacks {name} of type int")
    if not 0 <= found <= _U64_MAX:
        raise RecordValidationError(f"IPNS data {name} is not a uint64")
    return found


def _check_v1_copies(entry: ipns_pb2.IpnsEntry, record: IpnsRecord) -> None:
    """Spec step 7: with ``signatureV1`` or ``value`` present, every V1 field must repeat the
    CBOR (an absent field reads as its default, as in go's check)."""
    if not (entry.HasField("signatureV1") or entry.HasField("value")):
        return
    pairs = (
        ("value", entry.value, record.value),
        ("validity", entry.validity, record.validity),
        ("validityType", entry.validityType, _EOL),
        ("sequence", entry.sequence, record.sequence),
        ("ttl", entry.ttl, record.ttl_ns),
    )
    for name, legacy, signed in pairs:
        if legacy != signed:
            raise RecordValidationError(f"IPNS V1 field {name} differs from the signed CBOR")


def parse_ipns_record(raw: bytes) -> IpnsRecord:
    """Parse a serialized ``IpnsEntry`` and check its structure (spec verification steps 1, 2, 4
    and 7, and the validity type).

    Raises:
        RecordValidationError: oversized, not protobuf, no ``data``/``signatureV2``, CBOR
            malformed or missing a field, unsupported validity type, bad timestamp, or V1 fields
            contradicting the CBOR.
    """
    if len(raw) > MAX_IPNS_RECORD_SIZE:
        raise RecordValidationError(f"IPNS record over {MAX_IPNS_RECORD_SIZE} bytes")
    entry = ipns_pb2.IpnsEntry()
    try:
        entry.ParseFromString(raw)
    except DecodeError as exc:
        raise RecordValidationError(f"IPNS record is not an IpnsEntry: {exc}") from exc
    if not entry.signatureV2 or not entry.data:
        raise RecordValidationError("IPNS record lacks signatureV2 or data (V1-only record)")
    document = _decode_cbor(entry.data)
    if _uint_field(document, "ValidityType") != _EOL:
        raise RecordValidationError("IPNS validity type is not EOL")
    validity = _bytes_field(document, "Validity")
    record = IpnsRecord(
        value=_bytes_field(document, "Value"),
        validity=validity,
        eol_ns=parse_rfc3339_ns(validity),
        sequence=_uint_field(document, "Sequence"),
        ttl_ns=_uint_field(document, "TTL"),
        data=entry.data,
        signature_v2=entry.signatureV2,
        public_key=entry.pubKey if entry.HasField("pubKey") else None,
    )
    _check_v1_copies(entry, record)
    return record


def _signing_key(record: IpnsRecord, name: PeerId) -> PublicKey:
    if record.public_key is not None:
        try:
            key = PublicKey.from_protobuf(record.public_key)
        except InvalidKeyError as exc:
            raise RecordValidationError(f"IPNS pubKey is not a public key: {exc}") from exc
        if not name.matches(key):
            raise RecordValidationError("IPNS pubKey is not the key of the record's name")
        return key
    inlined = name.extract_public_key()
    if inlined is None:
        raise RecordValidationError("IPNS record has no pubKey and its name inlines no key")
    return inlined


def verify_ipns_record(record: IpnsRecord, name: PeerId, *, now: float) -> None:
    """Check the signature against the name's key and the EOL against ``now`` (spec steps 3, 5,
    6 and 8).

    Args:
        record: from :func:`parse_ipns_record`.
        name: the IPNS name (the peer ID in the record's key).
        now: the current wall-clock time, UNIX seconds.

    Raises:
        RecordValidationError: wrong or missing key, bad signature, or EOL not after ``now``.
    """
    key = _signing_key(record, name)
    if not key.verify(SIGNATURE_V2_PREFIX + record.data, record.signature_v2):
        raise RecordValidationError("IPNS signatureV2 does not verify")
    if record.eol_ns <= int(now * 10**9):
        raise RecordValidationError("IPNS record is past its end of life")


def ipns_select_key(record: IpnsRecord) -> tuple[int, int, bytes]:
    """The ordering of records of one name: higher sequence, then later EOL, then larger
    ``data`` bytes (so that equal-looking records still order deterministically)."""
    return record.sequence, record.eol_ns, record.data


def make_ipns_record(
    private_key: PrivateKey,
    value: bytes,
    *,
    sequence: int,
    validity: datetime,
    ttl_ns: int = DEFAULT_IPNS_TTL_NS,
    v1_compatible: bool = True,
) -> bytes:
    """Create and sign a serialized IPNS record for the name of ``private_key``.

    Args:
        private_key: the name's key; its public key goes into ``pubKey`` when the peer ID cannot
            inline it (RSA, ECDSA).
        value: the content path, e.g. ``b"/ipfs/bafy..."``.
        sequence: the version, higher than any earlier record of the name.
        validity: the end of life, timezone-aware.
        ttl_ns: the cache hint in nanoseconds.
        v1_compatible: also write the legacy V1 fields and ``signatureV1`` (go and js still do by
            default, for old resolvers); ``False`` gives a compact V2-only record.

    Returns:
        The ``IpnsEntry`` bytes.

    Raises:
        ValueError: naive ``validity``, a negative or over-64-bit number, or a record over
            :data:`MAX_IPNS_RECORD_SIZE`.
    """
    if not (0 <= sequence <= _U64_MAX and 0 <= ttl_ns <= _U64_MAX):
        raise ValueError("sequence and ttl_ns must be uint64")
    validity_text = format_rfc3339_ns(validity)
    document = {
        "Value": bytes(value),
        "Validity": validity_text,
        "ValidityType": _EOL,
        "Sequence": sequence,
        "TTL": ttl_ns,
    }
    data = cbor2.dumps(document, canonical=True)
    entry = ipns_pb2.IpnsEntry(data=data, signatureV2=private_key.sign(SIGNATURE_V2_PREFIX + data))
    public_key = private_key.public_key
    if PeerId.from_public_key(public_key).extract_public_key() is None:
        entry.pubKey = public_key.to_protobuf()
    if v1_compatible:
        entry.value = bytes(value)
        entry.validity = validity_text
        entry.validityType = ipns_pb2.IpnsEntry.EOL
        entry.sequence = sequence
        entry.ttl = ttl_ns
        entry.signatureV1 = private_key.sign(bytes(value) + validity_text + b"EOL")
    raw = entry.SerializeToString()
    if len(raw) > MAX_IPNS_RECORD_SIZE:
        raise ValueError(f"IPNS record would exceed {MAX_IPNS_RECORD_SIZE} bytes")
    return raw
