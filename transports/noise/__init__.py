"""The ``/noise`` security channel (https://github.com/libp2p/specs/blob/master/noise/README.md).

``Noise_XX_25519_ChaChaPoly_SHA256`` with an empty prologue; every message is framed with a
2-byte big-endian length and is at most 65535 bytes, so outbound plaintext goes out in chunks of
at most 65519 bytes. The responder proves its identity in message 2, the initiator in message 3,
each by signing ``"noise-libp2p-static-key:" + <Noise static public key>`` with its libp2p key.

Parts:
    * ``FrameDecoder`` / ``encode_frame``: sans-IO length-prefixed framing.
    * ``NoiseHandshake``: sans-IO XX handshake (keys passed in).
    * ``NoiseTransportState``: sans-IO transport cipher (one AEAD call per frame).
    * ``Noise`` / ``NoiseSecureConnection``: the anyio driver.

Inlined muxer negotiation
-------------------------

Spec: https://github.com/libp2p/specs/blob/master/connections/inlined-muxer-negotiation.md.
The responder sends its ``stream_muxers`` in message 2 before it has seen the initiator's; the
initiator sends its own in message 3. Implementations disagree on who decides (the spec, go and
rust let the initiator's list decide; a js-libp2p initiator takes the first muxer of the
responder's list that it supports). To agree with every peer whichever rule it applies, we:

* as responder, advertise only our most preferred muxer (``muxers[:1]``): under any rule, that
  is the only muxer the two lists can share;
* as initiator, after reading the responder's list, choose the first muxer of *our* list that the
  responder also lists and advertise only that one (``[choice]``, or nothing if there is none):
  under any rule, the responder arrives at the same muxer.

``early_muxer`` is then the single muxer both lists share, or ``None`` when they share none or the
peer sent no extensions (py-libp2p sends none); the upgrader then falls back to
multistream-select.

One limit of this policy: a js-libp2p peer aborts the connection (no fallback) when the other
side's non-empty list shares no muxer with its own. So a js dialer that lacks our *first* muxer
cannot connect to us even if it supports a later one; keep a muxer every peer has (yamux) first.
As initiator we never hit this: we advertise nothing when the responder's list has no match.
"""

from transports.noise._framing import MAX_FRAME_SIZE, FrameDecoder, encode_frame
from transports.noise._handshake import NOISE_PROTOCOL_NAME, HandshakeResult, NoiseHandshake
from transports.noise._noise import PROTOCOL_ID, Noise, NoiseSecureConnection
from transports.noise._payload import (
    SIGNATURE_PREFIX,
    HandshakePayload,
    decode_payload,
    encode_payload,
)
from transports.noise._transport import MAX_PLAINTEXT_PER_FRAME, NoiseTransportState

__all__ = [
    "MAX_FRAME_SIZE",
    "MAX_PLAINTEXT_PER_FRAME",
    "NOISE_PROTOCOL_NAME",
    "PROTOCOL_ID",
    "SIGNATURE_PREFIX",
    "FrameDecoder",
    "HandshakePayload",
    "HandshakeResult",
    "Noise",
    "NoiseHandshake",
    "NoiseSecureConnection",
    "NoiseTransportState",
    "decode_payload",
    "encode_frame",
    "encode_payload",
]
