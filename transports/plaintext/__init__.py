"""The ``/plaintext/2.0.0`` security channel (https://github.com/libp2p/specs/blob/master/plaintext/README.md).

Each side sends an ``Exchange{id, pubkey}`` prefixed with its uvarint length, then reads the
peer's and checks that the peer ID is derived from the public key. Nothing is encrypted or
signed, so this is for tests and trusted links only. There is no inlined muxer negotiation:
``early_muxer`` is always ``None``.
"""

from transports.plaintext._exchange import (
    MAX_EXCHANGE_SIZE,
    Exchange,
    ExchangeReader,
    decode_exchange,
    encode_exchange,
)
from transports.plaintext._plaintext import PROTOCOL_ID, Plaintext, PlaintextSecureConnection

__all__ = [
    "MAX_EXCHANGE_SIZE",
    "PROTOCOL_ID",
    "Exchange",
    "ExchangeReader",
    "Plaintext",
    "PlaintextSecureConnection",
    "decode_exchange",
    "encode_exchange",
]
