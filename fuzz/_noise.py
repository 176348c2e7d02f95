"""Fuzz targets for the Noise security channel: framing, transport decryption, the handshake
payload and the XX handshake messages (https://github.com/libp2p/specs/blob/master/noise/README.md).

Every key is fixed, so an input always takes the same path (a crash reproduces from its bytes).
The handshake target can wrap the fuzzed bytes in a correctly encrypted message, so that the
payload checks behind the AEAD are reached, not only the decryption failure in front of them.
"""

from __future__ import annotations

import functools

from noise.backends.default.keypairs import KeyPair25519
from noise.connection import Keypair, NoiseConnection

from fuzz._common import CHUNK_SIZES, check, chunks, split_control
from p2pstack.errors import RemoteProtocolError, SecurityError
from p2pstack.identity import Identity, PeerId, PrivateKey
from transports.noise import (
    MAX_FRAME_SIZE,
    MAX_PLAINTEXT_PER_FRAME,
    NOISE_PROTOCOL_NAME,
    FrameDecoder,
    NoiseHandshake,
    NoiseTransportState,
    decode_payload,
    encode_payload,
)

__all__ = [
    "INITIATOR_KEY_HEX",
    "RESPONDER_KEY_HEX",
    "STATIC_KEYS",
    "fuzz_noise_frames",
    "fuzz_noise_handshake",
    "fuzz_noise_payload",
    "handshake_core",
    "helper_peer",
    "identities",
]

#: Fixed Ed25519 identities (libp2p ``PrivateKey`` protobufs): the initiator's is the js-libp2p
#: fixture of the peer-ids spec vectors, the responder's a fixed seed of 32 bytes 0x01.
INITIATOR_KEY_HEX = (
    "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4a144"
    "b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
)
RESPONDER_KEY_HEX = (
    "08011240" + "01" * 32 + "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
)
#: X25519 static and ephemeral private keys: (initiator static, initiator ephemeral,
#: responder static, responder ephemeral).
STATIC_KEYS = (bytes([2]) * 32, bytes([3]) * 32, bytes([4]) * 32, bytes([5]) * 32)
_SEND_KEY = bytes(range(32))
_RECV_KEY = bytes(range(32, 64))


@functools.cache
def identities() -> tuple[Identity, Identity]:
    """The (initiator, responder) identities every handshake run uses."""
    return (
        Identity.from_private_key(PrivateKey.from_protobuf(bytes.fromhex(INITIATOR_KEY_HEX))),
        Identity.from_private_key(PrivateKey.from_protobuf(bytes.fromhex(RESPONDER_KEY_HEX))),
    )


def fuzz_noise_payload(data: bytes) -> None:
    """Decode a handshake payload; what decodes re-encodes and decodes to the same fields."""
    try:
        payload = decode_payload(data)
    except RemoteProtocolError:
        return
    again = decode_payload(
        encode_payload(
            identity_key=payload.identity_key,
            identity_sig=payload.identity_sig,
            stream_muxers=payload.stream_muxers,
        )
    )
    check(again.identity_key == payload.identity_key, "identity_key changed on re-encoding")
    check(again.identity_sig == payload.identity_sig, "identity_sig changed on re-encoding")
    check(
        (again.stream_muxers or ()) == (payload.stream_muxers or ()),
        "stream_muxers changed on re-encoding",
    )


def fuzz_noise_frames(data: bytes) -> None:
    """Control bit 0 clear: the peer's raw bytes go to the frame decoder and to a transport
    state. Set: the rest is a list of messages (1-byte length each) that a sender encrypts; the
    ciphertext, with one byte flipped if control bit 4 is set, is fed in chunks, and what
    decrypts must be a prefix of what was sent (all of it when nothing was flipped)."""
    control, body = split_control(data)
    size = CHUNK_SIZES[(control >> 1) & 7]
    if not control & 1:
        _raw_frames(body, size)
        return
    messages = _messages(body)
    sender = NoiseTransportState(_SEND_KEY, _RECV_KEY)
    wire = bytearray(b"".join(sender.encrypt(m) for m in messages))
    flipped = bool(control & 0x10) and bool(wire)
    if flipped:
        wire[(control * 7919 + len(body)) % len(wire)] ^= 1 << (control >> 5)
    receiver = NoiseTransportState(_RECV_KEY, _SEND_KEY)
    plain = bytearray()
    try:
        for chunk in chunks(bytes(wire), size):
            receiver.receive_data(chunk)
            while piece := receiver.read(max(1, size)):
                plain += piece
    except RemoteProtocolError:
        check(flipped, "an intact frame failed authentication")
    sent = b"".join(messages)
    check(sent.startswith(plain), "decrypted bytes differ from the bytes sent")
    if not flipped:
        check(plain == sent and not receiver.has_partial_frame, "intact frames were not all read")


