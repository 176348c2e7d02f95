"""Sybil behaviours (``Sybil``) and the overlay they run on (``SybilOverlay``): what a dropping
Sybil withholds, what a spamming one sends, and that a message whose only path crosses a
dropping Sybil is lost while an honest one carries it."""

from __future__ import annotations

import random

import pytest

from p2pstack.identity import Identity
from p2pstack.roots.scenarios._pubsub_net import EventQueue
from p2pstack.roots.scenarios._pubsub_sybil_behaviour import (
    SPAM_PREFIX,
    Sybil,
    SybilMode,
    SybilOverlay,
    greedy_config,
)
from p2pstack.roots.scenarios._pubsub_sybil_run import validate
from p2pstack.sim import SeededRandom
from protocols.pubsub import (
    RPC,
    ControlGraft,
    ControlIWant,
    ControlMessage,
    GossipsubConfig,
    GossipsubRouter,
    Message,
    SubOpts,
    ValidationResult,
    make_message,
)

TOPIC = "t"


def _identity(rng: SeededRandom) -> Identity:
    return Identity.generate(random_bytes=rng.random_bytes)


def _sybil(mode: SybilMode, rng: SeededRandom, ident: Identity | None = None) -> Sybil:
    ident = ident or _identity(rng)
    core = GossipsubRouter(
        ident.peer_id,
        rng=random.Random(1),
        config=greedy_config(GossipsubConfig(), 3),
        private_key=ident.private_key,
    )
    core.subscribe(TOPIC, 0.0)
    return Sybil(core, mode, private_key=ident.private_key)


def _message(rng: SeededRandom, data: bytes = b"ok") -> Message:
    return make_message(TOPIC, data, private_key=_identity(rng).private_key, seqno=1)


def test_greedy_config_grafts_every_peer_without_scoring() -> None:
    cfg = greedy_config(GossipsubConfig(), 80)
    assert (cfg.d_lo, cfg.d, cfg.d_hi) == (80, 80, 80)
    assert cfg.score_params is None and cfg.d_score == 0
    assert greedy_config(GossipsubConfig(), 3).d == 12  # never below D_hi


def test_drop_withholds_messages_and_iwants_keeps_other_control() -> None:
    rng = SeededRandom(1, "drop")
    sybil = _sybil(SybilMode.DROP, rng)
    peer = _identity(rng).peer_id
    message = _message(rng)
    control = ControlMessage(graft=(ControlGraft(TOPIC),), iwant=(ControlIWant((b"id",)),))
    out = [
        (peer, RPC(publish=(message,))),
        (peer, RPC(subscriptions=(SubOpts(True, TOPIC),), publish=(message,), control=control)),
        (peer, RPC(control=ControlMessage(iwant=(ControlIWant((b"id",)),)))),
    ]
    kept = sybil.filter(out)
    assert kept == [
        (
            peer,
            RPC(subscriptions=(SubOpts(True, TOPIC),), control=ControlMessage(graft=control.graft)),
        )
    ]
    assert sybil.withheld == 2
    sybil.mode = SybilMode.HONEST
    assert sybil.filter(out) == out


def test_spam_sends_invalid_messages_to_the_mesh_only_in_spam_mode() -> None:
    rng = SeededRandom(1, "spam")
    sybil = _sybil(SybilMode.SPAM, rng)
    assert sybil.spam(TOPIC, 2) == []  # no mesh yet
    peers = [_identity(rng).peer_id for _ in range(2)]
    for peer in peers:
        sybil.router.add_peer(peer, "/meshsub/1.1.0", outbound=True, ip=None, now=0.0)
    sybil.router.mesh[TOPIC].update(peers)
    out = sybil.spam(TOPIC, 2)
    assert [p for p, _ in out] == peers
    messages = out[0][1].publish
    assert len(messages) == 2 and out[0][1] is out[1][1]
    assert all(m.data.startswith(SPAM_PREFIX) and m.from_ == sybil.local for m in messages)
    assert {m.seqno for m in messages} == {(0).to_bytes(8, "big"), (1).to_bytes(8, "big")}
    assert all(validate(m) is ValidationResult.REJECT for m in messages)
    assert sybil.spam_sent == 4
    sybil.mode = SybilMode.DROP
    assert sybil.spam(TOPIC, 2) == []


def test_validate_accepts_honest_payloads() -> None:
    assert validate(_message(SeededRandom(1, "v"), b"\x00" * 8)) is ValidationResult.ACCEPT


@pytest.mark.parametrize("mode", [SybilMode.HONEST, SybilMode.DROP])
def test_only_path_through_a_sybil(mode: SybilMode) -> None:
    """Honest A - Sybil S - honest B, S the only path: B gets A's messages only from an honest
    S (flood publishing reaches S, which forwards or not)."""
    rng = SeededRandom(2, "line")
    delivered: list[tuple[int, bytes, float]] = []
    ids = {i: _identity(rng) for i in range(3)}
    net = SybilOverlay(
        ids,
        honest=2,
        config=GossipsubConfig(),
        events=EventQueue(),
        rng=random.Random(0),
        validate=validate,
        on_deliver=lambda n, m, t: delivered.append((n, m, t)),
    )
    honest = []
    for i in range(2):
        router = GossipsubRouter(
            ids[i].peer_id, rng=random.Random(i), private_key=ids[i].private_key
        )
        net.start(i, 0.0, [TOPIC], router=router)
        honest.append(router)
    sybil = _sybil(mode, rng, ids[2])
    net.start(2, 0.0, [TOPIC], router=sybil.router)
    net.sybils[2] = sybil
    net.connect(2, 0, 0.0, latency=0.01)
    net.connect(2, 1, 0.0, latency=0.02)
    net.events.run_until(3.0)  # subscriptions known, meshes grafted
    assert sybil.local in honest[0].mesh[TOPIC] and sybil.local in honest[1].mesh[TOPIC]
    msg_id = net.publish(0, TOPIC, b"hello", net.events.now)
    net.events.run_until(10.0)
    if mode is SybilMode.HONEST:
        assert [(n, m) for n, m, _ in delivered] == [(1, msg_id)]
        assert delivered[0][2] == pytest.approx(3.03)  # one hop each way: 10 ms + 20 ms
    else:
        assert delivered == []
        assert sybil.withheld >= 1
    assert net.rpcs > 0
