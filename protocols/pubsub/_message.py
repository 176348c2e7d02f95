"""Message IDs and signing policies of libp2p pubsub
(https://github.com/libp2p/specs/blob/master/pubsub/README.md#message-identification and
#message-signing).

StrictSign (the default of js and go): every message carries ``from``, an 8-byte ``seqno`` and a
signature over ``b"libp2p-pubsub:"`` + the ``Message`` protobuf without its ``signature`` and
``key`` fields; ``key`` carries the public key when the peer ID does not inline it (RSA, ECDSA).
StrictNoSign: ``from``, ``seqno``, ``signature`` and ``key`` are all absent, on publish and on
receipt.
"""

from __future__ import annotations

import enum
import functools
import hashlib
from collections.abc import Callable

import attrs

from p2pstack.errors import IdentityError
from p2pstack.identity import PeerId, PrivateKey, PublicKey
from protocols.pubsub._types import Message, ValidationError
from protocols.pubsub._wire import encode_message

__all__ = [
    "SEQNO_LENGTH",
    "SIGN_PREFIX",
    "MessageIdFn",
    "SignaturePolicy",
    "content_message_id",
    "default_message_id",
    "js_message_id",
    "make_message",
    "signed_bytes",
    "validate_message",
]

#: Prepended to the encoded message before signing (the spec's signing domain).
SIGN_PREFIX = b"libp2p-pubsub:"

#: The length of a ``seqno`` under StrictSign: a 64-bit big-endian integer (js rejects others).
SEQNO_LENGTH = 8

#: Computes a message's ID; the same function must be used by every peer of a topic.
MessageIdFn = Callable[[Message], bytes]


class SignaturePolicy(enum.Enum):
    """How messages are signed on publish and checked on receipt."""

    STRICT_SIGN = "StrictSign"
    STRICT_NO_SIGN = "StrictNoSign"


def content_message_id(message: Message) -> bytes:
    """The SHA-256 digest of ``data``: the ID of messages that have neither ``from`` nor
    ``seqno`` (StrictNoSign), as js computes it.

    Args:
        message: the message.

    Returns:
        32 bytes.
    """
    return hashlib.sha256(message.data).digest()


def default_message_id(message: Message) -> bytes:
    """The spec's default ID: the ``from`` peer ID bytes followed by the ``seqno`` bytes (as go
    and js compute it); ``content_message_id`` when either is absent.

    Args:
        message: the message.

    Returns:
        The ID.
    """
    if message.from_ is None or message.seqno is None:
        return content_message_id(message)
    return message.from_.to_bytes() + message.seqno


def js_message_id(message: Message) -> bytes:
    """The ID js-libp2p gossipsub gives signed messages by default (``msgIdFnStrictSign``): the
    publisher's public key as a protobuf followed by ``seqno``. For an Ed25519 or secp256k1
    publisher that is ``default_message_id`` without the 2-byte identity-multihash prefix, so
    nodes that mix the two functions never recognise each other's IHAVE, IDONTWANT and IWANT
    IDs; use this one in topics shared with js nodes. Falls back to ``content_message_id``.

    Args:
        message: the message.

    Returns:
        The ID.
    """
    if message.from_ is None or message.seqno is None:
        return content_message_id(message)
    key = _inlined_key(message.from_)
    if key is not None:
        return key.to_protobuf() + message.seqno
    if message.key is not None:
        return message.key + message.seqno
    return message.from_.to_bytes() + message.seqno


def signed_bytes(message: Message) -> bytes:
    """What a StrictSign signature covers: the prefix and the message without signature and key.

    Args:
        message: the message.

    Returns:
        The bytes to sign or verify.
    """
    return SIGN_PREFIX + encode_message(attrs.evolve(message, signature=None, key=None))


def make_message(
    topic: str,
    data: bytes,
    *,
    policy: SignaturePolicy = SignaturePolicy.STRICT_SIGN,
    private_key: PrivateKey | None = None,
    seqno: int = 0,
) -> Message:
    """Build a message to publish, signed as ``policy`` says.

    Args:
        topic: the topic.
        data: the payload.
        policy: the signing policy.
        private_key: the publisher's key (needed under StrictSign).
        seqno: the publisher's sequence number (StrictSign; below 2**64).

    Returns:
        The message.

    Raises:
        ValueError: StrictSign without a key, or ``seqno`` out of range.
    """
    if policy is SignaturePolicy.STRICT_NO_SIGN:
        return Message(topic=topic, data=data)
    if private_key is None:
        raise ValueError("StrictSign needs the publisher's private key")
    if not 0 <= seqno < 1 << 64:
        raise ValueError(f"seqno {seqno} is not a 64-bit unsigned integer")
    public = private_key.public_key
    source = _peer_id_of(public)
    unsigned = Message(
        topic=topic, data=data, from_=source, seqno=seqno.to_bytes(SEQNO_LENGTH, "big")
    )
    return attrs.evolve(
        unsigned,
        signature=private_key.sign(signed_bytes(unsigned)),
        key=None if _inlined_key(source) is not None else public.to_protobuf(),
    )


@functools.lru_cache(maxsize=64)
def _peer_id_of(key: PublicKey) -> PeerId:
    # Cached: a new PeerId validates itself by parsing the key it inlines, which cost a publisher
    # as much as a fifth of the signature for every message.
    return PeerId.from_public_key(key)


@functools.lru_cache(maxsize=4096)
def _inlined_key(peer: PeerId) -> PublicKey | None:
    # Cached: every message of a publisher needs its key, and parsing it costs as much as a
    # third of the signature check.
    try:
        return peer.extract_public_key()
    except IdentityError:
        return None


def _signer_key(message: Message, source: PeerId) -> PublicKey:
    if message.key is not None:
        try:
            key = PublicKey.from_protobuf(message.key)
        except IdentityError as exc:
            raise ValidationError(f"message key is malformed: {exc}") from None
        if not source.matches(key):
            raise ValidationError("message key does not match its sender")
        return key
    inlined = _inlined_key(source)
    if inlined is None:
        raise ValidationError("message without a key from a sender that does not inline one")
    return inlined


def validate_message(message: Message, policy: SignaturePolicy) -> None:
    """Check a received message against the signing policy.

    Args:
        message: the message as decoded.
        policy: the policy of the topic.

    Raises:
        ValidationError: a field the policy requires is missing or one it forbids is present,
            ``seqno`` is not 8 bytes, the key is malformed or does not match ``from``, or the
            signature does not verify.
    """
    if policy is SignaturePolicy.STRICT_NO_SIGN:
        present = [
            name
            for name in ("from_", "seqno", "signature", "key")
            if getattr(message, name) is not None
        ]
        if present:
            raise ValidationError(f"StrictNoSign message carries {', '.join(present)}")
        return
    if message.from_ is None or message.seqno is None or message.signature is None:
        raise ValidationError("StrictSign message without from, seqno or signature")
    if len(message.seqno) != SEQNO_LENGTH:
        raise ValidationError(f"seqno of {len(message.seqno)} bytes, not {SEQNO_LENGTH}")
    key = _signer_key(message, message.from_)
    if not key.verify(signed_bytes(message), message.signature):
        raise ValidationError("message signature does not verify")
