"""Message IDs and the StrictSign / StrictNoSign policies, checked against js-made signatures."""

from __future__ import annotations

import hashlib

import attrs
import pytest

from p2pstack.identity import Identity, KeyType, PeerId, PrivateKey, PublicKey, generate_private_key
from protocols.pubsub import (
    ControlGraft,
    ControlIDontWant,
    ControlIHave,
    ControlIWant,
    ControlMessage,
    ControlPrune,
    Message,
    PeerInfo,
    SubOpts,
    ValidationError,
    decode_message,
    decode_rpc,
    encode_message,
    encode_rpc,
)
from protocols.pubsub._message import (
    SIGN_PREFIX,
    SignaturePolicy,
    content_message_id,
    default_message_id,
    js_message_id,
    make_message,
    signed_bytes,
    validate_message,
)
from tests.protocols.pubsub._vectors import (
    JS_FROM,
    JS_MESSAGE_ID,
    JS_NOSIGN_ID,
    JS_NOSIGN_RPC,
    JS_PX_PEER,
    JS_RPC,
    JS_SEQNO,
    VECTORS,
    SignedVector,
)

STRICT = SignaturePolicy.STRICT_SIGN
NO_SIGN = SignaturePolicy.STRICT_NO_SIGN


def _received(vector: SignedVector, *, with_key: bool) -> Message:
    message = decode_message(vector.unsigned)
    return attrs.evolve(
        message, signature=vector.signature, key=vector.public_key if with_key else None
    )


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.label)
def test_js_signatures_verify(vector: SignedVector) -> None:
    message = _received(vector, with_key=vector.label == "rsa")
    assert str(message.from_) == vector.peer_id
    assert signed_bytes(message) == SIGN_PREFIX + vector.unsigned
    validate_message(message, STRICT)
    # The key may always be sent, also when the peer ID inlines it.
    validate_message(_received(vector, with_key=True), STRICT)


def test_rsa_message_without_key_is_rejected() -> None:
    (rsa,) = [v for v in VECTORS if v.label == "rsa"]
    with pytest.raises(ValidationError, match="key"):
        validate_message(_received(rsa, with_key=False), STRICT)


def test_our_ed25519_signature_equals_js() -> None:
    (vector,) = [v for v in VECTORS if v.private_key is not None]
    assert vector.private_key is not None
    key = PrivateKey.from_protobuf(vector.private_key)
    message = make_message("test-topic", b"hello pubsub", private_key=key, seqno=7)
    assert message.signature == vector.signature
    assert message.key is None  # Ed25519 peer IDs inline the key
    assert encode_message(attrs.evolve(message, signature=None)) == vector.unsigned


@pytest.mark.parametrize("key_type", [KeyType.ED25519, KeyType.SECP256K1, KeyType.ECDSA])
def test_sign_then_validate(key_type: KeyType) -> None:
    key = generate_private_key(key_type)
    message = make_message("t", b"data", private_key=key, seqno=1)
    assert message.seqno == b"\x00" * 7 + b"\x01"
    assert message.from_ == PeerId.from_public_key(key.public_key)
    assert (message.key is None) == (key_type is not KeyType.ECDSA)
    validate_message(decode_message(encode_message(message)), STRICT)


def test_each_publisher_key_signs_as_itself() -> None:
    # make_message caches the peer ID of a key: messages of interleaved keys keep their own.
    keys = [Identity.generate().private_key for _ in range(3)]
    for seqno in range(2):
        for key in keys:
            message = make_message("t", b"data", private_key=key, seqno=seqno)
            assert message.from_ == PeerId.from_public_key(key.public_key)
            validate_message(message, STRICT)


def _tampered() -> list[tuple[str, Message]]:
    good = make_message("t", b"data", private_key=Identity.generate().private_key, seqno=5)
    other = Identity.generate()
    return [
        ("data", attrs.evolve(good, data=b"datA")),
        ("topic", attrs.evolve(good, topic="u")),
        ("seqno", attrs.evolve(good, seqno=b"\x00" * 7 + b"\x06")),
        ("short seqno", attrs.evolve(good, seqno=b"\x05")),
        ("from", attrs.evolve(good, from_=other.peer_id)),
        ("no signature", attrs.evolve(good, signature=None)),
        ("no from", attrs.evolve(good, from_=None)),
        ("garbage signature", attrs.evolve(good, signature=b"\x00" * 64)),
        ("foreign key", attrs.evolve(good, key=other.private_key.public_key.to_protobuf())),
        ("malformed key", attrs.evolve(good, key=b"\x08\x01\x12\x01\x00")),
    ]


