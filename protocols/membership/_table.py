"""The member table of the SWIM core: the local member's own signed claim, the other members,
the randomised round-robin probe order, suspicions, and the rules that apply alive, suspect,
dead and leave claims (hashicorp/memberlist ``state.go`` ``aliveNode``/``suspectNode``/
``deadNode``, with signed alive and leave claims; docs/membership.md#state-machine)."""

from __future__ import annotations

import random

from p2pstack.identity import PeerId
from protocols.membership._lifeguard import Awareness, BroadcastQueue, Suspicion
from protocols.membership._shared import MemberOverlay, PeerSet, PeerSetOverlay, SharedView
from protocols.membership._types import (
    MAX_INCARNATION_JUMP,
    IncarnationTooFarError,
    InvalidClaimSignature,
    Member,
    MemberAlive,
    MemberDead,
    MemberEvent,
    MemberJoined,
    MemberLeft,
    MemberState,
    MemberSuspected,
    MemberTableFull,
    Metadata,
    MetadataChanged,
    SignFn,
    SwimConfig,
    VerifyFn,
    suspicion_timeout,
)
from protocols.membership._wire import (
    Alive,
    Broadcast,
    Dead,
    Leave,
    Suspect,
    alive_payload,
    leave_payload,
)

__all__ = ["MemberTable"]

_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)


