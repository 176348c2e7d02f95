from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pstack.identity import KeyType, PeerId, PrivateKey, generate_private_key
from protocols.kad import ipns_pb2
from protocols.kad._ipns import (
    MAX_IPNS_RECORD_SIZE,
    SIGNATURE_V2_PREFIX,
    format_rfc3339_ns,
    ipns_key,
    make_ipns_record,
    parse_ipns_record,
    parse_rfc3339_ns,
    verify_ipns_record,
)
from protocols.kad._types import RecordValidationError
from tests.protocols.kad._ipns_vectors import VECTORS

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NOW_S = NOW.timestamp()
LATER = NOW + timedelta(hours=24)


def _key(seed: int) -> PrivateKey:
    return generate_private_key(random_bytes=lambda n: bytes([seed]) * n)


def _check(name: PeerId, raw: bytes, now: float = NOW_S) -> bytes:
    record = parse_ipns_record(raw)
    verify_ipns_record(record, name, now=now)
    return record.value


# --- the spec's test vectors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("v1-v2", b"/ipfs/bafkqaddwgevxmmraojswg33smq"),
        (
            "v1-v2-broken-signature-v1",
            b"/ipfs/bafkqahtwgevxmmrao5uxi2bamjzg623fnyqhg2lhnzqxi5lsmuqhmmi",
        ),
        ("v2", b"/ipfs/bafkqadtwgiww63tmpeqhezldn5zgi"),
    ],
)
def test_spec_vectors_valid(kind: str, value: bytes) -> None:
    name, hex_record = VECTORS[kind]
    assert _check(PeerId.from_string(name), bytes.fromhex(hex_record), time.time()) == value


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("v1", "V1-only"),
        ("v1-v2-broken-v1-value", "differs from the signed CBOR"),
        ("v1-v2-broken-signature-v2", "signatureV2 does not verify"),
    ],
)
def test_spec_vectors_invalid(kind: str, reason: str) -> None:
    name, hex_record = VECTORS[kind]
    with pytest.raises(RecordValidationError, match=reason):
        _check(PeerId.from_string(name), bytes.fromhex(hex_record), time.time())


def test_vector_cbor_is_reproduced_by_our_encoder() -> None:
    record = parse_ipns_record(bytes.fromhex(VECTORS["v2"][1]))
    assert cbor2.dumps(cbor2.loads(record.data), canonical=True) == record.data
    assert record.sequence == 0
    assert record.ttl_ns == 1_800_000_000_000
    assert record.validity == b"2123-08-14T12:17:03.694052Z"


def test_vector_expires_at_its_eol() -> None:
    name, hex_record = VECTORS["v2"]
    eol = datetime(2123, 8, 14, 12, 17, 3, 694052, tzinfo=UTC).timestamp()
    _check(PeerId.from_string(name), bytes.fromhex(hex_record), eol - 1)
    with pytest.raises(RecordValidationError, match="end of life"):
        _check(PeerId.from_string(name), bytes.fromhex(hex_record), eol + 1)


# --- records we make ---------------------------------------------------------------------------


@pytest.mark.parametrize("v1", [True, False])
@pytest.mark.parametrize("key_type", [KeyType.ED25519, KeyType.SECP256K1, KeyType.ECDSA])
def test_make_then_verify(key_type: KeyType, v1: bool) -> None:
    key = generate_private_key(key_type)
    name = PeerId.from_public_key(key.public_key)
    raw = make_ipns_record(key, b"/ipfs/bafy", sequence=7, validity=LATER, v1_compatible=v1)
    record = parse_ipns_record(raw)
    verify_ipns_record(record, name, now=NOW_S)
    assert (record.value, record.sequence, record.ttl_ns) == (b"/ipfs/bafy", 7, 300 * 10**9)
    assert record.eol_ns == int(LATER.timestamp()) * 10**9
    # pubKey only when the name cannot inline the key (ECDSA is hashed).
    assert (record.public_key is not None) == (key_type == KeyType.ECDSA)
    entry = ipns_pb2.IpnsEntry.FromString(raw)
    assert entry.HasField("signatureV1") == v1
    if v1:
        assert key.public_key.verify(entry.value + entry.validity + b"EOL", entry.signatureV1)