def _messages(body: bytes) -> list[bytes]:
    out = []
    pos = 0
    while pos < len(body):
        length = body[pos]
        out.append(body[pos + 1 : pos + 1 + length] * (1 + length // 64))
        pos += 1 + length
    return out


def _raw_frames(body: bytes, size: int) -> None:
    decoder = FrameDecoder()
    try:
        for chunk in chunks(body, size):
            decoder.feed(chunk)
            while (frame := decoder.next_frame()) is not None:
                check(len(frame) <= MAX_FRAME_SIZE, "frame longer than the maximum")
    except RemoteProtocolError:
        pass
    state = NoiseTransportState(_RECV_KEY, _SEND_KEY)
    try:
        for chunk in chunks(body, size):
            state.receive_data(chunk)
    except RemoteProtocolError:
        try:
            state.receive_data(b"\x00")
        except RemoteProtocolError:
            return
        check(False, "a failed transport state accepted more input")
    check(state.pending <= len(body), "more plaintext than ciphertext")


def fuzz_noise_handshake(data: bytes) -> None:
    """Control byte mod 4 selects what the fuzzed bytes are: 0 message 1 to a responder, 1 raw
    message 2 to an initiator, 2 the payload of a correctly encrypted message 2, 3 the payload of
    a correctly encrypted message 3. Bit 2 makes the initiator expect the responder's peer ID,
    bit 3 a different one. Only ``SecurityError`` (handshake failure, peer ID mismatch) may
    come out; a handshake that is accepted must complete."""
    control, body = split_control(data)
    mode = control & 3
    try:
        if mode == 0:
            core = handshake_core(initiator=False, control=control)
            core.read_message(body)
            core.write_message()
        elif mode in (1, 2):
            core = handshake_core(initiator=True, control=control)
            first = core.write_message()[2:]
            core.read_message(body if mode == 1 else _message_2(first, body))
            core.write_message()
            check(core.complete, "initiator accepted message 2 but did not complete")
        else:
            core = handshake_core(initiator=False, control=control)
            peer = helper_peer(initiator=True)
            core.read_message(bytes(peer.write_message()))
            peer.read_message(core.write_message()[2:])
            core.read_message(bytes(peer.write_message(body)))
            check(core.complete, "responder accepted message 3 but did not complete")
    except SecurityError:
        return


def handshake_core(*, initiator: bool, control: int) -> NoiseHandshake:
    """A handshake core with the fixed keys of its role; control bits 2 and 3 pick the peer ID
    an initiator expects (the responder's, or a wrong one)."""
    ours, theirs = identities() if initiator else identities()[::-1]
    expected: PeerId | None = None
    if initiator and control & 8:
        expected = ours.peer_id  # anybody but the responder
    elif initiator and control & 4:
        expected = theirs.peer_id
    keys = STATIC_KEYS[:2] if initiator else STATIC_KEYS[2:]
    return NoiseHandshake(
        initiator=initiator,
        identity=ours,
        static_key=keys[0],
        ephemeral_key=keys[1],
        muxers=("/yamux/1.0.0", "/mplex/6.7.0"),
        remote_peer=expected,
    )


def helper_peer(*, initiator: bool) -> NoiseConnection:
    """A bare Noise XX peer (no libp2p payload logic) with the fixed keys of that role, whose
    messages can carry any payload."""
    peer = NoiseConnection.from_name(NOISE_PROTOCOL_NAME)
    if initiator:
        peer.set_as_initiator()
    else:
        peer.set_as_responder()
    static, ephemeral = STATIC_KEYS[:2] if initiator else STATIC_KEYS[2:]
    peer.set_keypair_from_private_bytes(Keypair.STATIC, static)
    peer.start_handshake()
    peer.noise_protocol.handshake_state.e = KeyPair25519.from_private_bytes(ephemeral)
    return peer


def _message_2(message_1: bytes, payload: bytes) -> bytes:
    peer = helper_peer(initiator=False)
    peer.read_message(message_1)
    return bytes(peer.write_message(payload[: MAX_PLAINTEXT_PER_FRAME - 64]))
