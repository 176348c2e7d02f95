from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pstack.identity import KeyType, PeerId, PrivateKey, generate_private_key
from protocols.kad._ipns import ipns_key, make_ipns_record
from protocols.kad._types import RecordValidationError
from protocols.kad._validation import (
    IpnsValidator,
    PassthroughValidator,
    PublicKeyValidator,
    Validator,
    Validators,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _key(seed: int, key_type: KeyType = KeyType.ED25519) -> PrivateKey:
    return generate_private_key(key_type, random_bytes=lambda n: bytes([seed]) * n)


def _pk_key(key: PrivateKey) -> bytes:
    return b"/pk/" + PeerId.from_public_key(key.public_key).to_bytes()


def _ipns(key: PrivateKey, seq: int, hours: float, value: bytes = b"/ipfs/x") -> bytes:
    return make_ipns_record(key, value, sequence=seq, validity=NOW + timedelta(hours=hours))


@pytest.fixture
def validators() -> Validators:
    return Validators({"ipns": IpnsValidator(clock=NOW.timestamp)}, passthrough=["test"])


# --- /pk/ ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", [KeyType.ED25519, KeyType.SECP256K1, KeyType.ECDSA])
def test_pk_valid(validators: Validators, key_type: KeyType) -> None:
    key = _key(1, key_type) if key_type != KeyType.ECDSA else generate_private_key(key_type)
    validators.validate(_pk_key(key), key.public_key.to_protobuf())


def test_pk_of_another_peer_rejected(validators: Validators) -> None:
    with pytest.raises(RecordValidationError, match="key of another peer"):
        validators.validate(_pk_key(_key(1)), _key(2).public_key.to_protobuf())


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"/pk/not-a-peer-id", None, "does not hold a peer ID"),
        (None, b"\x08\x01\x12\x03abc", "not a public key"),
        (None, b"", "not a public key"),
    ],
)
def test_pk_malformed_rejected(key: bytes | None, value: bytes | None, reason: str) -> None:
    good = _key(3)
    with pytest.raises(RecordValidationError, match=reason):
        PublicKeyValidator().validate(
            key if key is not None else _pk_key(good),
            value if value is not None else good.public_key.to_protobuf(),
        )


def test_pk_validator_rejects_other_namespace() -> None:
    key = _key(3)
    with pytest.raises(RecordValidationError, match="not a /pk/ key"):
        PublicKeyValidator().validate(b"/ipns/" + _pk_key(key)[4:], key.public_key.to_protobuf())


# --- /ipns/ --------------------------------------------------------------------------------------


def test_ipns_valid_and_expired(validators: Validators) -> None:
    key = _key(4)
    name_key = ipns_key(PeerId.from_public_key(key.public_key))
    validators.validate(name_key, _ipns(key, 1, 1))
    with pytest.raises(RecordValidationError, match="end of life"):
        validators.validate(name_key, _ipns(key, 1, -1))


def test_ipns_clock_is_the_one_given() -> None:
    key = _key(4)
    name_key = ipns_key(PeerId.from_public_key(key.public_key))
    record = _ipns(key, 1, 1)
    later = (NOW + timedelta(hours=2)).timestamp()
    IpnsValidator(clock=NOW.timestamp).validate(name_key, record)
    with pytest.raises(RecordValidationError, match="end of life"):
        IpnsValidator(clock=lambda: later).validate(name_key, record)


def test_registry_clock_reaches_builtin_ipns() -> None:
    key = _key(4)
    name_key = ipns_key(PeerId.from_public_key(key.public_key))
    record = _ipns(key, 1, 1)
    Validators(clock=NOW.timestamp).validate(name_key, record)
    later = (NOW + timedelta(hours=2)).timestamp()
    with pytest.raises(RecordValidationError, match="end of life"):
        Validators(clock=lambda: later).validate(name_key, record)


