"""Identity: libp2p keys, peer IDs, key files, signed envelopes and peer records
(https://github.com/libp2p/specs/blob/master/peer-ids/peer-ids.md,
https://github.com/libp2p/specs/blob/master/RFC/0002-signed-envelopes.md,
https://github.com/libp2p/specs/blob/master/RFC/0003-routing-records.md) and the libp2p TLS
certificate (https://github.com/libp2p/specs/blob/master/tls/tls.md).

Typical use::

    identity = Identity.generate()            # Ed25519
    identity.save("node.key")                 # protobuf PrivateKey, mode 0o600
    print(identity.peer_id)                   # 12D3KooW...
    envelope = PeerRecord(identity.peer_id, seq, addrs).seal(identity.private_key)

The names below are loaded on first use (module ``__getattr__``, PEP 562): ``p2pstack id``
needs a key and its peer ID, not envelopes, peer records, multiaddr or the protobuf runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from p2pstack.identity._certificate import (
        ALPN_LIBP2P,
        DEFAULT_CERTIFICATE_LIFETIME,
        LIBP2P_TLS_OID,
        MAX_CERTIFICATE_SIZE,
        CertifiedKey,
        make_certificate,
        verify_certificate,
    )
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

#: Public name → the module that defines it.
_EXPORTS = {
    "ALPN_LIBP2P": "p2pstack.identity._certificate",
    "CertifiedKey": "p2pstack.identity._certificate",
    "DEFAULT_CERTIFICATE_LIFETIME": "p2pstack.identity._certificate",
    "LIBP2P_TLS_OID": "p2pstack.identity._certificate",
    "MAX_CERTIFICATE_SIZE": "p2pstack.identity._certificate",
    "make_certificate": "p2pstack.identity._certificate",
    "verify_certificate": "p2pstack.identity._certificate",
    "EcdsaPrivateKey": "p2pstack.identity._keytypes",
    "EcdsaPublicKey": "p2pstack.identity._keytypes",
    "Ed25519PrivateKey": "p2pstack.identity._keytypes",
    "Ed25519PublicKey": "p2pstack.identity._keytypes",
    "Envelope": "p2pstack.identity._envelope",
    "Identity": "p2pstack.identity._identity",
    "KEY_FILE_MODE": "p2pstack.identity._identity",
    "KeyType": "p2pstack.identity._keys",
    "MAX_ENVELOPE_SIZE": "p2pstack.identity._envelope",
    "MAX_INLINE_KEY_LENGTH": "p2pstack.identity._peer_id",
    "MAX_PEER_ID_TEXT_LENGTH": "p2pstack.identity._peer_id",
    "MAX_PEER_RECORD_ADDRS": "p2pstack.identity._peer_record",
    "MAX_PRIVATE_KEY_PROTOBUF_SIZE": "p2pstack.identity._keys",
    "MAX_PUBLIC_KEY_PROTOBUF_SIZE": "p2pstack.identity._keys",
    "PeerId": "p2pstack.identity._peer_id",
    "PeerRecord": "p2pstack.identity._peer_record",
    "PrivateKey": "p2pstack.identity._keys",
    "PublicKey": "p2pstack.identity._keys",
    "RSA_MAX_BITS": "p2pstack.identity._keytypes",
    "RSA_MIN_BITS": "p2pstack.identity._keytypes",
    "RsaPrivateKey": "p2pstack.identity._keytypes",
    "RsaPublicKey": "p2pstack.identity._keytypes",
    "Secp256k1PrivateKey": "p2pstack.identity._keytypes",
    "Secp256k1PublicKey": "p2pstack.identity._keytypes",
    "generate_private_key": "p2pstack.identity._keytypes",
}

__all__ = [
    "ALPN_LIBP2P",
    "DEFAULT_CERTIFICATE_LIFETIME",
    "KEY_FILE_MODE",
    "LIBP2P_TLS_OID",
    "MAX_CERTIFICATE_SIZE",
    "MAX_ENVELOPE_SIZE",
    "MAX_INLINE_KEY_LENGTH",
    "MAX_PEER_ID_TEXT_LENGTH",
    "MAX_PEER_RECORD_ADDRS",
    "MAX_PRIVATE_KEY_PROTOBUF_SIZE",
    "MAX_PUBLIC_KEY_PROTOBUF_SIZE",
    "RSA_MAX_BITS",
    "RSA_MIN_BITS",
    "CertifiedKey",
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
    "make_certificate",
    "verify_certificate",
]


# Hidden from type checkers, so that they see the names imported above and flag any other.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        """Import an exported name on first access and cache it in the package namespace.

        Args:
            name: the attribute asked for.

        Returns:
            The exported object.

        Raises:
            AttributeError: ``name`` is not exported by this package (nor a loaded submodule).
        """
        module_name = _EXPORTS.get(name)
        if module_name is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module_name), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
