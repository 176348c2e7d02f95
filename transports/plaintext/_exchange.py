"""The ``/plaintext/2.0.0`` ``Exchange`` message and its uvarint length prefix.

Spec: https://github.com/libp2p/specs/blob/master/plaintext/README.md#protocol ::

    message Exchange {
        optional bytes id = 1;          // the sender's peer ID (multihash bytes)
        optional PublicKey pubkey = 2;  // the sender's public key (libp2p PublicKey protobuf)
    }

The message is written with an unsigned-varint length prefix.
"""

from __future__ import annotations

import attrs
from google.protobuf.message import DecodeError

from p2pstack.errors import LocalProtocolError, RemoteProtocolError
from p2pstack.framing import LpDecoder, encode_lp
from transports.plaintext.plaintext_pb2 import Exchange as ExchangePb

__all__ = ["MAX_EXCHANGE_SIZE", "Exchange", "ExchangeReader", "decode_exchange", "encode_exchange"]

#: Largest ``Exchange`` accepted: a 4096-bit RSA key fits in ~550 bytes, so 8 KiB is generous.
MAX_EXCHANGE_SIZE = 8192


@attrs.frozen(kw_only=True)
class Exchange:
    """A decoded ``Exchange``: raw peer ID bytes and ``PublicKey`` protobuf bytes."""

    id: bytes = b""
    pubkey: bytes = b""


def encode_exchange(exchange: Exchange) -> bytes:
    """Encode ``exchange`` with its uvarint length prefix, ready to send."""
    body = ExchangePb(id=exchange.id, pubkey=exchange.pubkey).SerializeToString()
    return encode_lp(body)


def decode_exchange(data: bytes) -> Exchange:
    """Decode an ``Exchange`` body (without its length prefix); unknown fields are skipped.

    Raises:
        RemoteProtocolError: the bytes are not a valid ``Exchange``.
    """
    message = ExchangePb()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise RemoteProtocolError(f"invalid plaintext Exchange: {exc}") from None
    return Exchange(id=message.id, pubkey=message.pubkey)


class ExchangeReader:
    """Sans-IO reader of one length-prefixed ``Exchange``; keeps bytes that follow it.

    Buffers at most ``MAX_EXCHANGE_SIZE`` + 10 bytes plus one fed chunk.
    """

    def __init__(self) -> None:
        self._decoder = LpDecoder(MAX_EXCHANGE_SIZE, max_messages=1)

    def feed(self, data: bytes) -> Exchange | None:
        """Add received bytes; return the ``Exchange`` once complete, else ``None``.

        Raises:
            RemoteProtocolError: the length prefix is invalid or exceeds ``MAX_EXCHANGE_SIZE``,
                or the message is malformed.
            LocalProtocolError: called again after the ``Exchange`` was returned.
        """
        if self._decoder.done:
            raise LocalProtocolError("the Exchange was already read")
        bodies = self._decoder.feed(data)
        return decode_exchange(bodies[0]) if bodies else None

    def take_remaining(self) -> bytes:
        """Remove and return the bytes received after the ``Exchange``."""
        return self._decoder.take_remaining()
