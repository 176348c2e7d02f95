"""Plain values of libp2p pubsub (https://github.com/libp2p/specs/blob/master/pubsub/README.md):
the RPC and its parts as typed, immutable values, the protocol IDs, and the protocol's errors.

The values mirror ``rpc.proto`` field for field; ``_wire`` converts them to and from bytes.
Optional protobuf fields are ``None`` when absent (presence matters: a signature covers the
message exactly as it was encoded).
"""

from __future__ import annotations

import attrs

from p2pstack.errors import P2PError, RemoteProtocolError
from p2pstack.identity import PeerId

__all__ = [
    "FLOODSUB_PROTOCOL_ID",
    "GOSSIPSUB_V10_PROTOCOL_ID",
    "GOSSIPSUB_V11_PROTOCOL_ID",
    "GOSSIPSUB_V12_PROTOCOL_ID",
    "RPC",
    "ControlGraft",
    "ControlIDontWant",
    "ControlIHave",
    "ControlIWant",
    "ControlMessage",
    "ControlPrune",
    "Message",
    "MessageTooLarge",
    "PeerInfo",
    "PubsubError",
    "PubsubProtocolError",
    "SubOpts",
    "ValidationError",
]

FLOODSUB_PROTOCOL_ID = "/floodsub/1.0.0"
GOSSIPSUB_V10_PROTOCOL_ID = "/meshsub/1.0.0"
GOSSIPSUB_V11_PROTOCOL_ID = "/meshsub/1.1.0"
GOSSIPSUB_V12_PROTOCOL_ID = "/meshsub/1.2.0"


class PubsubError(P2PError):
    """Base class of the errors of the pubsub protocols."""


class PubsubProtocolError(PubsubError, RemoteProtocolError):
    """A peer sent bytes that are not a valid pubsub RPC (malformed protobuf, oversized, bad peer
    ID, invalid UTF-8 in a topic, a message without a topic)."""


class MessageTooLarge(PubsubError, ValueError):
    """A message to publish would not fit in an RPC of the configured size."""


class ValidationError(PubsubError, RemoteProtocolError):
    """A well-formed message breaks the signing policy: a missing or extra field, a bad key, a
    signature that does not verify, or a sender that does not match its key."""


def _tuple_of_bytes(value: object) -> tuple[bytes, ...]:
    return tuple(bytes(item) for item in value)  # type: ignore[attr-defined]


@attrs.frozen
class SubOpts:
    """A subscription change announced to a peer (``RPC.SubOpts``).

    Attributes:
        subscribe: ``True`` to subscribe, ``False`` to unsubscribe.
        topic: the topic.
    """

    subscribe: bool
    topic: str


@attrs.frozen(kw_only=True)
class Message:
    """A published message (``Message`` of the spec).

    Attributes:
        topic: the topic it was published on.
        data: the payload.
        from_: the original publisher (absent under StrictNoSign).
        seqno: the publisher's sequence number, 8 bytes big-endian (absent under StrictNoSign).
        signature: the publisher's signature (StrictSign).
        key: the publisher's public key as a protobuf, when its peer ID does not inline it.
    """

    topic: str
    data: bytes = b""
    from_: PeerId | None = None
    seqno: bytes | None = None
    signature: bytes | None = None
    key: bytes | None = None

    @property
    def seqno_int(self) -> int | None:
        """``seqno`` as an unsigned big-endian integer (``None`` when absent)."""
        return None if self.seqno is None else int.from_bytes(self.seqno, "big")


@attrs.frozen
class ControlIHave:
    """Gossip: the sender has these messages of ``topic`` in its cache."""

    topic: str
    message_ids: tuple[bytes, ...] = attrs.field(default=(), converter=_tuple_of_bytes)


@attrs.frozen
class ControlIWant:
    """Gossip: the sender asks for these messages."""

    message_ids: tuple[bytes, ...] = attrs.field(default=(), converter=_tuple_of_bytes)


@attrs.frozen
class ControlGraft:
    """The sender added the receiver to its mesh of ``topic``."""

    topic: str


@attrs.frozen
class PeerInfo:
    """A peer offered by peer exchange on PRUNE (gossipsub v1.1).

    Attributes:
        peer_id: the peer.
        signed_peer_record: a signed envelope holding its peer record (checked by the router).
    """

    peer_id: PeerId
    signed_peer_record: bytes | None = None


@attrs.frozen
class ControlPrune:
    """The sender removed the receiver from its mesh of ``topic``.

    Attributes:
        topic: the topic.
        peers: other peers of the topic to connect to (peer exchange, v1.1).
        backoff: seconds before the receiver may GRAFT again (v1.1; ``None`` when absent).
    """

    topic: str
    peers: tuple[PeerInfo, ...] = ()
    backoff: int | None = None


@attrs.frozen
class ControlIDontWant:
    """The sender already has these messages: do not send them to it (gossipsub v1.2)."""

    message_ids: tuple[bytes, ...] = attrs.field(default=(), converter=_tuple_of_bytes)


@attrs.frozen(kw_only=True)
class ControlMessage:
    """The gossipsub control part of an RPC."""

    ihave: tuple[ControlIHave, ...] = ()
    iwant: tuple[ControlIWant, ...] = ()
    graft: tuple[ControlGraft, ...] = ()
    prune: tuple[ControlPrune, ...] = ()
    idontwant: tuple[ControlIDontWant, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ihave or self.iwant or self.graft or self.prune or self.idontwant)


@attrs.frozen(kw_only=True)
class RPC:
    """One pubsub RPC: subscription changes, messages and control, all optional.

    Attributes:
        subscriptions: subscription changes of the sender.
        publish: messages.
        control: gossipsub control messages (``None`` when absent).
    """

    subscriptions: tuple[SubOpts, ...] = ()
    publish: tuple[Message, ...] = ()
    control: ControlMessage | None = None

    def __bool__(self) -> bool:
        return bool(self.subscriptions or self.publish or self.control)
