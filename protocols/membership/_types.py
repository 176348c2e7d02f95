"""Plain values of the SWIM membership core: configuration (hashicorp/memberlist's
``DefaultLANConfig``), member states, metadata, members, events and the protocol's errors."""

from __future__ import annotations

import enum
import math
import types
from collections.abc import Callable, Mapping

import attrs

from p2pstack.errors import LocalProtocolError, P2PError, RemoteProtocolError
from p2pstack.identity import PeerId

__all__ = [
    "MAX_INCARNATION_JUMP",
    "PROTOCOL_ID",
    "IncarnationTooFarError",
    "InvalidClaimSignature",
    "Member",
    "MemberAlive",
    "MemberDead",
    "MemberEvent",
    "MemberJoined",
    "MemberLeft",
    "MemberState",
    "MemberSuspected",
    "MemberTableFull",
    "MembershipError",
    "MessageTooLarge",
    "Metadata",
    "MetadataChanged",
    "MetadataTooLarge",
    "SignFn",
    "SwimConfig",
    "SwimProtocolError",
    "VerifyFn",
    "push_pull_scale",
    "retransmit_limit",
    "suspicion_timeout",
]

#: Our own protocol: SWIM with the Lifeguard extensions (docs/membership.md).
PROTOCOL_ID = "/p2pstack/swim/1.0.0"

#: A claim whose incarnation exceeds what we know of that member by more than this is refused
#: (:class:`IncarnationTooFarError`). An honest member advances its own incarnation by one per
#: refutation or metadata update, so 2**16 leaves room for a long partition while stopping a
#: liar from pushing a member's incarnation toward the top of the 64-bit range in a few steps.
MAX_INCARNATION_JUMP = 1 << 16

#: ``sign(payload) -> signature`` with the local peer's key.
SignFn = Callable[[bytes], bytes]
#: ``verify(peer_id, payload, signature) -> bool`` with ``peer_id``'s public key.
VerifyFn = Callable[[PeerId, bytes, bytes], bool]


class MembershipError(P2PError):
    """Base class of the membership protocol's errors."""


class SwimProtocolError(RemoteProtocolError, MembershipError):
    """A peer sent a SWIM message that does not decode or breaks the protocol's rules."""


class MessageTooLarge(SwimProtocolError):
    """A message exceeds the size bound (on decoding) or would exceed it (on encoding)."""


class MetadataTooLarge(SwimProtocolError, LocalProtocolError):
    """Metadata exceeds :attr:`SwimConfig.max_metadata_size`: a remote claim carrying it is
    refused, and :meth:`SwimCore.set_metadata` raises it for local metadata."""


class InvalidClaimSignature(SwimProtocolError):
    """An alive or leave claim is not signed by the member it is about."""


class IncarnationTooFarError(SwimProtocolError):
    """A claim's incarnation is more than :data:`MAX_INCARNATION_JUMP` ahead of the known one."""


class MemberTableFull(MembershipError):
    """A new member was refused: the table holds :attr:`SwimConfig.max_members` live members."""


