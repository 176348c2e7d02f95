"""Peer IDs: multihashes of public keys, with their base58btc and CID text forms
(https://github.com/libp2p/specs/blob/master/peer-ids/peer-ids.md#peer-ids).
"""

from __future__ import annotations

import attrs
import base58

from p2pstack.errors import InvalidKeyError, InvalidPeerIdError
from p2pstack.identity._keys import PublicKey
from p2pstack.identity._multiformats import (
    CID_V1,
    IDENTITY,
    LIBP2P_KEY,
    SHA2_256,
    decode_base58,
    decode_multibase,
    decode_multihash,
    encode_base32,
    encode_multihash,
    sha256_multihash,
)
from p2pstack.varint import encode_uvarint

__all__ = ["MAX_INLINE_KEY_LENGTH", "MAX_PEER_ID_TEXT_LENGTH", "PeerId"]

#: Serialized public keys up to this length are inlined with the identity multihash; longer ones
#: are hashed with sha2-256 (the peer-ids spec's 42-byte rule).
MAX_INLINE_KEY_LENGTH = 42
#: Longest peer ID text accepted. The longest valid form (an inlined 42-byte key as a base16 CID)
#: is 93 characters; the bound keeps base58/base36 decoding (quadratic) cheap on hostile input.
MAX_PEER_ID_TEXT_LENGTH = 128
_CID_PREFIX = encode_uvarint(CID_V1) + encode_uvarint(LIBP2P_KEY)


def _validate_multihash(_instance: object, _attribute: object, value: bytes) -> None:
    if not isinstance(value, bytes):
        raise InvalidPeerIdError(f"peer ID must be bytes, not {type(value).__name__}")
    try:
        code, digest = decode_multihash(value)
    except ValueError as exc:
        raise InvalidPeerIdError(f"peer ID is not a valid multihash: {exc}") from exc
    if code == SHA2_256:
        if len(digest) != 32:
            raise InvalidPeerIdError(f"sha2-256 peer ID digest must be 32 bytes, not {len(digest)}")
    elif code == IDENTITY:
        if len(digest) > MAX_INLINE_KEY_LENGTH:
            raise InvalidPeerIdError(f"identity peer ID longer than {MAX_INLINE_KEY_LENGTH} bytes")
        # Like js, insist that an inlined key really is a key, so extract_public_key() never fails.
        try:
            PublicKey.from_protobuf(digest)
        except InvalidKeyError as exc:
            raise InvalidPeerIdError(f"identity peer ID does not hold a valid key: {exc}") from exc
    else:
        raise InvalidPeerIdError(f"unsupported peer ID multihash code 0x{code:x}")


@attrs.frozen(order=True, repr=False, cache_hash=True)
class PeerId:
    """A peer's identity: the multihash of its serialized public key.

    Immutable, hashable and ordered by its bytes. Construct it with the ``from_*`` classmethods;
    ``PeerId(multihash)`` validates its argument the same way ``from_bytes`` does.

    Attributes:
        multihash: the binary peer ID (an identity or sha2-256 multihash).
    """

    multihash: bytes = attrs.field(validator=_validate_multihash)

    @classmethod
    def from_public_key(cls, key: PublicKey) -> PeerId:
        """Derive the peer ID of ``key``: the identity multihash of its protobuf encoding when
        that is at most 42 bytes, else its sha2-256 multihash."""
        encoded = key.to_protobuf()
        if len(encoded) <= MAX_INLINE_KEY_LENGTH:
            return cls(encode_multihash(IDENTITY, encoded))
        return cls(sha256_multihash(encoded))

    @classmethod
    def from_bytes(cls, data: bytes) -> PeerId:
        """Parse a binary peer ID (a multihash).

        Raises:
            InvalidPeerIdError: not an identity multihash of a valid key nor a sha2-256 one.
        """
        return cls(bytes(data))

    @classmethod
    def from_string(cls, text: str) -> PeerId:
        """Parse a peer ID in text form.

        Accepts the legacy base58btc multihash (``12D3KooW...``, ``Qm...``, ``16U...``) and a
        CIDv1 with the ``libp2p-key`` codec in base32 (``bafz...``), base36 (``k51...``),
        base58btc (``z...``) or base16 (``f...``) multibase.

        Raises:
            InvalidPeerIdError: anything else.
        """
        if not isinstance(text, str) or len(text) > MAX_PEER_ID_TEXT_LENGTH:
            raise InvalidPeerIdError("peer ID text is not a string of a plausible length")
        try:
            if text.startswith(("1", "Qm")):
                return cls(decode_base58(text))
            data = decode_multibase(text)
        except ValueError as exc:
            raise InvalidPeerIdError(f"cannot decode peer ID {text!r}: {exc}") from exc
        if not data.startswith(_CID_PREFIX):
            raise InvalidPeerIdError(f"{text!r} is not a CIDv1 with the libp2p-key codec")
        return cls(data[len(_CID_PREFIX) :])

    def to_bytes(self) -> bytes:
        """The binary peer ID (multihash)."""
        return self.multihash

    def to_base58(self) -> str:
        """The legacy text form: base58btc of the multihash (``12D3KooW...`` / ``Qm...``)."""
        return base58.b58encode(self.multihash).decode("ascii")

    def to_cid(self) -> str:
        """The CID text form: CIDv1, ``libp2p-key`` codec, base32 multibase (``bafz...``)."""
        return "b" + encode_base32(_CID_PREFIX + self.multihash)

    def extract_public_key(self) -> PublicKey | None:
        """The public key inlined in an identity-multihash peer ID (Ed25519, secp256k1), or
        ``None`` for a hashed (sha2-256) peer ID."""
        code, digest = decode_multihash(self.multihash)
        if code != IDENTITY:
            return None
        return PublicKey.from_protobuf(digest)

    def matches(self, key: PublicKey) -> bool:
        """Whether ``key`` is the public key this peer ID was derived from."""
        return PeerId.from_public_key(key) == self

    def __str__(self) -> str:
        return self.to_base58()

    def __repr__(self) -> str:
        return f"PeerId({self.to_base58()!r})"