def test_wrong_key_rejected() -> None:
    raw = make_ipns_record(_key(1), b"/ipfs/x", sequence=1, validity=LATER)
    other = PeerId.from_public_key(_key(2).public_key)
    with pytest.raises(RecordValidationError, match="signatureV2"):
        _check(other, raw)


def test_pubkey_of_another_name_rejected() -> None:
    key = generate_private_key(KeyType.ECDSA)
    raw = make_ipns_record(key, b"/ipfs/x", sequence=1, validity=LATER)
    other = PeerId.from_public_key(generate_private_key(KeyType.ECDSA).public_key)
    with pytest.raises(RecordValidationError, match="not the key of the record's name"):
        _check(other, raw)


def test_hashed_name_without_pubkey_rejected() -> None:
    key = generate_private_key(KeyType.ECDSA)
    entry = ipns_pb2.IpnsEntry.FromString(make_ipns_record(key, b"/x", sequence=1, validity=LATER))
    entry.ClearField("pubKey")
    with pytest.raises(RecordValidationError, match="inlines no key"):
        _check(PeerId.from_public_key(key.public_key), entry.SerializeToString())


def test_tampered_signature_rejected() -> None:
    key = _key(3)
    entry = ipns_pb2.IpnsEntry.FromString(make_ipns_record(key, b"/x", sequence=1, validity=LATER))
    entry.signatureV2 = bytes([entry.signatureV2[0] ^ 1]) + entry.signatureV2[1:]
    with pytest.raises(RecordValidationError, match="signatureV2"):
        _check(PeerId.from_public_key(key.public_key), entry.SerializeToString())


def test_expired_rejected() -> None:
    key = _key(4)
    raw = make_ipns_record(key, b"/x", sequence=1, validity=NOW - timedelta(seconds=1))
    with pytest.raises(RecordValidationError, match="end of life"):
        _check(PeerId.from_public_key(key.public_key), raw)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("value", b"/ipfs/other"),
        ("validity", b"2030-01-01T00:00:00.000000000Z"),
        ("sequence", 8),
        ("ttl", 1),
    ],
)
def test_v1_v2_mismatch_rejected(field: str, value: object) -> None:
    key = _key(5)
    entry = ipns_pb2.IpnsEntry.FromString(make_ipns_record(key, b"/x", sequence=7, validity=LATER))
    setattr(entry, field, value)
    with pytest.raises(RecordValidationError, match=f"V1 field {field} differs"):
        _check(PeerId.from_public_key(key.public_key), entry.SerializeToString())


def test_v1_value_alone_must_match() -> None:
    key = _key(6)
    raw = make_ipns_record(key, b"/x", sequence=7, validity=LATER, v1_compatible=False)
    entry = ipns_pb2.IpnsEntry.FromString(raw)
    entry.value = b"/x"  # V1 fields now "present": the absent ones read as 0 and mismatch
    with pytest.raises(RecordValidationError, match="differs"):
        parse_ipns_record(entry.SerializeToString())


def _signed(key: PrivateKey, document: object) -> bytes:
    data = cbor2.dumps(document, canonical=True)
    return ipns_pb2.IpnsEntry(
        data=data, signatureV2=key.sign(SIGNATURE_V2_PREFIX + data)
    ).SerializeToString()


_GOOD = {
    "Value": b"/x",
    "Validity": b"2030-01-01T00:00:00Z",
    "ValidityType": 0,
    "Sequence": 1,
    "TTL": 5,
}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"ValidityType": 1}, "not EOL"),
        ({"Sequence": True}, "Sequence"),
        ({"Sequence": -1}, "Sequence"),
        ({"TTL": 1 << 64}, "uint64"),
        ({"Value": "/x"}, "Value"),
        ({"Validity": b"yesterday"}, "RFC 3339"),
        ({"Validity": b"2030-02-30T00:00:00Z"}, "not a valid time"),
    ],
)
def test_bad_cbor_fields_rejected(change: dict[str, object], reason: str) -> None:
    with pytest.raises(RecordValidationError, match=reason):
        parse_ipns_record(_signed(_key(7), {**_GOOD, **change}))


