"""Identity: libp2p keys, peer IDs, key files, signed envelopes and peer records
(https://github.com/libp2p/specs/blob/master/peer-ids/peer-ids.md,
https://github.com/libp2p/specs/blob/master/RFC/0002-signed-envelopes.md,
https://github.com/libp2p/specs/blob/master/RFC/0003-routing-records.md).

Typical use::

    identity = Identity.generate()            # Ed25519
    identity.save("node.key")                 # protobuf PrivateKey, mode 0o600
    print(identity.peer_id)                   # 12D3KooW...
    envelope = PeerRecord(identity.peer_id, seq, addrs).seal(identity.private_key)
"""

from p2pstack.identity._envelope import MAX_ENVELOPE_SIZE, Envelope
from p2pstack.identity._identity import KEY_FILE_MODE, Identity
from p2pstack.identity._keys import (
    MAX_PRIVATE_KEY_PROTOBUF_SIZE,
    MAX_PUBLIC_KEY_PROTOBUF_SIZE,
    KeyType,
    PrivateKey,
    PublicKey,
)
from p2pstack.identity._keytypes import (
    RSA_MAX_BITS,
    RSA_MIN_BITS,
    EcdsaPrivateKey,
    EcdsaPublicKey,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    RsaPrivateKey,
    RsaPublicKey,
    Secp256k1PrivateKey,
    Secp256k1PublicKey,
    generate_private_key,
)
from p2pstack.identity._peer_id import MAX_INLINE_KEY_LENGTH, MAX_PEER_ID_TEXT_LENGTH, PeerId
from p2pstack.identity._peer_record import MAX_PEER_RECORD_ADDRS, PeerRecord

__all__ = [
    "KEY_FILE_MODE",
    "MAX_ENVELOPE_SIZE",
    "MAX_INLINE_KEY_LENGTH",
    "MAX_PEER_ID_TEXT_LENGTH",
    "MAX_PEER_RECORD_ADDRS",
    "MAX_PRIVATE_KEY_PROTOBUF_SIZE",
    "MAX_PUBLIC_KEY_PROTOBUF_SIZE",
    "RSA_MAX_BITS",
    "RSA_MIN_BITS",
    "EcdsaPrivateKey",
    "EcdsaPublicKey",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "Envelope",
    "Identity",
    "KeyType",
    "PeerId",
    "PeerRecord",
    "PrivateKey",
    "PublicKey",
    "RsaPrivateKey",
    "RsaPublicKey",
    "Secp256k1PrivateKey",
    "Secp256k1PublicKey",
    "generate_private_key",
]
