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

The messages are generated from ``payload.proto`` (``tools/gen_protos.sh``).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from p2pstack.errors import RemoteProtocolError
from transports.noise.payload_pb2 import NoiseHandshakePayload as PayloadPb

__all__ = ["SIGNATURE_PREFIX", "HandshakePayload", "decode_payload", "encode_payload"]

#: The identity key signs this prefix followed by the Noise static public key.
SIGNATURE_PREFIX = b"noise-libp2p-static-key:"


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
    message = PayloadPb(identity_key=identity_key, identity_sig=identity_sig)
    if stream_muxers:
        message.extensions.stream_muxers.extend(m.encode() for m in stream_muxers)
    return message.SerializeToString()


def decode_payload(data: bytes) -> HandshakePayload:
    """Decode a ``NoiseHandshakePayload``; unknown fields are skipped.

    Args:
        data: the decrypted handshake payload (at most 65535 bytes, so every part is bounded).

    Returns:
        The decoded payload.

    Raises:
        RemoteProtocolError: the bytes are not a valid ``NoiseHandshakePayload``.
    """
    message = PayloadPb()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise RemoteProtocolError(f"invalid Noise handshake payload: {exc}") from None
    # The protobuf runtime keeps a known field sent with the wrong wire type as an unknown one;
    # for these two messages that is malformed, and we say so.
    _reject_mistyped(message, (1, 2, 4), "NoiseHandshakePayload")
    _reject_mistyped(message.extensions, (1, 2), "NoiseExtensions")
    muxers: tuple[str, ...] | None = None
    if message.HasField("extensions"):
        try:
            muxers = tuple(m.decode("utf-8") for m in message.extensions.stream_muxers)
        except UnicodeDecodeError:
            raise RemoteProtocolError("stream muxer name is not UTF-8") from None
    return HandshakePayload(
        identity_key=message.identity_key,
        identity_sig=message.identity_sig,
        stream_muxers=muxers,
        webtransport_certhashes=tuple(message.extensions.webtransport_certhashes),
    )


def _reject_mistyped(message: Message, known: tuple[int, ...], name: str) -> None:
    unknown = UnknownFieldSet(message)
    for i in range(len(unknown)):
        field = unknown[i]
        if field.field_number in known:
            raise RemoteProtocolError(
                f"{name} field {field.field_number} has wire type {field.wire_type}"
            )
