"""Gossip membership, failure detection and load sharing: SWIM with the Lifeguard extensions as
the libp2p protocol ``/p2pstack/swim/1.0.0`` (docs/membership.md).

This package holds the sans-IO core and :class:`Membership`, the host service that drives it
over libp2p streams (``_service.py``, ``_links.py``). :class:`SwimCore` never does I/O, reads no
clock and draws randomness only from the ``random.Random`` it is given, so a simulation replays
from a seed.

Driver contract (everything is synchronous and cheap; call order is free):

* ``SwimCore(local_peer_id, addrs, sign=..., verify=..., rng=random.Random(seed), now=t0)``:
  ``addrs`` are our binary multiaddrs (announced in our alive claims). ``sign(payload)`` signs
  with the host key; ``verify(peer_id, payload, signature)`` checks with ``peer_id``'s public
  key (from the peer ID or the peerstore) and returns ``False`` rather than raising.
* ``handle_message(now, sender, data)``: one received message (one length-prefixed frame of at
  most ``config.max_push_pull_size`` bytes) from the authenticated remote peer. Raises a
  :class:`SwimProtocolError` subclass for bad input: close that stream, carry on.
* ``handle_timer(now)`` whenever ``now >= next_deadline()``; calling it early is harmless.
* ``outgoing()`` drains ``(peer_id, bytes)`` messages to send, each on a stream to that peer
  with the same framing; a failed send is just a lost message (SWIM tolerates loss).
* ``events()`` drains :data:`MemberEvent` values (joined, suspected, alive, dead, left,
  metadata changed).
* ``preload(now, claims)`` with other members' ``self_claim()`` starts from a known view
  (warm restarts; simulations that skip the join storm); ``adopt(SharedView(now, claims,
  verify))`` does the same for many cores in one process, sharing the view's records.
* ``join(now, seed_peer_id)``, ``leave(now)`` (then run until ``leave_pending`` is false),
  ``set_metadata(load=..., entries=...)``, ``members()``, ``member(peer_id)``,
  ``pick_member_by_load(rng)``, ``statistics()``.
* ``upcoming_probe_targets(k)``: the members probed next, so that the driver can connect a
  period ahead and keep a bounded connection set; with ``SwimConfig.gossip_window`` set, gossip
  goes only to members in that window too.
"""

from protocols.membership._core import SwimCore, SwimStatistics
from protocols.membership._decode import decode_message
from protocols.membership._policy import ConnectionPolicy
from protocols.membership._service import Membership
from protocols.membership._shared import SharedView
from protocols.membership._stats import MEMBER_EVENT_TYPES, MembershipStatistics
from protocols.membership._types import (
    MAX_INCARNATION_JUMP,
    PROTOCOL_ID,
    IncarnationTooFarError,
    InvalidClaimSignature,
    Member,
    MemberAlive,
    MemberDead,
    MemberEvent,
    MemberJoined,
    MemberLeft,
    MembershipError,
    MemberState,
    MemberSuspected,
    MemberTableFull,
    MessageTooLarge,
    Metadata,
    MetadataChanged,
    MetadataTooLarge,
    SignFn,
    SwimConfig,
    SwimProtocolError,
    VerifyFn,
    push_pull_scale,
    retransmit_limit,
    suspicion_timeout,
)
from protocols.membership._wire import Message, WireLimits, encode_message

__all__ = [
    "MAX_INCARNATION_JUMP",
    "MEMBER_EVENT_TYPES",
    "PROTOCOL_ID",
    "ConnectionPolicy",
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
    "Membership",
    "MembershipError",
    "MembershipStatistics",
    "Message",
    "MessageTooLarge",
    "Metadata",
    "MetadataChanged",
    "MetadataTooLarge",
    "SharedView",
    "SignFn",
    "SwimConfig",
    "SwimCore",
    "SwimProtocolError",
    "SwimStatistics",
    "VerifyFn",
    "WireLimits",
    "decode_message",
    "encode_message",
    "push_pull_scale",
    "retransmit_limit",
    "suspicion_timeout",
]
