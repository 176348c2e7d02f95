"""The sans-IO SWIM core: probing (ping, ping-req, nack), timers, gossip, push-pull, join and
leave over :class:`MemberTable` (docs/membership.md; the driver contract is in the package
docstring)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable

import attrs

from p2pstack.identity import PeerId
from protocols.membership._decode import decode_message
from protocols.membership._table import MemberTable
from protocols.membership._types import (
    Member,
    MemberEvent,
    MemberState,
    MemberTableFull,
    Metadata,
    MetadataTooLarge,
    SignFn,
    SwimConfig,
    SwimProtocolError,
    VerifyFn,
    push_pull_scale,
    retransmit_limit,
)
from protocols.membership._wire import (
    Ack,
    Alive,
    Broadcast,
    Dead,
    Leave,
    MemberRecord,
    Message,
    Nack,
    Ping,
    PingReq,
    Primary,
    PushPull,
    Suspect,
    WireLimits,
    broadcast_size,
    encode_message,
    leave_payload,
)

__all__ = ["SwimCore", "SwimStatistics"]

_MAX_RELAYS = 1024


@attrs.define
class _Probe:
    target: PeerId
    seq: int
    direct_deadline: float
    deadline: float
    indirect: bool = False
    helpers: frozenset[PeerId] = frozenset()
    nackers: set[PeerId] = attrs.field(factory=set)
    acked: bool = False


@attrs.define
class _Relay:
    requester: PeerId
    seq: int
    deadline: float


@attrs.frozen
class SwimStatistics:
    """A snapshot of counters (for simulations and metrics)."""

    messages_sent: int
    bytes_sent: int
    messages_received: int
    claims_rejected: int
    awareness: int
    live_members: int
    broadcasts_queued: int


class SwimCore(MemberTable):
    """SWIM + Lifeguard membership of one local member; see the package docstring."""

    def __init__(
        self,
        local: PeerId,
        addrs: tuple[bytes, ...] = (),
        *,
        sign: SignFn,
        verify: VerifyFn,
        rng: random.Random,
        now: float,
        config: SwimConfig | None = None,
    ) -> None:
        super().__init__(
            local, addrs, sign=sign, verify=verify, rng=rng, config=config or SwimConfig()
        )
        cfg = self.config
        self._limits = WireLimits(
            max_size=cfg.max_push_pull_size,
            max_metadata_size=cfg.max_metadata_size,
            max_addrs=cfg.max_addrs,
            max_addr_len=cfg.max_addr_len,
        )
        self._out: list[tuple[PeerId, bytes]] = []
        self._seq = 0
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        # Staggered starts, as memberlist's timers, so that members do not probe in lockstep.
        self._next_probe = now + rng.uniform(0, cfg.probe_interval)
        self._next_gossip = now + rng.uniform(0, cfg.gossip_interval)
        self._next_push_pull = now + rng.uniform(0, cfg.push_pull_interval)
        self._push_pull_started = False
        self._sent = self._bytes = self._received = 0

    # --- driver API -----------------------------------------------------------------------

    def outgoing(self) -> list[tuple[PeerId, bytes]]:
        """Drain the messages to send: ``(peer, encoded message)`` pairs, in order."""
        out, self._out = self._out, []
        return out

    def events(self) -> list[MemberEvent]:
        """Drain the membership events since the last call, in order."""
        events, self._events = self._events, []
        return events

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next be called (it may be called earlier)."""
        times = [self._next_probe, self._next_push_pull]
        if len(self._queue):
            times.append(self._next_gossip)
        if self._probe is not None and not self._probe.indirect and not self._probe.acked:
            times.append(self._probe.direct_deadline)
        times.extend(r.deadline for r in self._relays.values())
        times.extend(s.deadline for s in self._suspicions.values())
        return min(times)

    def handle_timer(self, now: float) -> None:
        """Run every timer due at ``now``: nacks, probe phases, suspicions, gossip, push-pull."""
        for seq, relay in list(self._relays.items()):
            if relay.deadline <= now:
                del self._relays[seq]
                self._send(relay.requester, Nack(relay.seq))
        probe = self._probe
        if (
            probe is not None
            and not probe.acked
            and not probe.indirect
            and probe.direct_deadline <= now
        ):
            self._start_indirect(probe)
        self.expire_suspicions(now)
        if now >= self._next_probe:
            self._finish_probe(now)
            if not self.leaving:
                self._start_probe(now)
            # A probe runs its whole (scaled) interval even when this timer ran late, and
            # missed periods are not caught up (memberlist's probe blocks for its interval).
            self._next_probe = now + self._probe_interval()
        if now >= self._next_gossip:
            self._gossip(now)
            self._next_gossip = max(self._next_gossip + self.config.gossip_interval, now + 1e-3)
        if now >= self._next_push_pull:
            self._next_push_pull = now + push_pull_scale(
                self.config.push_pull_interval, self.live_count()
            )
            if not self._push_pull_started:
                # memberlist's trigger: a random stagger, then the first (scaled) interval.
                self._push_pull_started = True
                return
            partner = self._live.sample(self._rng, 1, lambda p: True)
            if partner and not self.leaving:
                self._send(partner[0], self._push_pull(join=False, reply=False))

    def handle_message(self, now: float, sender: PeerId, data: bytes) -> None:
        """Process one message from ``sender`` (the authenticated libp2p peer).

        Every valid claim in it is applied even if others are refused.

        Raises:
            SwimProtocolError: the message does not decode, or (after the rest was applied) one
                of its claims was refused (bad signature, incarnation too far ahead, oversized
                metadata). The driver closes that stream; nothing else is affected. A full
                member table is not an error of the sender: such claims are only counted.
        """
        message = decode_message(data, self._limits)
        if not isinstance(message.primary, PushPull) and len(data) > self.config.max_message_size:
            raise SwimProtocolError(f"SWIM message of {len(data)} bytes")
        self._received += 1
        error: SwimProtocolError | None = None
        claims: list[Broadcast] = list(message.broadcasts)
        # Lifeguard's buddy system: a prober that still suspects us (its claim is older than our
        # refutation, which missed it) gets our current claim with the ack.
        stale = self.config.lifeguard and any(
            isinstance(c, (Suspect, Dead))
            and c.peer_id == self.local
            and c.incarnation < self._incarnation
            for c in claims
        )
        if isinstance(message.primary, PushPull):
            claims.extend(self._merge_claims(sender, message.primary.members))
        for claim in claims:
            try:
                self.apply(now, claim)
            except MemberTableFull:
                self.claims_rejected += 1
            except SwimProtocolError as exc:
                self.claims_rejected += 1
                error = error or exc
        if message.primary is not None:
            self._on_primary(now, sender, message.primary, stale)
        if error is not None:
            raise error

    def join(self, now: float, seed: PeerId) -> None:
        """Join through ``seed`` (a member the driver can reach): a push-pull exchange with it."""
        if self.leaving:  # a rejoin: a new life above the leave claim
            self.leaving = False
            self._bump_incarnation()
        self._send(seed, self._push_pull(join=True, reply=False))

    def leave(self, now: float) -> None:
        """Leave gracefully: a signed leave claim is gossiped; probing stops. The driver keeps
        running timers until :attr:`leave_pending` is false (or its own timeout)."""
        if self.leaving:
            return
        self.leaving = True
        self._incarnation += 1
        signature = self._sign(leave_payload(self.local, self._incarnation))
        self._queue.push(Leave(self.local, self._incarnation, signature))
        self._gossip(now)

    def self_claim(self) -> Alive:
        """Our current signed alive claim (what push-pull and gossip carry about us)."""
        return self._self_alive

    def preload(self, now: float, claims: Iterable[Alive]) -> None:
        """Start from a known view: apply signed alive claims (ours included, which is skipped)
        without queuing them for gossip, as after a completed join. For warm restarts and for
        simulations that start from a converged cluster instead of paying the join storm (every
        join is gossiped to every member, N² · retransmit limit claims in all).

        Raises:
            SwimProtocolError: a claim was refused (the others are applied).
        """
        error: SwimProtocolError | None = None
        for claim in claims:
            try:
                # Not queued for gossip (the claim is known to all): saves encoding each one.
                self._on_alive(now, claim, gossip=False)
            except MemberTableFull:
                self.claims_rejected += 1
            except SwimProtocolError as exc:
                self.claims_rejected += 1
                error = error or exc
            self._queue.discard(claim.peer_id)
        if error is not None:
            raise error

    @property
    def leave_pending(self) -> bool:
        """``True`` while our leave claim is still queued for retransmission."""
        return self.leaving and self.local in self._queue

    def set_metadata(
        self, *, load: float | None = None, entries: dict[str, bytes] | None = None
    ) -> None:
        """Change our metadata (a new incarnation, gossiped as a signed alive claim).

        Raises:
            MetadataTooLarge: the encoded size exceeds ``max_metadata_size``.
        """
        meta = Metadata(
            load=self._metadata.load if load is None else load,
            entries=self._metadata.entries if entries is None else entries,
        )
        if meta.encoded_size() > self.config.max_metadata_size:
            raise MetadataTooLarge(f"metadata of {meta.encoded_size()} bytes")
        if meta != self._metadata:
            self._metadata = meta
            self._bump_incarnation()

    @property
    def incarnation(self) -> int:
        return self._incarnation

    @property
    def metadata(self) -> Metadata:
        return self._metadata

    def members(self) -> list[Member]:
        """Every known member other than the local one (live, dead and left)."""
        return list(self._members.values())

    def member(self, peer_id: PeerId) -> Member | None:
        return self._members.get(peer_id)

    def pick_member_by_load(self, rng: random.Random | None = None) -> PeerId | None:
        """Power of two choices: two random alive members, the one with the lower gossiped load
        (``None`` with no alive member; the only one with one)."""
        rng = rng or self._rng
        pair = [
            self._members[p]
            for p in self._live.sample(
                rng, 2, lambda p: self._members[p].state is MemberState.ALIVE
            )
        ]
        if not pair:
            return None
        return min(pair, key=lambda m: m.metadata.load).peer_id

    def upcoming_probe_targets(self, k: int) -> list[PeerId]:
        """The next (at most) ``k`` distinct members to be probed, in the order of their next
        probe, so that the driver can connect to them ahead. Near the end of a round the next
        round's order is drawn now (and then used), so the answer reaches ``k`` whenever ``k``
        members are live."""
        out: list[PeerId] = []
        live = (MemberState.ALIVE, MemberState.SUSPECT)
        for peer_id in itertools.islice(self._order, self._index, None):
            if len(out) >= k:
                return out
            if self._members[peer_id].state in live:
                out.append(peer_id)
        if len(out) < k and len(self._order) > 0:
            if self._next_order is None:
                self._next_order = list(self._order)
                self._rng.shuffle(self._next_order)
            for peer_id in self._next_order:
                if len(out) >= k:
                    break
                if self._members[peer_id].state in live and peer_id not in out:
                    out.append(peer_id)
        return out

    def statistics(self) -> SwimStatistics:
        return SwimStatistics(
            messages_sent=self._sent,
            bytes_sent=self._bytes,
            messages_received=self._received,
            claims_rejected=self.claims_rejected,
            awareness=self.awareness.score,
            live_members=self.live_count(),
            broadcasts_queued=len(self._queue),
        )

    # --- sending --------------------------------------------------------------------------

    def _send(
        self, peer: PeerId, primary: Primary | None, first: tuple[Broadcast, ...] = ()
    ) -> None:
        """Queue ``primary`` for ``peer`` with as many broadcasts as fit the piggyback budget."""
        budget = self.config.piggyback_bytes - sum(broadcast_size(b) for b in first)
        limit = retransmit_limit(self.config.retransmit_mult, self.live_count())
        # A buddy probe already carries the suspicion of the target first.
        skip = (lambda b: b.peer_id == peer) if first else None
        if isinstance(primary, PushPull):  # carries the whole state: nothing piggybacked
            extra: list[bytes] = []
            data = encode_message(Message(primary, first), max_size=self.config.max_push_pull_size)
        else:
            extra = [encoded for _, encoded in self._queue.take(budget, limit, skip=skip)]
            data = encode_message(
                Message(primary, first), max_size=self.config.max_message_size, encoded=extra
            )
        if primary is None and not first and not extra:
            return
        self._out.append((peer, data))
        self._sent += 1
        self._bytes += len(data)

    def _gossip(self, now: float) -> None:
        if not len(self._queue):
            return
        k = self.config.gossip_nodes
        window = self.config.gossip_window
        if window is not None:
            pool = self.upcoming_probe_targets(window)
            targets = self._rng.sample(pool, min(k, len(pool)))
        else:
            targets = self._live.sample(self._rng, k, lambda p: True)
            # memberlist also gossips to the recently dead (GossipToTheDeadTime): a live member
            # wrongly declared dead hears it and refutes. One may take a target's place, in
            # proportion to how many there are.
            recent = self._dead.sample(self._rng, 1, lambda p: self._recently_dead(p, now))
            if recent and (
                len(targets) < k
                or self._rng.random() < k * len(self._dead) / (len(self._dead) + len(self._live))
            ):
                targets = targets[: k - 1] + recent
        for peer in targets:
            self._send(peer, None)

    def _recently_dead(self, peer_id: PeerId, now: float) -> bool:
        return now - self._members[peer_id].state_change < self.config.dead_retention

    def _push_pull(self, *, join: bool, reply: bool) -> PushPull:
        records = [MemberRecord(self._self_alive, MemberState.ALIVE, self._incarnation)]
        # Stay within the push-pull bound whatever the members announced (each record is its
        # alive claim plus a few bytes of state and a leave signature).
        room = self.config.max_push_pull_size - broadcast_size(self._self_alive) - 64
        for m in self._members.values():
            if m.alive_signature:
                alive = _alive_of(m)
                room -= broadcast_size(alive) + len(m.leave_signature) + 32
                if room < 0:
                    break
                records.append(MemberRecord(alive, m.state, m.incarnation, m.leave_signature))
        return PushPull(join, reply, tuple(records))

    def _merge_claims(self, sender: PeerId, records: tuple[MemberRecord, ...]) -> list[Broadcast]:
        claims: list[Broadcast] = []
        for r in records[: self.config.max_members + 1]:
            claims.append(r.alive)
            if r.state is MemberState.LEFT:
                claims.append(Leave(r.alive.peer_id, r.incarnation, r.leave_signature))
            elif r.state is not MemberState.ALIVE:
                # memberlist's mergeState: a remote "dead" only makes us suspect.
                claims.append(Suspect(r.alive.peer_id, r.incarnation, sender))
        return claims

    # --- probing --------------------------------------------------------------------------

    def _probe_interval(self) -> float:
        return self.awareness.scale(self.config.probe_interval)

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return self._seq

    def _next_target(self, now: float) -> PeerId | None:
        for _ in range(2):
            while self._index < len(self._order):
                peer_id = self._order[self._index]
                self._index += 1
                if self._members[peer_id].state in (MemberState.ALIVE, MemberState.SUSPECT):
                    return peer_id
            # End of a round: forget the long dead, reshuffle (memberlist resetNodes), or take
            # the order already drawn for upcoming_probe_targets.
            self.reap(now)
            if self._next_order is not None:
                self._order, self._next_order = self._next_order, None
            else:
                self._rng.shuffle(self._order)
            self._index = 0
        return None

    def _start_probe(self, now: float) -> None:
        target = self._next_target(now)
        if target is None:
            return
        seq = self._next_seq()
        interval = self._probe_interval()
        timeout = self.awareness.scale(self.config.probe_timeout)
        self._probe = _Probe(target, seq, now + timeout, now + interval)
        member = self._members[target]
        first: tuple[Broadcast, ...] = ()
        if member.state is MemberState.SUSPECT and self.config.lifeguard:
            # Lifeguard's buddy system: tell the suspect directly so that it can refute at once.
            first = (Suspect(target, member.incarnation, self.local),)
        self._send(target, Ping(seq, target), first)

    def _start_indirect(self, probe: _Probe) -> None:
        probe.indirect = True
        helpers = self._live.sample(
            self._rng,
            self.config.indirect_checks,
            lambda p: p != probe.target and self._members[p].state is MemberState.ALIVE,
        )
        probe.helpers = frozenset(helpers)
        for helper in helpers:
            self._send(helper, PingReq(probe.seq, probe.target))

    def _finish_probe(self, now: float) -> None:
        probe, self._probe = self._probe, None
        if probe is None:
            return
        if probe.acked:
            self.awareness.apply_delta(-1)
            return
        if not probe.indirect:
            self._start_indirect(probe)  # timers ran late: count the missing nacks below
        # Lifeguard: missing nacks mean our own links or timers are suspect, not just the target.
        expected = len(probe.helpers)
        self.awareness.apply_delta(expected - len(probe.nackers) if expected else 1)
        member = self._members.get(probe.target)
        if member is not None:
            # Suspects the target, or confirms an existing suspicion as one more member's view.
            self._on_suspect(now, probe.target, member.incarnation, self.local, dead=False)

    def _about_sender(self, sender: PeerId) -> tuple[Broadcast, ...]:
        """What a pinging member must hear first: that we suspect it or hold it dead (so that it
        refutes at once even when that claim has left every gossip queue)."""
        member = self._members.get(sender)
        if member is None or member.state is MemberState.ALIVE:
            return ()
        if member.state is MemberState.SUSPECT:
            return (Suspect(sender, member.incarnation, self.local),)
        if member.state is MemberState.DEAD:
            return (Dead(sender, member.incarnation, self.local),)
        return ()

    def _on_primary(self, now: float, sender: PeerId, primary: Primary, stale: bool) -> None:
        match primary:
            case Ping(seq, target):
                if target == self.local:
                    first = self._about_sender(sender)
                    if stale and not self.leaving:
                        first = (*first, self._self_alive)
                    self._send(sender, Ack(seq), first)
            case Ack(seq):
                probe = self._probe
                if (
                    probe is not None
                    and probe.seq == seq
                    and (sender == probe.target or sender in probe.helpers)
                ):
                    probe.acked = True
                relay = self._relays.pop(seq, None)
                if relay is not None:
                    self._send(relay.requester, Ack(relay.seq))
            case PingReq(seq, target):
                if target == self.local or self.leaving:
                    return
                if len(self._relays) >= _MAX_RELAYS:
                    del self._relays[next(iter(self._relays))]
                local_seq = self._next_seq()
                self._relays[local_seq] = _Relay(sender, seq, now + self.config.probe_timeout)
                self._send(target, Ping(local_seq, target))
            case Nack(seq):
                probe = self._probe
                if probe is not None and probe.seq == seq and sender in probe.helpers:
                    probe.nackers.add(sender)
            case PushPull(_, reply, _):
                if not reply:
                    self._send(sender, self._push_pull(join=False, reply=True))


def _alive_of(m: Member) -> Alive:
    return Alive(m.peer_id, m.alive_incarnation, m.addrs, m.metadata, m.alive_signature)