@pytest.mark.parametrize(("label", "message"), _tampered(), ids=[t[0] for t in _tampered()])
def test_strict_sign_rejects(label: str, message: Message) -> None:
    with pytest.raises(ValidationError):
        validate_message(message, STRICT)


def test_strict_no_sign() -> None:
    message = make_message("t", b"data", policy=NO_SIGN)
    assert message == Message(topic="t", data=b"data")
    validate_message(message, NO_SIGN)
    signed = make_message("t", b"data", private_key=Identity.generate().private_key)
    with pytest.raises(ValidationError, match="StrictNoSign"):
        validate_message(signed, NO_SIGN)
    with pytest.raises(ValidationError):
        validate_message(attrs.evolve(message, seqno=b"\x00" * 8), NO_SIGN)
    with pytest.raises(ValidationError):
        validate_message(message, STRICT)


def test_message_ids() -> None:
    (vector,) = [v for v in VECTORS if v.label == "ed25519"]
    message = decode_message(vector.unsigned)
    assert message.from_ is not None
    assert default_message_id(message) == message.from_.to_bytes() + b"\x00" * 7 + b"\x07"
    unsigned = Message(topic="t", data=b"abc")
    assert default_message_id(unsigned) == hashlib.sha256(b"abc").digest()
    assert content_message_id(message) == hashlib.sha256(b"hello pubsub").digest()


def test_make_message_arguments() -> None:
    with pytest.raises(ValueError, match="private key"):
        make_message("t", b"")
    with pytest.raises(ValueError, match="seqno"):
        make_message("t", b"", private_key=Identity.generate().private_key, seqno=1 << 64)


def test_vector_public_keys_match_peer_ids() -> None:
    for vector in VECTORS:
        assert PeerId.from_string(vector.peer_id).matches(
            PublicKey.from_protobuf(vector.public_key)
        )


def test_js_gossipsub_rpc_decodes_and_reencodes_byte_for_byte() -> None:
    rpc = decode_rpc(JS_RPC)
    assert encode_rpc(rpc) == JS_RPC
    assert rpc.subscriptions == (SubOpts(True, "js-topic"), SubOpts(False, "old"))
    (message,) = rpc.publish
    assert (str(message.from_), message.seqno, message.topic) == (JS_FROM, JS_SEQNO, "js-topic")
    assert message.data == b"hello from js" and message.key is not None
    validate_message(message, STRICT)
    assert js_message_id(message) == JS_MESSAGE_ID
    assert message.from_ is not None
    assert default_message_id(message) == message.from_.to_bytes() + JS_SEQNO
    assert default_message_id(message)[2:] == JS_MESSAGE_ID  # go's ID: the same, prefixed
    assert rpc.control == ControlMessage(
        ihave=(ControlIHave("js-topic", [b"\x01\x02", b"\x03"]),),
        iwant=(ControlIWant([b"\x04"]),),
        graft=(ControlGraft("js-topic"),),
        prune=(ControlPrune("old", (PeerInfo(PeerId.from_string(JS_PX_PEER), b"\x07\x07"),), 60),),
        idontwant=(ControlIDontWant([b"\x05\x06"]),),
    )


def test_js_strict_no_sign_message() -> None:
    rpc = decode_rpc(JS_NOSIGN_RPC)
    assert encode_rpc(rpc) == JS_NOSIGN_RPC
    (message,) = rpc.publish
    validate_message(message, NO_SIGN)
    assert default_message_id(message) == js_message_id(message) == JS_NOSIGN_ID


def test_js_message_id_of_hashed_peer_ids_uses_the_key() -> None:
    (rsa,) = [v for v in VECTORS if v.label == "rsa"]
    message = _received(rsa, with_key=True)
    assert js_message_id(message) == rsa.public_key + b"\x00" * 7 + b"\x07"