def test_extra_cbor_fields_are_ignored_and_signed() -> None:
    key = _key(8)
    raw = _signed(key, {**_GOOD, "_note": "hello"})
    assert _check(PeerId.from_public_key(key.public_key), raw) == b"/x"


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xff",
        ipns_pb2.IpnsEntry(data=b"\xa1", signatureV2=b"s").SerializeToString(),
        ipns_pb2.IpnsEntry(data=b"\x80", signatureV2=b"s").SerializeToString(),
        ipns_pb2.IpnsEntry(data=cbor2.dumps(_GOOD)).SerializeToString(),
        b"",
    ],
)
def test_malformed_rejected(raw: bytes) -> None:
    with pytest.raises(RecordValidationError):
        parse_ipns_record(raw)


def test_oversized_rejected() -> None:
    key = _key(9)
    raw = _signed(key, {**_GOOD, "_pad": b"x" * MAX_IPNS_RECORD_SIZE})
    with pytest.raises(RecordValidationError, match="over 10240"):
        parse_ipns_record(raw)
    with pytest.raises(ValueError, match="exceed"):
        make_ipns_record(key, b"x" * MAX_IPNS_RECORD_SIZE, sequence=1, validity=LATER)


def test_rfc3339() -> None:
    assert parse_rfc3339_ns(b"1970-01-01T00:00:00.000000001Z") == 1
    assert parse_rfc3339_ns(b"1970-01-01T01:00:00.5+01:00") == 500_000_000
    assert parse_rfc3339_ns(b"1970-01-01T00:00:00-00:30") == 1800 * 10**9
    moment = datetime(2030, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2)))
    assert format_rfc3339_ns(moment) == b"2030-01-02T01:04:05.000006000Z"
    assert parse_rfc3339_ns(format_rfc3339_ns(moment)) == int(moment.timestamp()) * 10**9 + 6000
    with pytest.raises(ValueError, match="timezone"):
        format_rfc3339_ns(datetime(2030, 1, 1))


def test_ipns_key() -> None:
    name = PeerId.from_public_key(_key(1).public_key)
    assert ipns_key(name) == b"/ipns/" + name.to_bytes()


@given(st.binary(max_size=2048))
def test_any_bytes_parse_or_raise_typed(raw: bytes) -> None:
    try:
        parse_ipns_record(raw)
    except RecordValidationError:
        pass


_cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.binary(max_size=20) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.sampled_from(sorted(_GOOD)), _cbor_values, max_size=5))
def test_any_cbor_document_parses_or_raises_typed(document: dict[str, object]) -> None:
    raw = ipns_pb2.IpnsEntry(data=cbor2.dumps(document), signatureV2=b"s").SerializeToString()
    try:
        parse_ipns_record(raw)
    except RecordValidationError:
        pass


# A V2-only record made with js: @libp2p/crypto Ed25519 key from seed 07*32, ``data`` encoded by
# cborg (the codec under js's @ipld/dag-cbor), Sequence 9n, TTL 300000000000n.
JS_NAME = "12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7"
JS_RECORD = (
    "4240ce016f4c1ad9635fa7de84edba1f263248d33c0a8ace42e724bf596accaa5091ac68dcf127fb8068f9be196e"
    "4dad53a1aeeddeeb4ca21755126b62819435db0f4a67a56354544c1b00000045d964b8006556616c7565512f6970"
    "66732f6261666b71616174696e656853657175656e6365096856616c6964697479581e323132352d30312d303154"
    "30303a30303a30302e3030303030303030305a6c56616c69646974795479706500"
)


def test_record_made_by_js() -> None:
    record = parse_ipns_record(bytes.fromhex(JS_RECORD))
    verify_ipns_record(record, PeerId.from_string(JS_NAME), now=NOW_S)
    assert (record.value, record.sequence, record.ttl_ns) == (b"/ipfs/bafkqaatine", 9, 300 * 10**9)
    assert cbor2.dumps(cbor2.loads(record.data), canonical=True) == record.data
    # Our encoder makes the same bytes for the same record from the same seed.
    key = generate_private_key(random_bytes=lambda n: bytes([7]) * n)
    assert PeerId.from_public_key(key.public_key) == PeerId.from_string(JS_NAME)
    ours = make_ipns_record(
        key,
        b"/ipfs/bafkqaatine",
        sequence=9,
        validity=datetime(2125, 1, 1, tzinfo=UTC),
        ttl_ns=300 * 10**9,
        v1_compatible=False,
    )
    assert ours == bytes.fromhex(JS_RECORD)
