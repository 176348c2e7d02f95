"""One run of the Sybil attack simulation: ``honest`` gossipsub nodes and Sybils (``Sybil``
behaviours) on a ``SybilOverlay`` with its own event queue, the publish workload, the spam and
the covert flash, and what is observed: every honest delivery, the honest nodes' meshes every
second, and the scores honest nodes give their honest and Sybil peers (docs/pubsub.md, "Sybil
attacks").
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from p2pstack.identity import Identity
from p2pstack.roots.scenarios._pubsub_net import EventQueue
from p2pstack.roots.scenarios._pubsub_sybil_behaviour import (
    SPAM_PREFIX,
    Sybil,
    SybilMode,
    SybilOverlay,
    greedy_config,
)
from p2pstack.roots.scenarios._pubsub_sybil_config import PubsubSybilConfig, honest_config
from p2pstack.sim import SeededRandom
from protocols.pubsub import GossipsubConfig, GossipsubRouter, Message, ValidationResult

__all__ = ["MeshSample", "ScoreSample", "SybilRun"]

#: Sybils advertise nothing (their IHAVEs would only earn them broken-promise penalties) and
#: keep a mesh as large as their peer count.
_SYBIL_BASE = GossipsubConfig(d_lazy=0, gossip_factor=0.0)


@attrs.frozen
class MeshSample:
    """The honest nodes' meshes at one time.

    Attributes:
        t: virtual time.
        honest_mean: mean honest peers per honest node's mesh.
        sybil_mean: mean Sybil peers per honest node's mesh.
        ok_fraction: share of honest nodes with at least D_lo honest mesh peers.
        clean_fraction: share of honest nodes without a Sybil in their mesh.
    """

    t: float
    honest_mean: float
    sybil_mean: float
    ok_fraction: float
    clean_fraction: float


@attrs.frozen
class ScoreSample:
    """Mean scores honest nodes give their peers, by kind of peer (``honest`` or a role)."""

    t: float
    means: dict[str, float]


def validate(message: Message) -> ValidationResult:
    """The topic validator of honest nodes: Sybils' spam is invalid."""
    if message.data.startswith(SPAM_PREFIX):
        return ValidationResult.REJECT
    return ValidationResult.ACCEPT


class SybilRun:
    """One network (see the module docstring), built from the seed the same way with or
    without scoring.

    Args:
        cfg: the workload settings.
        seed: the run's root seed.
        scoring: whether honest nodes score their peers.
    """

    def __init__(self, cfg: PubsubSybilConfig, seed: int, *, scoring: bool) -> None:
        self.cfg = cfg
        self.scoring = scoring
        self.rng = SeededRandom(seed, "pubsub_sybil")
        self.events = EventQueue()
        #: Message ID -> (publish time, publisher node).
        self.published: dict[bytes, tuple[float, int]] = {}
        #: Message ID -> delivery delays (seconds), one per honest node that delivered it.
        self.delays: dict[bytes, list[float]] = {}
        self.invalid_validated = 0
        self.mesh: list[MeshSample] = []
        self.scores: list[ScoreSample] = []
        self.sybils: list[Sybil] = []
        self.roles: list[str] = []
        self._d_lo = 0
        self.net = self._build()

    # -- building -------------------------------------------------------------------------------

    def _build(self) -> SybilOverlay:
        cfg = self.cfg
        ids = self.rng.child("identity")
        nodes = range(cfg.honest + cfg.sybils)
        identities = {i: Identity.generate(random_bytes=ids.random_bytes) for i in nodes}
        honest = honest_config(cfg, scoring=self.scoring)
        self._d_lo = honest.d_lo
        net = SybilOverlay(
            identities,
            honest=cfg.honest,
            config=honest,
            events=self.events,
            rng=self.rng.child("overlay"),
            validate=self._validate,
            on_deliver=self._delivered,
        )
        for i in range(cfg.honest):
            rng = self.rng.child(f"router/{i}")
            net.start(i, 0.0, [cfg.topic], router=self._router(identities[i], honest, rng))
        sybil = greedy_config(_SYBIL_BASE, cfg.sybil_peers)
        for j in range(cfg.sybils):
            ident = identities[cfg.honest + j]
            core = self._router(ident, sybil, self.rng.child(f"sybil/{j}"))
            net.start(cfg.honest + j, 0.0, [cfg.topic], router=core)
            role = cfg.roles[j % len(cfg.roles)]
            mode = {"drop": SybilMode.DROP, "spam": SybilMode.SPAM}.get(role, SybilMode.HONEST)
            behaviour = Sybil(core, mode, private_key=ident.private_key)
            net.sybils[cfg.honest + j] = behaviour
            self.sybils.append(behaviour)
            self.roles.append(role)
        links = self.rng.child("links")
        lat = (cfg.latency_min, cfg.latency_max)
        self._at(0.5, lambda now: self._connect_honest(links, lat, now))
        self._at(cfg.sybils_at, lambda now: self._connect_sybils(links, lat, now))
        self._at(cfg.publish_from, self._publish)
        self._at(cfg.flash_at, self._flash)
        self._at(1.0, self._spam)
        self._at(1.0, self._sample_mesh)
        self._at(cfg.score_sample_interval, self._sample_scores)
        return net

    @staticmethod
    def _router(ident: Identity, config: GossipsubConfig, rng: SeededRandom) -> GossipsubRouter:
        return GossipsubRouter(ident.peer_id, rng=rng, config=config, private_key=ident.private_key)

    def _at(self, when: float, call: Callable[[float], None]) -> None:
        """Run ``call(now)`` at virtual time ``when`` (not before the current time)."""
        self.events.at(max(when, self.events.now), lambda now, _: call(now))

    def _connect_honest(self, links: SeededRandom, lat: tuple[float, float], now: float) -> None:
        cfg, net = self.cfg, self.net
        for i in range(cfg.honest):
            others = [k for k in range(cfg.honest) if k != i]
            for k in links.sample(others, cfg.honest_peers):
                net.connect(i, k, now, latency=links.uniform(*lat))

    def _connect_sybils(self, links: SeededRandom, lat: tuple[float, float], now: float) -> None:
        cfg, net = self.cfg, self.net
        for j in range(cfg.sybils):
            for k in links.sample(range(cfg.honest), cfg.sybil_peers):
                net.connect(cfg.honest + j, k, now, latency=links.uniform(*lat))

    # -- activity -------------------------------------------------------------------------------

    def _validate(self, message: Message) -> ValidationResult:
        verdict = validate(message)
        if verdict is not ValidationResult.ACCEPT:
            self.invalid_validated += 1
        return verdict

    def _delivered(self, node: int, msg_id: bytes, now: float) -> None:
        sent = self.published.get(msg_id)
        if sent is not None:
            self.delays[msg_id].append(now - sent[0])

    def _publish(self, now: float) -> None:
        cfg, net = self.cfg, self.net
        pick = self.rng.child(f"publish/{round(now * 1000)}")
        node = pick.randrange(cfg.honest)
        seq = len(self.published).to_bytes(8, "big")
        data = seq + bytes(max(0, cfg.message_size - len(seq)))
        msg_id = net.publish(node, cfg.topic, data, now)
        assert msg_id is not None  # honest nodes never stop
        self.published[msg_id] = (now, node)
        self.delays[msg_id] = []
        if now + cfg.publish_interval <= cfg.run_for - cfg.deadline:
            self._at(now + cfg.publish_interval, self._publish)

    def _spam(self, now: float) -> None:
        self.net.spam(self.cfg.topic, self.cfg.spam_messages, now)
        self._at(now + self.cfg.spam_interval, self._spam)

    def _flash(self, now: float) -> None:
        for sybil, role in zip(self.sybils, self.roles, strict=True):
            if role == "covert":
                sybil.mode = SybilMode.DROP

    # -- observing ------------------------------------------------------------------------------

    def _honest_routers(self) -> list[GossipsubRouter]:
        routers = []
        for i in range(self.cfg.honest):
            router = self.net.nodes[i].router
            assert isinstance(router, GossipsubRouter)
            routers.append(router)
        return routers

    def _sample_mesh(self, now: float) -> None:
        cfg, net = self.cfg, self.net
        honest_total = sybil_total = ok = clean = 0
        for router in self._honest_routers():
            mesh = router.mesh.get(cfg.topic, set())
            honest = sum(1 for peer in mesh if net.index_of[peer] < cfg.honest)
            honest_total += honest
            sybil_total += len(mesh) - honest
            ok += honest >= self._d_lo
            clean += honest == len(mesh)
        n = cfg.honest
        sample = MeshSample(now, honest_total / n, sybil_total / n, ok / n, clean / n)
        self.mesh.append(sample)
        self._at(now + 1.0, self._sample_mesh)

    def _sample_scores(self, now: float) -> None:
        cfg, net = self.cfg, self.net
        sums: dict[str, list[float]] = {}
        for router in self._honest_routers():
            for peer in router.peers:
                index = net.index_of[peer]
                kind = "honest" if index < cfg.honest else self.roles[index - cfg.honest]
                sums.setdefault(kind, []).append(router.scoring.value(peer, now))
        means = {kind: sum(v) / len(v) for kind, v in sorted(sums.items())}
        self.scores.append(ScoreSample(now, means))
        self._at(now + cfg.score_sample_interval, self._sample_scores)

    def run_until(self, end: float) -> None:
        """Advance the network to virtual time ``end``."""
        self.events.run_until(end)
