"""Fuzz targets for what carries identities: key protobufs and peer IDs, signed envelopes and
peer records, the identify message, the plaintext/2.0.0 ``Exchange`` and the libp2p TLS
certificate.
"""

from __future__ import annotations

import anyio
from multiaddr import Multiaddr

from fuzz._common import CHUNK_SIZES, check, chunks, split_control
from fuzz._noise import identities
from p2pstack.errors import CertificateError, IdentityError, RemoteProtocolError, SecurityError
from p2pstack.identity import (
    Envelope,
    PeerId,
    PeerRecord,
    PrivateKey,
    PublicKey,
    verify_certificate,
)
from p2pstack.interfaces import Buffer
from protocols.identify import decode_identify, decode_identify_stream, encode_identify
from transports.plaintext import Plaintext

__all__ = [
    "ScriptedConnection",
    "fuzz_envelope",
    "fuzz_identify",
    "fuzz_keys",
    "fuzz_peer_record",
    "fuzz_plaintext",
    "fuzz_tls_certificate",
]

#: The time certificates are checked at: inside the seeds' validity, and fixed so that a run
#: does not depend on the date.
CERTIFICATE_CHECK_TIME = 1_800_000_000.0


def fuzz_keys(data: bytes) -> None:
    """Control bit 0 selects a private or a public key protobuf; the same bytes are also read
    as a binary and a text peer ID. What decodes re-encodes to an equal value."""
    control, body = split_control(data)
    try:
        if control & 1:
            private = PrivateKey.from_protobuf(body)
            again = PrivateKey.from_protobuf(private.to_protobuf())
            check(again.public_key == private.public_key, "private key changed on re-encoding")
        else:
            key = PublicKey.from_protobuf(body)
            check(PublicKey.from_protobuf(key.to_protobuf()) == key, "key changed on re-encoding")
            check(PeerId.from_public_key(key).matches(key), "peer ID does not match its key")
    except IdentityError:
        pass
    for parse in (PeerId.from_bytes, _peer_id_from_text):
        try:
            peer = parse(body)
        except IdentityError:
            continue
        check(PeerId.from_string(str(peer)) == peer, "peer ID changed on re-encoding")
        try:
            peer.extract_public_key()
        except IdentityError:
            pass


def fuzz_tls_certificate(data: bytes) -> None:
    """Verify the bytes as a libp2p TLS certificate (X.509 DER with the SignedKey extension);
    only ``CertificateError`` may come out, and an accepted certificate names a usable key."""
    try:
        key = verify_certificate(data, now=CERTIFICATE_CHECK_TIME)
    except CertificateError:
        return
    check(PeerId.from_public_key(key).matches(key), "peer ID does not match the certified key")


def _peer_id_from_text(body: bytes) -> PeerId:
    return PeerId.from_string(body.decode("latin-1"))


def fuzz_envelope(data: bytes) -> None:
    """Open a signed envelope as a peer record, and as an envelope of another domain."""
    try:
        record, envelope = PeerRecord.from_envelope_bytes(data)
    except IdentityError:
        pass
    else:
        check(record.peer_id.matches(envelope.public_key), "record accepted from another signer")
    try:
        Envelope.from_bytes(data, "fuzz")
    except IdentityError:
        pass


def fuzz_peer_record(data: bytes) -> None:
    """Decode a peer record; what decodes re-encodes to an equal record."""
    try:
        record = PeerRecord.from_bytes(data)
    except IdentityError:
        return
    check(PeerRecord.from_bytes(record.to_bytes()) == record, "record changed on re-encoding")


def fuzz_identify(data: bytes) -> None:
    """Decode an identify stream; what decodes re-encodes and decodes to the same message."""
    try:
        message = decode_identify_stream(data)
    except RemoteProtocolError:
        return
    again = decode_identify(encode_identify(message))
    check(again == message, "identify message changed on re-encoding")
    for addr in (*message.listen_addrs, message.observed_addr):
        if addr is not None:
            check(Multiaddr(str(addr)) == addr, f"{addr} does not parse back")


class ScriptedConnection:
    """A ``RawConnection`` that returns scripted chunks, then end of stream; sends are dropped."""

    def __init__(self, script: list[bytes]) -> None:
        self._script = script
        self.closed = False

    @property
    def local_multiaddr(self) -> Multiaddr:
        return Multiaddr("/memory/1")

    @property
    def remote_multiaddr(self) -> Multiaddr:
        return Multiaddr("/memory/2")

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self.closed:
            raise anyio.ClosedResourceError
        if not self._script:
            raise anyio.EndOfStream
        chunk = self._script[0][:max_bytes]
        self._script[0] = self._script[0][max_bytes:]
        if not self._script[0]:
            self._script.pop(0)
        return chunk

    async def send(self, item: Buffer) -> None:
        if self.closed:
            raise anyio.ClosedResourceError

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        self.closed = True


def fuzz_plaintext(data: bytes) -> None:
    """Run the plaintext driver on the peer's bytes (cut into chunks by the control byte): it
    either fails with ``SecurityError`` and closes the connection, or it reports the peer whose
    key was sent and then delivers the bytes that followed the ``Exchange``."""
    control, body = split_control(data)
    script = list(chunks(body, CHUNK_SIZES[(control >> 1) & 7]))
    anyio.run(_plaintext, script, bool(control & 1), body)


async def _plaintext(script: list[bytes], outbound: bool, body: bytes) -> None:
    ours, theirs = identities()
    conn = ScriptedConnection(script)
    try:
        if outbound:
            secure = await Plaintext().secure_outbound(conn, ours, remote_peer=theirs.peer_id)
        else:
            secure = await Plaintext().secure_inbound(conn, ours)
    except SecurityError:
        check(conn.closed, "a failed exchange left the connection open")
        return
    check(secure.remote_peer.matches(secure.remote_public_key), "peer ID is not the key's")
    rest = bytearray()
    while True:
        try:
            rest += await secure.receive()
        except anyio.EndOfStream:
            break
    check(body.endswith(rest), "bytes after the Exchange were altered")