class MemberState(enum.IntEnum):
    """A member's state; values are the wire's ``MemberRecord.State``."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


def _frozen_entries(entries: Mapping[str, bytes]) -> Mapping[str, bytes]:
    return types.MappingProxyType(dict(entries))


@attrs.frozen
class Metadata:
    """A member's gossiped metadata: the app's ``load`` figure (lower is less loaded) and a small
    key/value set. Its version is the member's incarnation: each change is a new signed alive
    claim."""

    load: float = 0.0
    entries: Mapping[str, bytes] = attrs.field(factory=dict, converter=_frozen_entries, hash=False)

    def encoded_size(self) -> int:
        """The size counted against :attr:`SwimConfig.max_metadata_size`: 8 bytes for the load
        plus the UTF-8 keys and the values."""
        return 8 + sum(len(k.encode()) + len(v) for k, v in self.entries.items())


@attrs.define
class Member:
    """One member as the local core sees it (a mutable record owned by the core; copy what you
    keep). ``addrs`` are binary multiaddrs as the member announced them."""

    peer_id: PeerId
    addrs: tuple[bytes, ...]
    incarnation: int
    state: MemberState
    state_change: float
    metadata: Metadata
    #: The signature of the alive claim at ``alive_incarnation`` (forwarded unchanged).
    alive_signature: bytes = b""
    alive_incarnation: int = 0
    leave_signature: bytes = b""


@attrs.frozen
class MemberJoined:
    """A member became known, or came back after being dead or having left."""

    peer_id: PeerId
    incarnation: int


@attrs.frozen
class MemberAlive:
    """A suspected member was seen alive again (it refuted the suspicion)."""

    peer_id: PeerId
    incarnation: int


@attrs.frozen
class MemberSuspected:
    """A member is suspected of having failed."""

    peer_id: PeerId
    incarnation: int


@attrs.frozen
class MemberDead:
    """A member was declared dead (its suspicion timed out, or a peer told us)."""

    peer_id: PeerId
    incarnation: int


@attrs.frozen
class MemberLeft:
    """A member left gracefully (a leave claim it signed)."""

    peer_id: PeerId
    incarnation: int


@attrs.frozen
class MetadataChanged:
    """A member's metadata changed."""

    peer_id: PeerId
    metadata: Metadata


MemberEvent = (
    MemberJoined | MemberAlive | MemberSuspected | MemberDead | MemberLeft | MetadataChanged
)


def suspicion_timeout(mult: int, n: int, interval: float) -> float:
    """memberlist's ``suspicionTimeout``: ``mult * max(1, log10(n)) * interval`` seconds."""
    return mult * max(1.0, math.log10(max(1, n))) * interval


#: Members above which memberlist stretches the push-pull interval (``pushPullScaleThreshold``).
PUSH_PULL_SCALE_THRESHOLD = 32


def push_pull_scale(interval: float, n: int) -> float:
    """memberlist's ``pushPullScale``: the push-pull interval times
    ``ceil(log2(n) - log2(32)) + 1`` above 32 members (so that each member's share of the
    anti-entropy traffic, which carries the whole table, stays bounded as the cluster grows)."""
    if n <= PUSH_PULL_SCALE_THRESHOLD:
        return interval
    return (math.ceil(math.log2(n) - math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1) * interval


def retransmit_limit(mult: int, n: int) -> int:
    """memberlist's ``retransmitLimit``: ``mult * ceil(log10(n + 1))``."""
    return mult * math.ceil(math.log10(n + 1))


@attrs.frozen(kw_only=True)
class SwimConfig:
    """Parameters; defaults are hashicorp/memberlist's ``DefaultLANConfig`` where it has one.

    Times are seconds. ``lifeguard=False`` turns off the local health multiplier, the dynamic
    suspicion timeout (the timeout is then the minimum) and buddy probing, for comparisons.
    """

    probe_interval: float = 1.0
    probe_timeout: float = 0.5
    indirect_checks: int = 3
    suspicion_mult: int = 4
    suspicion_max_timeout_mult: int = 6
    retransmit_mult: int = 4
    awareness_max_multiplier: int = 8
    gossip_interval: float = 0.2
    gossip_nodes: int = 3
    #: Gossip targets are drawn among the next this-many probe targets (the members the driver
    #: keeps connections to); ``None`` draws among every live member as memberlist does.
    gossip_window: int | None = None
    push_pull_interval: float = 30.0
    #: Dead and left members are kept (to answer and to refute stale claims) this long.
    dead_retention: float = 30.0
    lifeguard: bool = True
    max_members: int = 16384
    max_metadata_size: int = 512
    max_addrs: int = 8
    max_addr_len: int = 128
    #: Bound of a probe or gossip message; piggybacked broadcasts fill up to ``piggyback_bytes``.
    max_message_size: int = 64 * 1024
    piggyback_bytes: int = 4096
    #: Bound of a push-pull message (the whole member table).
    max_push_pull_size: int = 16 * 1024 * 1024
    #: Bound on queued broadcasts (oldest, most transmitted dropped first).
    max_broadcasts: int = 4096
