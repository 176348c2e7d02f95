"""Peer records: a peer's self-certified listen addresses, carried in a signed envelope
(https://github.com/libp2p/specs/blob/master/RFC/0003-routing-records.md), with the domain and
payload type that go-libp2p and js-libp2p use on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import attrs
from google.protobuf.message import DecodeError
from multiaddr import Multiaddr

from p2pstack._decode_multiaddr import decode_multiaddr
from p2pstack.errors import IdentityError, InvalidPeerIdError
from p2pstack.identity._envelope import Envelope
from p2pstack.identity._keys import PrivateKey
from p2pstack.identity._peer_id import PeerId
from p2pstack.identity.pb import peer_record_pb2

__all__ = ["MAX_PEER_RECORD_ADDRS", "PeerRecord"]

#: Most addresses accepted in a received record (go's identify keeps far fewer).
MAX_PEER_RECORD_ADDRS = 1024
_U64_MAX = (1 << 64) - 1


def _parse_addr(raw: bytes) -> Multiaddr:
    # Decoded fully now, so a bad address fails here instead of later in whoever uses the record.
    addr = decode_multiaddr(raw)
    if addr is None:
        raise IdentityError(f"peer record has an invalid address: {raw.hex()}")
    return addr


def _check_seq(_instance: object, _attribute: object, value: int) -> None:
    if not 0 <= value <= _U64_MAX:
        raise ValueError(f"seq must fit in a uint64, got {value}")


def _to_tuple(addrs: Iterable[Multiaddr]) -> tuple[Multiaddr, ...]:
    return tuple(addrs)


@attrs.frozen
class PeerRecord:
    """A peer's routing record: its peer ID, a sequence number and its listen addresses.

    Attributes:
        peer_id: whose addresses these are.
        seq: increases with every new record from the same peer (a uint64; unix time is common).
        addrs: the peer's addresses.
    """

    #: Signed-envelope domain used by go and js (``PeerRecordEnvelopeDomain``).
    DOMAIN: ClassVar[str] = "libp2p-peer-record"
    #: Envelope payload type: the multicodec ``libp2p-peer-record`` (0x0301) as go and js write it.
    PAYLOAD_TYPE: ClassVar[bytes] = b"\x03\x01"

    peer_id: PeerId
    seq: int = attrs.field(validator=_check_seq)
    addrs: tuple[Multiaddr, ...] = attrs.field(converter=_to_tuple)

    def to_bytes(self) -> bytes:
        """The serialized ``PeerRecord`` protobuf (the envelope payload)."""
        message = peer_record_pb2.PeerRecord(peer_id=self.peer_id.to_bytes(), seq=self.seq)
        for addr in self.addrs:
            message.addresses.add(multiaddr=addr.to_bytes())
        return message.SerializeToString(deterministic=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> PeerRecord:
        """Parse a serialized ``PeerRecord`` (no signature check: see ``from_envelope_bytes``).

        Raises:
            IdentityError: malformed record, invalid peer ID or address, or more than
                ``MAX_PEER_RECORD_ADDRS`` addresses.
        """
        message = peer_record_pb2.PeerRecord()
        try:
            message.ParseFromString(bytes(data))
        except DecodeError as exc:
            raise IdentityError(f"malformed peer record: {exc}") from exc
        if len(message.addresses) > MAX_PEER_RECORD_ADDRS:
            raise IdentityError(f"peer record has more than {MAX_PEER_RECORD_ADDRS} addresses")
        try:
            peer_id = PeerId.from_bytes(message.peer_id)
        except InvalidPeerIdError as exc:
            raise IdentityError(f"peer record has an invalid peer ID: {exc}") from exc
        addrs = tuple(_parse_addr(info.multiaddr) for info in message.addresses)
        return cls(peer_id, message.seq, addrs)

    def seal(self, private_key: PrivateKey) -> Envelope:
        """Sign this record into an envelope.

        Raises:
            IdentityError: ``private_key`` is not the key of ``peer_id``.
        """
        if not self.peer_id.matches(private_key.public_key):
            raise IdentityError(f"cannot sign a peer record for {self.peer_id} with another key")
        return Envelope.seal(private_key, self.DOMAIN, self.PAYLOAD_TYPE, self.to_bytes())

    @classmethod
    def from_envelope_bytes(cls, data: bytes) -> tuple[PeerRecord, Envelope]:
        """Open a signed peer record, as received in identify or from the DHT.

        Checks, in the order RFC 0003 requires: the envelope signature (for ``DOMAIN``), the
        payload type, then that the record's peer ID is the signer's.

        Returns:
            The record and the verified envelope (keep it to pass the record on).

        Raises:
            InvalidSignatureError: bad signature.
            IdentityError: malformed envelope or record, wrong payload type, or a record for a
                peer other than the signer.
        """
        envelope = Envelope.from_bytes(data, cls.DOMAIN)
        if envelope.payload_type != cls.PAYLOAD_TYPE:
            kind = envelope.payload_type.hex()
            raise IdentityError(f"envelope payload type {kind} is not a peer record")
        record = cls.from_bytes(envelope.payload)
        if not record.peer_id.matches(envelope.public_key):
            raise IdentityError(f"peer record for {record.peer_id} is signed by another key")
        return record, envelope