def test_ipns_under_another_name_rejected(validators: Validators) -> None:
    other = ipns_key(PeerId.from_public_key(_key(5).public_key))
    with pytest.raises(RecordValidationError, match="signatureV2"):
        validators.validate(other, _ipns(_key(4), 1, 1))


def test_ipns_select_by_sequence_then_validity(validators: Validators) -> None:
    key = _key(6)
    name_key = ipns_key(PeerId.from_public_key(key.public_key))
    low_seq_long = _ipns(key, 1, 40)
    high_seq_short = _ipns(key, 2, 1)
    high_seq_long = _ipns(key, 2, 20)
    assert validators.select(name_key, [low_seq_long, high_seq_short]) == 1
    assert validators.select(name_key, [high_seq_short, low_seq_long]) == 0
    assert validators.select(name_key, [high_seq_short, high_seq_long, low_seq_long]) == 1
    assert validators.select(name_key, [b"junk", low_seq_long, b"more junk"]) == 1
    assert validators.select(name_key, [b"junk"]) == 0
    same = [high_seq_long, high_seq_long]
    assert validators.select(name_key, same) == 0


# --- registry ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (b"/unknown/x", "no validator for namespace 'unknown'"),
        (b"pk/x", "does not start with '/'"),
        (b"/pk", "no '/namespace/' prefix"),
        (b"//x", "no '/namespace/' prefix"),
        (b"/\xff/x", "not ASCII"),
    ],
)
def test_bad_keys_rejected(validators: Validators, key: bytes, reason: str) -> None:
    with pytest.raises(RecordValidationError, match=reason):
        validators.validate(key, b"v")


def test_passthrough_namespace(validators: Validators) -> None:
    validators.validate(b"/test/anything", b"\x00 whatever")
    assert validators.select(b"/test/anything", [b"b", b"a"]) == 0
    assert validators.namespaces() == ["ipns", "pk", "test"]
    assert not isinstance(Validators().validator(b"/pk/x"), PassthroughValidator)
    with pytest.raises(RecordValidationError, match="no validator"):
        Validators().validate(b"/test/anything", b"v")


def test_namespace_of_key(validators: Validators) -> None:
    assert validators.namespace(b"/pk/\x00\x01/more") == "pk"
    assert validators.namespace(b"/ipns/") == "ipns"


class _Longest:
    def validate(self, key: bytes, value: bytes) -> None:
        if not value.startswith(b"ok"):
            raise RecordValidationError("not ok")

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        return max(range(len(values)), key=lambda i: len(values[i]))


def test_user_namespace_and_override() -> None:
    custom: Validator = _Longest()
    validators = Validators({"mine": custom, "pk": PassthroughValidator()})
    validators.validate(b"/mine/k", b"ok!")
    with pytest.raises(RecordValidationError, match="not ok"):
        validators.validate(b"/mine/k", b"no")
    assert validators.select(b"/mine/k", [b"ok", b"ok!!", b"ok!"]) == 1
    validators.validate(b"/pk/anything", b"anything")  # overridden built-in


@pytest.mark.parametrize("name", ["", "a/b"])
def test_bad_namespace_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid namespace"):
        Validators(passthrough=[name])


@pytest.mark.parametrize("validator", [PublicKeyValidator(), PassthroughValidator()])
def test_select_needs_values(validator: Validator) -> None:
    with pytest.raises(RecordValidationError, match="at least one"):
        validator.select(b"/pk/x", [])


@given(
    st.sampled_from([b"/pk/", b"/ipns/", b"/test/", b"/", b""]).flatmap(
        lambda prefix: st.binary(max_size=60).map(lambda rest: prefix + rest)
    ),
    st.binary(max_size=300),
)
def test_any_key_and_value_validate_or_raise_typed(key: bytes, value: bytes) -> None:
    validators = Validators(passthrough=["test"])
    try:
        validators.validate(key, value)
    except RecordValidationError:
        pass
    try:
        assert validators.select(key, [value, b"x"]) in (0, 1)
    except RecordValidationError:
        pass
