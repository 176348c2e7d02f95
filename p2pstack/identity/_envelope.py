"""Signed envelopes: a payload, its type and a domain-separated signature by a libp2p key
(https://github.com/libp2p/specs/blob/master/RFC/0002-signed-envelopes.md).
"""

from __future__ import annotations

import attrs
from google.protobuf.message import DecodeError

from p2pstack.errors import IdentityError, InvalidSignatureError
from p2pstack.identity._keys import PrivateKey, PublicKey
from p2pstack.identity._peer_id import PeerId
from p2pstack.identity.pb import envelope_pb2
from p2pstack.varint import encode_uvarint

__all__ = ["MAX_ENVELOPE_SIZE", "Envelope"]

#: Largest serialized envelope accepted. go caps whole identify messages (which carry the signed
#: peer record) well below this; 64 KiB leaves room for many addresses and an RSA key.
MAX_ENVELOPE_SIZE = 64 * 1024


def _signing_buffer(domain: str, payload_type: bytes, payload: bytes) -> bytes:
    # RFC 0002 "Signature Production": each field is prefixed by its uvarint length.
    domain_bytes = domain.encode("utf-8")
    return b"".join(
        (
            encode_uvarint(len(domain_bytes)),
            domain_bytes,
            encode_uvarint(len(payload_type)),
            payload_type,
            encode_uvarint(len(payload)),
            payload,
        )
    )


@attrs.frozen
class Envelope:
    """A signed envelope, as go and js exchange in identify and the DHT.

    Build one with ``seal``; parse one with ``from_bytes``, which verifies it. The domain string
    is deliberately not stored: the receiver supplies the domain it expects.

    Attributes:
        public_key: the signer's public key.
        payload_type: a multicodec-prefixed type tag (``b"\\x03\\x01"`` for peer records).
        payload: the signed bytes.
        signature: the signature over domain, payload type and payload.
    """

    public_key: PublicKey
    payload_type: bytes
    payload: bytes
    signature: bytes

    @classmethod
    def seal(
        cls, private_key: PrivateKey, domain: str, payload_type: bytes, payload: bytes
    ) -> Envelope:
        """Sign ``payload`` for ``domain``.

        Args:
            private_key: the signer's key.
            domain: the domain-separation string the receiver will check.
            payload_type: the type tag.
            payload: the bytes to sign.

        Returns:
            The signed envelope.
        """
        signature = private_key.sign(_signing_buffer(domain, payload_type, payload))
        return cls(private_key.public_key, payload_type, payload, signature)

    @property
    def signer(self) -> PeerId:
        """The peer ID of the signing key."""
        return PeerId.from_public_key(self.public_key)

    def verify(self, domain: str) -> bool:
        """Whether the signature is valid for ``domain``."""
        buffer = _signing_buffer(domain, self.payload_type, self.payload)
        return self.public_key.verify(buffer, self.signature)

    def to_bytes(self) -> bytes:
        """The serialized ``Envelope`` protobuf."""
        message = envelope_pb2.Envelope(
            public_key=self.public_key.to_protobuf(),
            payload_type=self.payload_type,
            payload=self.payload,
            signature=self.signature,
        )
        return message.SerializeToString(deterministic=True)

    @classmethod
    def from_bytes(cls, data: bytes, domain: str) -> Envelope:
        """Parse a serialized envelope and verify its signature for ``domain``.

        Args:
            data: at most ``MAX_ENVELOPE_SIZE`` bytes.
            domain: the domain the signature must have been made for.

        Raises:
            InvalidSignatureError: the signature does not verify (wrong domain, tampering).
            InvalidKeyError: the embedded public key is invalid (an ``IdentityError``).
            IdentityError: the envelope is malformed or too large.
        """
        if len(data) > MAX_ENVELOPE_SIZE:
            raise IdentityError(f"envelope of {len(data)} bytes exceeds {MAX_ENVELOPE_SIZE}")
        message = envelope_pb2.Envelope()
        try:
            message.ParseFromString(bytes(data))
        except DecodeError as exc:
            raise IdentityError(f"malformed envelope: {exc}") from exc
        if not message.public_key:
            raise IdentityError("envelope has no public key")
        envelope = cls(
            PublicKey.from_protobuf(message.public_key),
            message.payload_type,
            message.payload,
            message.signature,
        )
        if not envelope.verify(domain):
            raise InvalidSignatureError(f"envelope signature does not verify for domain {domain!r}")
        return envelope