class MemberTable:
    """Members and claims; :class:`SwimCore` adds probing, timers and messages on top."""

    def __init__(
        self,
        local: PeerId,
        addrs: tuple[bytes, ...],
        *,
        sign: SignFn,
        verify: VerifyFn,
        rng: random.Random,
        config: SwimConfig,
    ) -> None:
        self.local = local
        self.config = config
        self._sign = sign
        self._verify = verify
        self._rng = rng
        self._addrs = addrs
        self._metadata = Metadata()
        self._incarnation = 0
        self._self_alive = self._signed_alive()
        self._members: dict[PeerId, Member] = {}
        self._live = PeerSet()  # alive or suspect
        self._dead = PeerSet()  # dead, not yet forgotten
        self._order: list[PeerId] = []
        self._index = 0
        #: The next round's order once ``upcoming_probe_targets`` had to look past this round.
        self._next_order: list[PeerId] | None = None
        self._suspicions: dict[PeerId, Suspicion] = {}
        self._events: list[MemberEvent] = []
        self._queue = BroadcastQueue(config.max_broadcasts)
        self.awareness = Awareness(config.awareness_max_multiplier if config.lifeguard else 1)
        self.leaving = False
        self.claims_rejected = 0

    # --- self -----------------------------------------------------------------------------

    def _signed_alive(self) -> Alive:
        payload = alive_payload(self.local, self._incarnation, self._addrs, self._metadata)
        return Alive(
            self.local, self._incarnation, self._addrs, self._metadata, self._sign(payload)
        )

    def _bump_incarnation(self, above: int = 0) -> None:
        self._incarnation = max(self._incarnation, above) + 1
        self._self_alive = self._signed_alive()
        self._queue.push(self._self_alive)

    def _refute(self, claimed: int) -> None:
        if claimed > self._incarnation + MAX_INCARNATION_JUMP:
            self._bump_incarnation()
            raise IncarnationTooFarError(f"claim about us at incarnation {claimed}")
        self._bump_incarnation(claimed)
        if self.config.lifeguard:
            self.awareness.apply_delta(1)

    # --- table ----------------------------------------------------------------------------

    def adopt(self, view: SharedView) -> None:
        """Start from a converged view shared with other cores (instead of :meth:`preload`):
        every member of ``view`` alive, no events, nothing queued for gossip, a random probe
        order; this core copies a member's record only when it touches it. For simulations of
        many members (a full table per core would not fit in memory). ``members()`` then
        returns the view's own records for the members this core has not touched: read them,
        never change them."""
        self._members = MemberOverlay(view, self.local)
        self._live = PeerSetOverlay(view, self.local)
        self._dead = PeerSet()
        self._order = [p for p in view.ids if p != self.local]
        self._rng.shuffle(self._order)
        self._index = 0
        self._next_order = None
        self._suspicions.clear()

    def live_count(self) -> int:
        """Members alive or suspect, the local one included (memberlist's node estimate)."""
        return 1 + len(self._live)

    def _insert_probe_order(self, peer_id: PeerId) -> None:
        # A random position keeps the detection bound low on average (memberlist aliveNode).
        self._order.insert(self._rng.randint(0, len(self._order)), peer_id)
        if self._next_order is not None:
            self._next_order.insert(self._rng.randint(0, len(self._next_order)), peer_id)

    def _make_room(self) -> bool:
        if len(self._members) < self.config.max_members:
            return True
        gone = [m for m in self._members.values() if m.state not in _LIVE]
        if not gone:
            return False
        self._remove(min(gone, key=lambda m: m.state_change).peer_id)
        return True

    def _remove(self, peer_id: PeerId) -> None:
        del self._members[peer_id]
        self._live.discard(peer_id)
        self._dead.discard(peer_id)
        self._suspicions.pop(peer_id, None)
        i = self._order.index(peer_id)
        del self._order[i]
        if i < self._index:
            self._index -= 1
        if self._next_order is not None:
            self._next_order.remove(peer_id)

    def reap(self, now: float) -> None:
        """Forget dead and left members older than ``dead_retention``."""
        old = [
            m.peer_id
            for m in self._members.values()
            if m.state not in _LIVE and now - m.state_change >= self.config.dead_retention
        ]
        for peer_id in old:
            self._remove(peer_id)

    def _set_state(self, member: Member, state: MemberState, now: float) -> None:
        member.state = state
        member.state_change = now
        if state in _LIVE:
            self._live.add(member.peer_id)
        else:
            self._live.discard(member.peer_id)
        if state is MemberState.DEAD:
            self._dead.add(member.peer_id)
        else:
            self._dead.discard(member.peer_id)
        if state is not MemberState.SUSPECT:
            self._suspicions.pop(member.peer_id, None)

    # --- claims ---------------------------------------------------------------------------

    def apply(self, now: float, claim: Broadcast) -> None:
        """Apply one claim; rejected claims raise a :class:`SwimProtocolError` subclass."""
        match claim:
            case Alive():
                self._on_alive(now, claim)
            case Suspect():
                self._on_suspect(now, claim.peer_id, claim.incarnation, claim.sender, dead=False)
            case Dead():
                self._on_suspect(now, claim.peer_id, claim.incarnation, claim.sender, dead=True)
            case Leave():
                self._on_leave(now, claim)

    def _check_jump(self, member: Member, incarnation: int) -> None:
        if incarnation > member.incarnation + MAX_INCARNATION_JUMP:
            raise IncarnationTooFarError(
                f"claim about {member.peer_id} at incarnation {incarnation},"
                f" known {member.incarnation}"
            )

    def _on_alive(self, now: float, a: Alive, *, gossip: bool = True) -> None:
        if a.peer_id == self.local:
            if a.incarnation > self._incarnation and not self.leaving:
                self._refute(a.incarnation)  # an older life of ours: move above it
            return
        member = self._members.get(a.peer_id)
        if member is not None:
            if a.incarnation <= member.incarnation:
                return
            self._check_jump(member, a.incarnation)
        payload = alive_payload(a.peer_id, a.incarnation, a.addrs, a.metadata)
        if not self._verify(a.peer_id, payload, a.signature):
            raise InvalidClaimSignature(f"alive claim about {a.peer_id} not signed by it")
        if member is None:
            if not self._make_room():
                raise MemberTableFull(f"member table full ({self.config.max_members})")
            member = Member(a.peer_id, a.addrs, a.incarnation, MemberState.ALIVE, now, a.metadata)
            self._members[a.peer_id] = member
            self._live.add(a.peer_id)
            self._insert_probe_order(a.peer_id)
            self._events.append(MemberJoined(a.peer_id, a.incarnation))
        else:
            old_state = member.state
            if member.metadata != a.metadata:
                self._events.append(MetadataChanged(a.peer_id, a.metadata))
            member.addrs, member.metadata, member.incarnation = a.addrs, a.metadata, a.incarnation
            if old_state is not MemberState.ALIVE:
                self._set_state(member, MemberState.ALIVE, now)
                event = MemberAlive if old_state is MemberState.SUSPECT else MemberJoined
                self._events.append(event(a.peer_id, a.incarnation))
        member.alive_signature, member.alive_incarnation = a.signature, a.incarnation
        member.leave_signature = b""
        if gossip:
            self._queue.push(a)

    def _on_suspect(
        self, now: float, peer_id: PeerId, inc: int, sender: PeerId, *, dead: bool
    ) -> None:
        if peer_id == self.local:
            if not self.leaving and inc >= self._incarnation:
                self._refute(inc)
            return
        member = self._members.get(peer_id)
        if member is None or inc < member.incarnation or member.state not in _LIVE:
            return
        self._check_jump(member, inc)
        # Unsigned claims never raise an incarnation: only the member's own alive claim does, so
        # its refutation (above anything it signed) always overrides a liar's claim.
        inc = member.incarnation
        if dead:
            self._set_state(member, MemberState.DEAD, now)
            self._events.append(MemberDead(peer_id, inc))
            self._queue.push(Dead(peer_id, inc, sender))
        elif member.state is MemberState.SUSPECT:
            suspicion = self._suspicions.get(peer_id)
            if suspicion is not None and self.config.lifeguard and suspicion.confirm(sender):
                self._queue.push(Suspect(peer_id, inc, sender))
        else:
            self._start_suspicion(now, member, sender)

    def _start_suspicion(self, now: float, member: Member, sender: PeerId) -> None:
        self._set_state(member, MemberState.SUSPECT, now)
        n = self.live_count()
        min_t = suspicion_timeout(self.config.suspicion_mult, n, self.config.probe_interval)
        k = self.config.suspicion_mult - 2 if self.config.lifeguard else 0
        if n - 2 < k:
            k = 0
        max_t = self.config.suspicion_max_timeout_mult * min_t
        self._suspicions[member.peer_id] = Suspicion.new(now, sender, k, min_t, max_t)
        self._events.append(MemberSuspected(member.peer_id, member.incarnation))
        self._queue.push(Suspect(member.peer_id, member.incarnation, sender))

    def _on_leave(self, now: float, lv: Leave) -> None:
        if lv.peer_id == self.local:
            if not self.leaving and lv.incarnation >= self._incarnation:
                self._refute(lv.incarnation)  # a leave of an older life of ours
            return
        member = self._members.get(lv.peer_id)
        if (
            member is None
            or lv.incarnation < member.incarnation
            or member.state is MemberState.LEFT
        ):
            return
        self._check_jump(member, lv.incarnation)
        if not self._verify(lv.peer_id, leave_payload(lv.peer_id, lv.incarnation), lv.signature):
            raise InvalidClaimSignature(f"leave claim about {lv.peer_id} not signed by it")
        member.incarnation = lv.incarnation
        member.leave_signature = lv.signature
        self._set_state(member, MemberState.LEFT, now)
        self._events.append(MemberLeft(lv.peer_id, lv.incarnation))
        self._queue.push(lv)

    def expire_suspicions(self, now: float) -> None:
        """Declare dead the suspects whose suspicion timed out."""
        for peer_id, suspicion in list(self._suspicions.items()):
            if suspicion.deadline <= now:
                member = self._members[peer_id]
                self._on_suspect(now, peer_id, member.incarnation, self.local, dead=True)
