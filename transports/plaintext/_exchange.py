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

from p2pstack.errors import RemoteProtocolError
from p2pstack.varint import IncompleteVarint, decode_uvarint, encode_uvarint

__all__ = ["MAX_EXCHANGE_SIZE", "Exchange", "ExchangeReader", "decode_exchange", "encode_exchange"]

#: Largest ``Exchange`` accepted: a 4096-bit RSA key fits in ~550 bytes, so 8 KiB is generous.
MAX_EXCHANGE_SIZE = 8192

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5


@attrs.frozen(kw_only=True)
class Exchange:
    """A decoded ``Exchange``: raw peer ID bytes and ``PublicKey`` protobuf bytes."""

    id: bytes = b""
    pubkey: bytes = b""


def encode_exchange(exchange: Exchange) -> bytes:
    """Encode ``exchange`` with its uvarint length prefix, ready to send."""
    body = (
        encode_uvarint(1 << 3 | _LEN)
        + encode_uvarint(len(exchange.id))
        + exchange.id
        + encode_uvarint(2 << 3 | _LEN)
        + encode_uvarint(len(exchange.pubkey))
        + exchange.pubkey
    )
    return encode_uvarint(len(body)) + body


def decode_exchange(data: bytes) -> Exchange:
    """Decode an ``Exchange`` body (without its length prefix); unknown fields are skipped.

    Raises:
        RemoteProtocolError: the bytes are not valid protobuf, or ``id``/``pubkey`` have the
            wrong wire type.
    """
    fields = {1: b"", 2: b""}
    pos, end = 0, len(data)
    try:
        while pos < end:
            key, pos = decode_uvarint(data, pos)
            field, wire_type = key >> 3, key & 7
            if field == 0:
                raise RemoteProtocolError("protobuf field number 0")
            if wire_type == _LEN:
                length, pos = decode_uvarint(data, pos)
                if pos + length > end:
                    raise RemoteProtocolError("protobuf field runs past the message")
                value, pos = data[pos : pos + length], pos + length
                if field in fields:
                    fields[field] = value
                continue
            if field in fields:
                raise RemoteProtocolError(f"Exchange field {field} has wire type {wire_type}")
            if wire_type == _VARINT:
                _, pos = decode_uvarint(data, pos)
            elif wire_type in (_FIXED64, _FIXED32):
                pos += 8 if wire_type == _FIXED64 else 4
                if pos > end:
                    raise RemoteProtocolError("protobuf fixed field runs past the message")
            else:
                raise RemoteProtocolError(f"unsupported protobuf wire type {wire_type}")
    except IncompleteVarint:
        raise RemoteProtocolError("protobuf message ends inside a varint") from None
    return Exchange(id=fields[1], pubkey=fields[2])


class ExchangeReader:
    """Sans-IO reader of one length-prefixed ``Exchange``; keeps bytes that follow it.

    Buffers at most ``MAX_EXCHANGE_SIZE`` + 10 bytes plus one fed chunk.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> Exchange | None:
        """Add received bytes; return the ``Exchange`` once complete, else ``None``.

        Raises:
            RemoteProtocolError: the length prefix is invalid or exceeds ``MAX_EXCHANGE_SIZE``,
                or the message is malformed.
        """
        self._buf += data
        try:
            length, pos = decode_uvarint(self._buf)
        except IncompleteVarint:
            # decode_uvarint itself rejects a prefix longer than 10 bytes.
            return None
        if length > MAX_EXCHANGE_SIZE:
            raise RemoteProtocolError(f"Exchange of {length} bytes exceeds {MAX_EXCHANGE_SIZE}")
        if len(self._buf) < pos + length:
            return None
        body = bytes(self._buf[pos : pos + length])
        del self._buf[: pos + length]
        return decode_exchange(body)

    def take_remaining(self) -> bytes:
        """Remove and return the bytes received after the ``Exchange``."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest
