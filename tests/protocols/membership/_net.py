"""A deterministic in-memory network of SWIM cores with fake time, latency and loss."""

from __future__ import annotations

import hashlib
import heapq
import hmac
import math
import random
from collections.abc import Callable

from p2pstack.identity import PeerId
from protocols.membership import MemberEvent, SwimConfig, SwimCore, SwimProtocolError


def peer(i: int) -> PeerId:
    return PeerId.from_bytes(b"\x12\x20" + hashlib.sha256(b"member %d" % i).digest())


def _secret(p: PeerId) -> bytes:
    return hashlib.sha256(b"secret" + p.to_bytes()).digest()


def signer(p: PeerId) -> Callable[[bytes], bytes]:
    return lambda payload: hmac.new(_secret(p), payload, "sha256").digest()


def verify(p: PeerId, payload: bytes, signature: bytes) -> bool:
    return hmac.compare_digest(hmac.new(_secret(p), payload, "sha256").digest(), signature)


def make_core(
    i: int, seed: int = 0, now: float = 0.0, config: SwimConfig | None = None
) -> SwimCore:
    p = peer(i)
    return SwimCore(
        p,
        (b"\x04\x7f\x00\x00\x01\x06\x10\x00",),
        sign=signer(p),
        verify=verify,
        rng=random.Random(seed * 1000 + i),
        now=now,
        config=config,
    )


class Network:
    """Cores exchanging messages with ``latency`` seconds (plus up to 50% jitter) and ``loss``
    probability per message. Slow members run timers and read messages only every ``tick``."""

    def __init__(
        self,
        n: int,
        *,
        seed: int = 1,
        loss: float = 0.0,
        latency: float = 0.005,
        config: SwimConfig | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.loss = loss
        self.latency = latency
        self.cores = {peer(i): make_core(i, seed, 0.0, config) for i in range(n)}
        self.crashed: set[PeerId] = set()
        self.slow: dict[PeerId, float] = {}
        self.inbox: dict[PeerId, list[tuple[PeerId, bytes]]] = {}
        self.events: list[tuple[float, PeerId, MemberEvent]] = []
        self.errors: list[tuple[PeerId, SwimProtocolError]] = []
        self.messages = 0
        self._queue: list[tuple[float, int, PeerId, PeerId, bytes]] = []
        self._counter = 0
        self._due: dict[PeerId, float] = {}
        self._timers: list[tuple[float, int, PeerId]] = []
        for p in self.cores:
            self._reschedule(p)

    def set_slow(self, p: PeerId, tick: float) -> None:
        """``p``'s timers fire and its reads happen only at multiples of ``tick``."""
        self.slow[p] = tick
        self._reschedule(p)

    def _reschedule(self, p: PeerId) -> None:
        d = self._deadline(p)
        if self._due.get(p) != d:
            self._due[p] = d
            self._counter += 1
            heapq.heappush(self._timers, (d, self._counter, p))

    def _next_timer(self) -> tuple[float, PeerId | None]:
        while self._timers:
            d, _, p = self._timers[0]
            if p in self.crashed or self._due.get(p) != d:
                heapq.heappop(self._timers)
                continue
            return d, p
        return math.inf, None

    def join_all(self) -> None:
        first = peer(0)
        for p, core in self.cores.items():
            if p != first:
                core.join(self.now, first)
            self._flush(p)

    def send(self, src: PeerId, dst: PeerId, data: bytes) -> None:
        self.messages += 1
        if self.rng.random() < self.loss:
            return
        delay = self.latency * (1 + 0.5 * self.rng.random())
        self._counter += 1
        heapq.heappush(self._queue, (self.now + delay, self._counter, src, dst, data))

    def _flush(self, p: PeerId) -> None:
        core = self.cores[p]
        for dst, data in core.outgoing():
            self.send(p, dst, data)
        for event in core.events():
            self.events.append((self.now, p, event))
        self._reschedule(p)

    def _deliver(self, src: PeerId, dst: PeerId, data: bytes) -> None:
        try:
            self.cores[dst].handle_message(self.now, src, data)
        except SwimProtocolError as exc:
            self.errors.append((dst, exc))
        self._flush(dst)

    def _deadline(self, p: PeerId) -> float:
        d = self.cores[p].next_deadline()
        d = math.inf if d is None else d
        tick = self.slow.get(p)
        if tick is not None:
            pending = math.inf if not self.inbox.get(p) else self.now
            d = math.ceil(min(d, pending) / tick - 1e-9) * tick
        return d

    def run(self, duration: float) -> None:
        end = self.now + duration
        while True:
            t_core, who = self._next_timer()
            t_msg = self._queue[0][0] if self._queue else math.inf
            t = min(t_core, t_msg)
            if t > end:
                self.now = end
                return
            self.now = max(self.now, t)
            if t_msg <= t_core:
                _, _, src, dst, data = heapq.heappop(self._queue)
                if dst in self.crashed:
                    continue
                if dst in self.slow:
                    self.inbox.setdefault(dst, []).append((src, data))
                    self._reschedule(dst)
                else:
                    self._deliver(src, dst, data)
                continue
            assert who is not None
            # A starved process: its timers fire first, then it reads what queued up meanwhile.
            self.cores[who].handle_timer(self.now)
            self._flush(who)
            for src, data in self.inbox.pop(who, []):
                self._deliver(src, who, data)

    def state_of(self, observer: PeerId, subject: PeerId) -> object:
        m = self.cores[observer].member(subject)
        return None if m is None else m.state

    def first(self, kind: type, subject: PeerId) -> float | None:
        times = [t for t, _, e in self.events if isinstance(e, kind) and e.peer_id == subject]
        return min(times) if times else None
