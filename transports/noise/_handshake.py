"""Sans-IO libp2p Noise XX handshake (``Noise_XX_25519_ChaChaPoly_SHA256``, empty prologue).

Spec: https://github.com/libp2p/specs/blob/master/noise/README.md#handshake-pattern ::

    XX:
      -> e
      <- e, ee, s, es          (payload: responder's identity key, signature, extensions)
      -> s, se                 (payload: initiator's identity key, signature, extensions)

Inlined muxer negotiation (connections/inlined-muxer-negotiation.md) happens in the extensions;
see the package docstring for the policy. Keys are passed in: this module draws no randomness.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs
from cryptography.exceptions import InvalidTag
from noise.backends.default.keypairs import KeyPair25519
from noise.connection import Keypair, NoiseConnection
from noise.exceptions import NoiseHandshakeError, NoiseInvalidMessage, NoiseValueError
from noise.state import HandshakeState

from p2pstack.errors import (
    HandshakeError,
    IdentityError,
    LocalProtocolError,
    PeerIdMismatch,
    RemoteProtocolError,
)
from p2pstack.identity import PeerId, PublicKey
from transports.noise._framing import MAX_FRAME_SIZE, encode_frame
from transports.noise._payload import SIGNATURE_PREFIX, decode_payload, encode_payload

if TYPE_CHECKING:
    from p2pstack.identity import Identity

__all__ = ["NOISE_PROTOCOL_NAME", "HandshakeResult", "NoiseHandshake"]

NOISE_PROTOCOL_NAME = b"Noise_XX_25519_ChaChaPoly_SHA256"
#: X25519 private and public keys are 32 bytes.
DH_KEY_SIZE = 32

# Errors the noise library (and cryptography beneath it) raise on malformed messages.
_NOISE_ERRORS = (NoiseValueError, NoiseHandshakeError, NoiseInvalidMessage, InvalidTag, ValueError)


@attrs.frozen(kw_only=True)
class HandshakeResult:
    """What a completed handshake established.

    ``send_key``/``recv_key`` are the transport CipherState keys (nonces start at 0).
    """

    remote_public_key: PublicKey
    remote_peer: PeerId
    early_muxer: str | None
    send_key: bytes
    recv_key: bytes
    handshake_hash: bytes


class NoiseHandshake:
    """One side of the XX handshake; the driver moves its messages.

    The initiator calls ``write_message``, ``read_message``, ``write_message``; the responder
    ``read_message``, ``write_message``, ``read_message``. Then ``result`` is set.

    Args:
        initiator: our role.
        identity: our libp2p identity (signs our Noise static key).
        static_key: 32 bytes of our X25519 static private key (fresh per connection is fine).
        ephemeral_key: 32 random bytes for our X25519 ephemeral private key.
        muxers: our muxer preference list for inlined muxer negotiation.
        remote_peer: as initiator, the peer we dialed (checked before we reveal ourselves).
    """

    def __init__(
        self,
        *,
        initiator: bool,
        identity: Identity,
        static_key: bytes,
        ephemeral_key: bytes,
        muxers: Sequence[str] = (),
        remote_peer: PeerId | None = None,
    ) -> None:
        if len(static_key) != DH_KEY_SIZE or len(ephemeral_key) != DH_KEY_SIZE:
            raise ValueError("Noise keys must be 32 bytes")
        self._initiator = initiator
        self._identity = identity
        self._muxers = tuple(muxers)
        self._expected = remote_peer
        self._noise = NoiseConnection.from_name(NOISE_PROTOCOL_NAME)
        if initiator:
            self._noise.set_as_initiator()
        else:
            self._noise.set_as_responder()
        self._noise.set_keypair_from_private_bytes(Keypair.STATIC, static_key)
        self._noise.start_handshake()
        # Hold the handshake state: the library drops its reference once the handshake ends,
        # and the responder learns the remote static key only in that final message.
        self._state: HandshakeState = self._noise.noise_protocol.handshake_state
        # The library would draw the ephemeral key itself; supplying it keeps this core free
        # of hidden randomness (and deterministic under test).
        self._state.e = KeyPair25519.from_private_bytes(ephemeral_key)
        self._step = 0
        self._remote_key: PublicKey | None = None
        self._remote_peer: PeerId | None = None
        self._early_muxer: str | None = None
        self.result: HandshakeResult | None = None

    @property
    def initiator(self) -> bool:
        """Whether we are the initiator."""
        return self._initiator

    @property
    def complete(self) -> bool:
        """Whether all three messages have been exchanged."""
        return self.result is not None

    def _expect(self, writing: bool) -> None:
        writes = (0, 2) if self._initiator else (1,)
        if self._step > 2 or (self._step in writes) != writing:
            verb = "write" if writing else "read"
            raise LocalProtocolError(f"cannot {verb} Noise handshake message {self._step + 1}")

    def write_message(self) -> bytes:
        """Produce our next handshake message, framed with its 2-byte length.

        Raises:
            HandshakeError: the peer's ephemeral key is a low-order point (the DH gives zeros).
            LocalProtocolError: it is not our turn to write.
        """
        self._expect(writing=True)
        payload = b"" if self._step == 0 else self._signed_payload()
        try:
            message = self._noise.write_message(payload)
        except _NOISE_ERRORS as exc:
            # Message 1 is read without any DH, so a low-order ephemeral key from the initiator
            # surfaces only here, when the responder computes ee (cryptography refuses the
            # all-zero result; Noise section 12.1 allows aborting on it).
            raise HandshakeError(f"cannot write Noise handshake message {self._step + 1}") from exc
        self._step += 1
        self._maybe_finish()
        return encode_frame(message)

    def _signed_payload(self) -> bytes:
        static_public = self._state.s.public_bytes
        if self._initiator:
            # Advertise only the muxer we chose from the responder's list (or none), so that
            # a responder applying either rule arrives at the same one.
            adverts: Sequence[str] = (self._early_muxer,) if self._early_muxer else ()
        else:
            # Advertise only our favourite: whichever list the initiator decides by, it is
            # the only muxer the two of us can have in common.
            adverts = self._muxers[:1]
        return encode_payload(
            identity_key=self._identity.public_key.to_protobuf(),
            identity_sig=self._identity.private_key.sign(SIGNATURE_PREFIX + static_public),
            stream_muxers=adverts,
        )

    def read_message(self, message: bytes) -> None:
        """Consume the peer's next handshake message (without its length prefix).

        Raises:
            HandshakeError: the message is malformed, fails decryption, or carries an invalid
                identity key or signature.
            PeerIdMismatch: as initiator, the responder proved a peer other than ``remote_peer``.
            LocalProtocolError: it is not our turn to read.
        """
        self._expect(writing=False)
        if len(message) > MAX_FRAME_SIZE:
            raise HandshakeError("Noise handshake message too long")
        try:
            payload = bytes(self._noise.read_message(message))
        except _NOISE_ERRORS as exc:
            raise HandshakeError(f"invalid Noise handshake message {self._step + 1}") from exc
        if self._step > 0:
            # Message 1 has no static key to authenticate; its (unencrypted) payload is ignored.
            self._authenticate(payload)
        self._step += 1
        self._maybe_finish()

    def _authenticate(self, data: bytes) -> None:
        try:
            payload = decode_payload(data)
        except RemoteProtocolError as exc:
            raise HandshakeError(f"invalid Noise handshake payload: {exc}") from exc
        try:
            key = PublicKey.from_protobuf(payload.identity_key)
        except IdentityError as exc:
            raise HandshakeError(f"invalid identity key in Noise payload: {exc}") from exc
        remote_static = self._state.rs.public_bytes
        try:
            valid = key.verify(SIGNATURE_PREFIX + remote_static, payload.identity_sig)
        except IdentityError:
            valid = False
        if not valid:
            raise HandshakeError("Noise static key signature does not verify")
        peer = PeerId.from_public_key(key)
        if self._expected is not None and peer != self._expected:
            raise PeerIdMismatch(str(self._expected), str(peer))
        self._remote_key = key
        self._remote_peer = peer
        offered = payload.stream_muxers or ()
        if self._initiator:
            # Responder's list (message 2): choose by our preference order.
            self._early_muxer = next((m for m in self._muxers if m in offered), None)
        else:
            # Initiator's list (message 3) against the single muxer we advertised.
            self._early_muxer = next((m for m in offered if m in self._muxers[:1]), None)

    def _maybe_finish(self) -> None:
        if self._step < 3:
            return
        proto = self._noise.noise_protocol
        if self._remote_key is None or self._remote_peer is None:  # pragma: no cover
            raise LocalProtocolError("Noise handshake ended without authenticating the peer")
        self.result = HandshakeResult(
            remote_public_key=self._remote_key,
            remote_peer=self._remote_peer,
            early_muxer=self._early_muxer,
            send_key=bytes(proto.cipher_state_encrypt.k),
            recv_key=bytes(proto.cipher_state_decrypt.k),
            handshake_hash=bytes(proto.handshake_hash),
        )
