"""The libp2p Noise handshake payload: protobuf ``NoiseHandshakePayload`` and ``NoiseExtensions``.

Spec: https://github.com/libp2p/specs/blob/master/noise/README.md#the-libp2p-handshake-payload
and https://github.com/libp2p/specs/blob/master/connections/inlined-muxer-negotiation.md ::

    message NoiseExtensions {
        repeated bytes webtransport_certhashes = 1;
        repeated string stream_muxers = 2;
    }
    message NoiseHandshakePayload {
        optional bytes identity_key = 1;
        optional bytes identity_sig = 2;
        optional NoiseExtensions extensions = 4;
    }

Two small messages do not justify generated code; this codec follows the protobuf wire format
(https://protobuf.dev/programming-guides/encoding/) and skips unknown fields as it requires.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import attrs

from p2pstack.errors import RemoteProtocolError
from p2pstack.varint import IncompleteVarint, decode_uvarint, encode_uvarint

__all__ = ["SIGNATURE_PREFIX", "HandshakePayload", "decode_payload", "encode_payload"]

#: The identity key signs this prefix followed by the Noise static public key.
SIGNATURE_PREFIX = b"noise-libp2p-static-key:"

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5


@attrs.frozen(kw_only=True)
class HandshakePayload:
    """A decoded ``NoiseHandshakePayload``.

    ``stream_muxers`` is ``None`` when the payload has no ``extensions`` field at all, and a
    (possibly empty) tuple when it has one.
    """

    identity_key: bytes = b""
    identity_sig: bytes = b""
    stream_muxers: tuple[str, ...] | None = None
    webtransport_certhashes: tuple[bytes, ...] = ()


def _key(field: int, wire_type: int) -> bytes:
    return encode_uvarint(field << 3 | wire_type)


def _len_field(field: int, value: bytes) -> bytes:
    return _key(field, _LEN) + encode_uvarint(len(value)) + value


def encode_payload(
    *, identity_key: bytes, identity_sig: bytes, stream_muxers: Sequence[str] | None = None
) -> bytes:
    """Encode a ``NoiseHandshakePayload``.

    Args:
        identity_key: the ``PublicKey`` protobuf of our identity key.
        identity_sig: our signature over ``SIGNATURE_PREFIX`` + our Noise static public key.
        stream_muxers: muxer protocol IDs for ``extensions``; ``None`` (or empty) omits the
            extensions field.

    Returns:
        The protobuf bytes.
    """
    out = _len_field(1, identity_key) + _len_field(2, identity_sig)
    if stream_muxers:
        ext = b"".join(_len_field(2, m.encode()) for m in stream_muxers)
        out += _len_field(4, ext)
    return out


def _fields(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(field, wire_type, value)``; length-delimited values as bytes, others skipped
    as empty bytes (this schema has no numeric fields).

    Raises:
        RemoteProtocolError: the bytes are not valid protobuf wire format.
    """
    pos = 0
    end = len(data)
    try:
        while pos < end:
            key, pos = decode_uvarint(data, pos)
            field, wire_type = key >> 3, key & 7
            if field == 0:
                raise RemoteProtocolError("protobuf field number 0")
            if wire_type == _VARINT:
                _, pos = decode_uvarint(data, pos)
                value = b""
            elif wire_type == _LEN:
                length, pos = decode_uvarint(data, pos)
                if pos + length > end:
                    raise RemoteProtocolError("protobuf field runs past the message")
                value = data[pos : pos + length]
                pos += length
            elif wire_type in (_FIXED64, _FIXED32):
                pos += 8 if wire_type == _FIXED64 else 4
                if pos > end:
                    raise RemoteProtocolError("protobuf fixed field runs past the message")
                value = b""
            else:
                raise RemoteProtocolError(f"unsupported protobuf wire type {wire_type}")
            yield field, wire_type, value
    except IncompleteVarint:
        raise RemoteProtocolError("protobuf message ends inside a varint") from None


def _decode_extensions(data: bytes, muxers: list[str], certhashes: list[bytes]) -> None:
    for field, wire_type, value in _fields(data):
        if field in (1, 2) and wire_type != _LEN:
            raise RemoteProtocolError(f"NoiseExtensions field {field} has wire type {wire_type}")
        if field == 1:
            certhashes.append(value)
        elif field == 2:
            try:
                muxers.append(value.decode("utf-8"))
            except UnicodeDecodeError:
                raise RemoteProtocolError("stream muxer name is not UTF-8") from None


def decode_payload(data: bytes) -> HandshakePayload:
    """Decode a ``NoiseHandshakePayload``; unknown fields are skipped.

    Args:
        data: the decrypted handshake payload (at most 65535 bytes, so every part is bounded).

    Returns:
        The decoded payload.

    Raises:
        RemoteProtocolError: the bytes are not a valid ``NoiseHandshakePayload``.
    """
    identity_key = b""
    identity_sig = b""
    muxers: list[str] = []
    certhashes: list[bytes] = []
    has_extensions = False
    for field, wire_type, value in _fields(data):
        if field in (1, 2, 4) and wire_type != _LEN:
            raise RemoteProtocolError(
                f"NoiseHandshakePayload field {field} has wire type {wire_type}"
            )
        if field == 1:
            identity_key = value
        elif field == 2:
            identity_sig = value
        elif field == 4:
            # Repeated occurrences of an embedded message merge (protobuf semantics).
            has_extensions = True
            _decode_extensions(value, muxers, certhashes)
    return HandshakePayload(
        identity_key=identity_key,
        identity_sig=identity_sig,
        stream_muxers=tuple(muxers) if has_extensions else None,
        webtransport_certhashes=tuple(certhashes),
    )
