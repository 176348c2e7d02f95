"""SWIM on the simulator: one real ``SwimCore`` (``protocols.membership``) per member, driven
directly on a simulated message network with per-link latency and loss and the virtual clock
of an ``EventQueue`` (docs/membership.md, "Simulation results").

The cores are driven directly, not through the host service and libp2p streams: the full stack
costs about 14 times the CPU per message, and at 1,000 members that would not fit the 3-minute
budget. What the stack would add is modelled: every message is one frame on a connection, and
each member's ``ConnectionPolicy`` (the same object the driver uses) decides which connections
it keeps, so connections per member are counted as the driver would hold them. Claims are
signed with a per-member HMAC key instead of Ed25519 (the signature checks still run on every
claim; the real keys only cost CPU).

Starved members (CPU starvation: their timers run late) run their timers and read their
messages only at multiples of their ``tick``, as a process that gets the CPU only now and then,
or are frozen for a pause now and then (a process stopped, swapped out or blocked for seconds);
when they run again their late timers fire first, then they read what queued up.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
from collections.abc import Callable

import attrs

from p2pstack.identity import PeerId
from p2pstack.roots.scenarios._pubsub_net import EventQueue
from protocols.membership import (
    ConnectionPolicy,
    MemberEvent,
    SharedView,
    SwimConfig,
    SwimCore,
    SwimProtocolError,
)

__all__ = ["Starvation", "SwimNet", "member_id"]

#: One listen address announced by every member (8 bytes: /ip4/127.0.0.1/tcp/4096).
_ADDR = b"\x04\x7f\x00\x00\x01\x06\x10\x00"


def member_id(i: int) -> PeerId:
    """The peer ID of member ``i`` (a sha256 multihash of its index)."""
    return PeerId.from_bytes(b"\x12\x20" + hashlib.sha256(b"member %d" % i).digest())


_KEYS: dict[PeerId, bytes] = {}


def _key(p: PeerId) -> bytes:
    key = _KEYS.get(p)
    if key is None:
        key = _KEYS[p] = hashlib.sha256(b"sim key" + p.to_bytes()).digest()
    return key


def _sign(p: PeerId) -> Callable[[bytes], bytes]:
    key = _key(p)
    return lambda payload: hmac.digest(key, payload, "sha256")


class _Verifier:
    """Checks HMAC signatures, remembering the (peer, payload, signature) triples that passed:
    every member checks the same claims."""

    def __init__(self) -> None:
        self._good: set[tuple[PeerId, bytes, bytes]] = set()

    def __call__(self, p: PeerId, payload: bytes, signature: bytes) -> bool:
        if (p, payload, signature) in self._good:
            return True
        if not hmac.compare_digest(hmac.digest(_key(p), payload, "sha256"), signature):
            return False
        self._good.add((p, payload, signature))
        return True


@attrs.frozen
class Starvation:
    """How a starved member gets the CPU: only at multiples of ``tick`` (``tick > 0``), or
    always but for pauses of ``pause`` seconds every ``every`` seconds from ``phase``. With
    ``slow_reads`` only its message handling waits for the ticks; its timers run on time (slow
    message processing)."""

    tick: float = 0.0
    pause: float = 0.0
    every: float = 0.0
    phase: float = 0.0
    slow_reads: bool = False

    def _window(self, t: float) -> float:
        return self.phase + math.floor((t - self.phase) / self.every) * self.every

    def frozen(self, t: float) -> bool:
        """Whether a message arriving at ``t`` waits (always, for a ticking member)."""
        if self.tick > 0:
            return True
        start = self._window(t)
        return start <= t < start + self.pause

    def next_tick(self, t: float) -> float:
        return math.ceil(t / self.tick - 1e-9) * self.tick

    def resume_at(self, t: float) -> float:
        """When a timer due at ``t`` runs."""
        if self.slow_reads:
            return t
        if self.tick > 0:
            return math.ceil(t / self.tick - 1e-9) * self.tick
        if t == math.inf:
            return t
        start = self._window(t)
        return start + self.pause if start <= t < start + self.pause else t


#: (virtual time, observer index, event) callback.
EventSink = Callable[[float, int, MemberEvent], None]


class SwimNet:
    """``n`` members, all knowing each other at time 0 (``preload``), exchanging messages over
    links whose one-way latency is drawn uniformly in ``[latency_min, latency_max]`` once per
    pair, each message lost with probability ``loss``.

    Args:
        n: members.
        seed: the run's seed (cores, links, losses).
        config: every core's configuration.
        latency_min: least one-way link latency (seconds).
        latency_max: largest one-way link latency (seconds).
        loss: probability that a message is lost.
        policy: a new member's connection policy.
        on_event: receives every membership event.
        shared_view: the cores adopt one :class:`SharedView` instead of each preloading a full
            table (10,000 members fit in memory; the random draws differ from a preloaded run).
    """

    def __init__(
        self,
        n: int,
        *,
        seed: int,
        config: SwimConfig,
        latency_min: float,
        latency_max: float,
        loss: float,
        policy: Callable[[], ConnectionPolicy],
        on_event: EventSink,
        shared_view: bool = False,
    ) -> None:
        self.queue = EventQueue()
        self.rng = random.Random(f"swim-net/{seed}")
        self.ids = [member_id(i) for i in range(n)]
        verify = _Verifier()
        self.index = {p: i for i, p in enumerate(self.ids)}
        self.cores = [
            SwimCore(
                p,
                (_ADDR,),
                sign=_sign(p),
                verify=verify,
                rng=random.Random(f"swim/{seed}/{i}"),
                now=0.0,
                config=config,
            )
            for i, p in enumerate(self.ids)
        ]
        claims = [core.self_claim() for core in self.cores]
        if shared_view:
            view = SharedView(0.0, claims, verify)
            for core in self.cores:
                core.adopt(view)
        else:
            for core in self.cores:
                core.preload(0.0, claims)
                core.events()  # the joins of the preloaded view
        self.latency_min, self.latency_max, self.loss = latency_min, latency_max, loss
        self._links: dict[tuple[int, int], float] = {}
        self.policies = [policy() for _ in range(n)]
        #: Each member's open connections (member indexes; a connection is in both ends' sets).
        self.connections: list[set[int]] = [set() for _ in range(n)]
        #: Connections opened so far (ahead of a probe or on demand).
        self.opened = 0
        self.crashed: set[int] = set()
        #: Starved members: index -> how.
        self.starved: dict[int, Starvation] = {}
        self._inbox: dict[int, list[tuple[PeerId, bytes]]] = {}
        self._due: list[float] = [math.inf] * n
        self._on_event = on_event
        #: Messages and bytes sent by each member; protocol errors seen.
        self.sent = [0] * n
        self.bytes_sent = [0] * n
        self.errors = 0
        for i in range(n):
            self._reschedule(i)

    # --- faults ---------------------------------------------------------------------------

    def crash(self, i: int) -> None:
        """Member ``i`` stops at once: no timers, messages to it are lost."""
        self.crashed.add(i)
        for j in self.connections[i]:
            self.connections[j].discard(i)
            self.policies[j].forget(self.ids[i])
        self.connections[i].clear()

    def starve(self, i: int, tick: float) -> None:
        """Member ``i`` runs its timers and reads messages only at multiples of ``tick``."""
        self.starved[i] = Starvation(tick=tick)
        self._reschedule(i)

    def slow_reads(self, i: int, tick: float) -> None:
        """Member ``i`` reads its messages only at multiples of ``tick``; its timers run on
        time."""
        self.starved[i] = Starvation(tick=tick, slow_reads=True)
        self._reschedule(i)

    def pause(self, i: int, pause: float, every: float, phase: float) -> None:
        """Member ``i`` is frozen (no timers, no reads) for ``pause`` seconds every ``every``
        seconds from ``phase``; then its late timers fire and it reads what queued up."""
        self.starved[i] = Starvation(pause=pause, every=every, phase=phase)
        self._reschedule(i)

    def run_until(self, t: float) -> None:
        """Advance the network to virtual time ``t``."""
        self.queue.run_until(t)

    @property
    def now(self) -> float:
        return self.queue.now

    def live(self) -> list[int]:
        """Indexes of the members not crashed."""
        return [i for i in range(len(self.cores)) if i not in self.crashed]

    # --- connections ----------------------------------------------------------------------

    def _connect(self, i: int, j: int, now: float) -> None:
        if j not in self.connections[i]:
            self.connections[i].add(j)
            self.connections[j].add(i)
            self.opened += 1
        self.policies[i].used(self.ids[j], now)
        self.policies[j].used(self.ids[i], now)

    def manage_connections(self, now: float) -> None:
        """Each live member opens its ahead connections and closes what its policy says."""
        for i in self.live():
            core, policy = self.cores[i], self.policies[i]
            for peer in policy.ahead(core):
                j = self.index[peer]
                if j not in self.crashed and j not in self.connections[i]:
                    self.connections[i].add(j)
                    self.connections[j].add(i)
                    self.opened += 1
            connected = [self.ids[j] for j in sorted(self.connections[i])]
            for peer in policy.to_close(core, now, connected):
                j = self.index[peer]
                self.connections[i].discard(j)
                self.connections[j].discard(i)
                self.policies[j].forget(self.ids[i])

    # --- the event loop -------------------------------------------------------------------

    def latency(self, i: int, j: int) -> float:
        """The one-way latency of the link between members ``i`` and ``j`` (drawn at first use)."""
        pair = (i, j) if i < j else (j, i)
        lat = self._links.get(pair)
        if lat is None:
            lat = self._links[pair] = self.rng.uniform(self.latency_min, self.latency_max)
        return lat

    def flush(self, i: int) -> None:
        """Send what member ``i``'s core queued outside a timer or message (after a command
        such as ``set_metadata``) and reschedule its timer."""
        self._flush(i, self.queue.now)

    def _flush(self, i: int, now: float) -> None:
        core = self.cores[i]
        for peer, data in core.outgoing():
            j = self.index[peer]
            self.sent[i] += 1
            self.bytes_sent[i] += len(data)
            if j in self.crashed:
                continue
            self._connect(i, j, now)
            if self.rng.random() < self.loss:
                continue
            self.queue.at(now + self.latency(i, j), self._deliver, (i, j, data))
        for event in core.events():
            self._on_event(now, i, event)
        self._reschedule(i)

    def _deadline(self, i: int) -> float:
        d = self.cores[i].next_deadline()
        d = math.inf if d is None else d
        starved = self.starved.get(i)
        if starved is not None and starved.slow_reads:
            if self._inbox.get(i):
                d = min(d, starved.next_tick(self.queue.now))
        elif starved is not None:
            if self._inbox.get(i):
                d = min(d, self.queue.now)
            d = starved.resume_at(d)
        return d

    def _reschedule(self, i: int) -> None:
        d = self._deadline(i)
        if d != self._due[i]:
            self._due[i] = d
            if d < math.inf:
                self.queue.at(d, self._timer, (i, d))

    def _timer(self, now: float, arg: tuple[int, float]) -> None:
        i, d = arg
        if i in self.crashed or self._due[i] != d:
            return  # stale
        self._due[i] = math.inf
        self.cores[i].handle_timer(now)
        self._flush(i, now)
        # A starved process: its timers fire first, then it reads what queued up meanwhile.
        starved = self.starved.get(i)
        if starved is not None and starved.slow_reads and starved.next_tick(now) != now:
            self._reschedule(i)
            return  # a timer between its reading ticks
        for src, data in self._inbox.pop(i, []):
            self._handle(i, src, data, now)

    def _deliver(self, now: float, arg: tuple[int, int, bytes]) -> None:
        src, dst, data = arg
        if dst in self.crashed:
            return
        starved = self.starved.get(dst)
        if starved is not None and starved.frozen(now):
            self._inbox.setdefault(dst, []).append((self.ids[src], data))
            self._reschedule(dst)
            return
        self._handle(dst, self.ids[src], data, now)

    def _handle(self, i: int, src: PeerId, data: bytes, now: float) -> None:
        try:
            self.cores[i].handle_message(now, src, data)
        except SwimProtocolError:
            self.errors += 1
        self._flush(i, now)
