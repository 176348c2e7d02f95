"""DCUtR wire format: ``HolePunch`` messages (CONNECT, SYNC) with observed addresses, length
prefixed (https://github.com/libp2p/specs/blob/master/relay/DCUtR.md#rpc-messages).

Decoding is strict about what the state machine relies on (a known ``type``, the size bound)
and lenient about addresses: an ``ObsAddrs`` entry that is not a valid multiaddr is dropped and
counted, as the other implementations do, so that one bad entry does not spoil the others.
"""

from __future__ import annotations

import enum

import attrs
from google.protobuf.message import DecodeError
from multiaddr import Multiaddr

from p2pstack.errors import RemoteProtocolError
from p2pstack.framing import encode_lp
from p2pstack.multiaddrs import decode_multiaddr
from protocols.dcutr.pb.holepunch_pb2 import HolePunch

__all__ = [
    "MAX_ADDRS",
    "MAX_MESSAGE_SIZE",
    "PROTOCOL_ID",
    "DcutrMessage",
    "MalformedMessageError",
    "MessageType",
    "UnexpectedMessageError",
    "decode_message",
    "encode_body",
    "encode_message",
]

PROTOCOL_ID = "/libp2p/dcutr"
#: "Implementations SHOULD refuse encoded RPC messages (length prefix excluded) larger than
#: 4 KiB."
MAX_MESSAGE_SIZE = 4096
#: Most addresses kept from one message (more are ignored); also the most we send.
MAX_ADDRS = 32


class MessageType(enum.IntEnum):
    """``HolePunch.Type``."""

    CONNECT = 100
    SYNC = 300


class MalformedMessageError(RemoteProtocolError):
    """A DCUtR message that is not a valid ``HolePunch`` (bad protobuf, no or unknown type)."""


class UnexpectedMessageError(RemoteProtocolError):
    """A valid DCUtR message that the protocol does not allow at this point (a SYNC before
    any CONNECT, a CONNECT sent to the side that opened the stream, too many rounds)."""


@attrs.frozen
class DcutrMessage:
    """A decoded ``HolePunch``.

    Attributes:
        type: CONNECT or SYNC.
        addrs: the ``ObsAddrs`` that parsed as multiaddrs (at most ``MAX_ADDRS``).
        invalid: how many entries were dropped (unparseable, or past ``MAX_ADDRS``).
    """

    type: MessageType
    addrs: tuple[Multiaddr, ...] = ()
    invalid: int = 0


def encode_message(msg: DcutrMessage) -> bytes:
    """The length-prefixed encoding of ``msg`` (addresses beyond ``MAX_ADDRS`` are left out).

    Raises:
        ValueError: the encoding would exceed ``MAX_MESSAGE_SIZE``.
    """
    return encode_lp(encode_body(msg))


def encode_body(msg: DcutrMessage) -> bytes:
    """The protobuf body of ``msg``, without the length prefix (see ``encode_message``)."""
    pb = HolePunch(type=HolePunch.Type.ValueType(msg.type))
    pb.ObsAddrs.extend(addr.to_bytes() for addr in msg.addrs[:MAX_ADDRS])
    body = pb.SerializeToString()
    if len(body) > MAX_MESSAGE_SIZE:
        raise ValueError(f"DCUtR message of {len(body)} bytes exceeds {MAX_MESSAGE_SIZE}")
    return body


def decode_message(body: bytes) -> DcutrMessage:
    """Decode one message body (length prefix already removed).

    Raises:
        MalformedMessageError: over ``MAX_MESSAGE_SIZE``, not a protobuf, or no known type.
    """
    if len(body) > MAX_MESSAGE_SIZE:
        raise MalformedMessageError(f"DCUtR message of {len(body)} bytes exceeds 4 KiB")
    pb = HolePunch()
    try:
        pb.ParseFromString(body)
    except DecodeError as exc:
        raise MalformedMessageError(f"DCUtR message is not a HolePunch: {exc}") from None
    # proto2 keeps an unknown enum value among the unknown fields: HasField is then false.
    if not pb.HasField("type"):
        raise MalformedMessageError("DCUtR message has no (known) type")
    addrs: list[Multiaddr] = []
    invalid = 0
    for raw in pb.ObsAddrs:
        if len(addrs) >= MAX_ADDRS:
            invalid += 1
            continue
        addr = decode_multiaddr(raw)
        if addr is None:
            invalid += 1
        else:
            addrs.append(addr)
    return DcutrMessage(MessageType(pb.type), tuple(addrs), invalid)
